"""The Airflow plugin of the status page: its app at ``/ghl-status`` on the api-server, and a "GHL" entry in the
UI's Plugins menu that shows it (``external_views``). Every route requires a user Airflow lets read connections
and Variables; nothing is anonymous.

Every Airflow process imports plugins (task processes too), so the app is built by the api-server's first
request to it, not at import.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_ghl.webhooks.plugin import LazyApp

#: Where the app is mounted (a prefix Airflow does not reserve: not under /ui, /api, /auth, /execution).
URL_PREFIX = "/ghl-status"


def _build_status() -> Any:
    """The status app, with Airflow's checks of the caller."""
    from airflow_provider_ghl.status.app import airflow_checks, build_status_app

    return build_status_app(airflow_checks())


class GHLStatusPlugin(AirflowPlugin):
    """``fastapi_apps``: the status page at ``/ghl-status``; ``external_views``: "GHL" in the Plugins menu."""

    name = "ghl-status"
    fastapi_apps = [{"app": LazyApp(_build_status), "url_prefix": URL_PREFIX, "name": name}]
    external_views = [
        {"name": "GHL", "href": f"{URL_PREFIX}/", "url_route": "ghl", "category": "GHL", "destination": "nav"}
    ]
