"""Operator extra links into the GHL web app."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: XCom key under which an operator stores the app URL of the contact it worked on.
CONTACT_URL_XCOM_KEY = "ghl_contact_url"


def contact_url(app_url: str, location_id: str, contact_id: str) -> str:
    """The contact's page in the GHL app (``<app>/v2/location/<location>/contacts/detail/<contact>``)."""
    return f"{app_url}/v2/location/{quote(location_id, safe='')}/contacts/detail/{quote(contact_id, safe='')}"


class GHLContactLink(BaseOperatorLink):
    """ "GHL contact": opens the contact a task created, read or changed in the GHL app."""

    name = "GHL contact"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        # Airflow 3 resolves links on the worker when the task finishes and stores the result for the UI.
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=CONTACT_URL_XCOM_KEY) or ""
