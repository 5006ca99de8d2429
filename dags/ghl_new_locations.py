"""Hourly: the first full export of every location that has none yet (an install, a newly discovered location)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_ghl.operators.export import GHLExportContactsOperator
from airflow_provider_ghl.operators.outputs import committed_output_events, output_asset

from ghl_alerts import alert_callbacks
from ghl_layout import FIRST_EXPORT, FULL_EXPORT, LOCATION
from ghl_locations import configuration_doc, locations

#: The tasks whose committed output counts as a location's full export: the weekly one and this DAG's.
FULL_EXPORTS = (("ghl_full_export", "full_export"), ("ghl_new_locations", "first_export"))

DOC_MD = f"""
### GHL first export of new locations

Every hour, the locations (for an agency install: where the app is installed, discovered at run time) that
have **no committed full export yet**, from `ghl_full_export` or from this DAG, get one at once, to

`{FIRST_EXPORT.describe()}`

instead of waiting for the weekly `ghl_full_export` (written as `{FULL_EXPORT.describe()}`). A location that
installs the app is so exported within the hour, with no configuration change; the others cost nothing but the
look at their output's asset events.

{configuration_doc()}
"""


@task
def without_full_export(pairs: list[dict[str, str]]) -> list[dict[str, str]]:
    """The locations of ``pairs`` that no full export has committed an output for yet (read from the asset
    events that announce each committed output)."""
    return [
        pair
        for pair in pairs
        if not any(
            committed_output_events(output_asset(pair["location_id"], dag_id, task_id), limit=1)
            for dag_id, task_id in FULL_EXPORTS
        )
    ]


with DAG(
    dag_id="ghl_new_locations",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5), **alert_callbacks()},
    tags=["ghl", "export", "example"],
    doc_md=DOC_MD,
) as dag:
    GHLExportContactsOperator.partial(
        task_id="first_export",
        output_path=FIRST_EXPORT.template(),
        compression="gzip",
        map_index_template=LOCATION,
    ).expand_kwargs(without_full_export(locations()))
