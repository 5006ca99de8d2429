"""The Airflow plugin of the status page: its app at ``/ghl-status`` on the api-server, and a "GHL" entry in the
UI's Plugins menu that shows it (``external_views``). Every route requires a user Airflow lets read connections
and Variables; nothing is anonymous.

Every Airflow process imports plugins (task processes too), so the app is built by the api-server's first
request to it, not at import.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

#: Where the app is mounted (a prefix Airflow does not reserve: not under /ui, /api, /auth, /execution).
URL_PREFIX = "/ghl-status"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyStatusApp:
    """An ASGI app that builds the status app, with Airflow's checks of the caller, on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with self._lock:
            if self._app is None:
                from airflow_provider_ghl.status.app import airflow_checks, build_status_app

                self._app = build_status_app(airflow_checks())
        await self._app(scope, receive, send)


class GHLStatusPlugin(AirflowPlugin):
    """``fastapi_apps``: the status page at ``/ghl-status``; ``external_views``: "GHL" in the Plugins menu."""

    name = "ghl-status"
    fastapi_apps = [{"app": LazyStatusApp(), "url_prefix": URL_PREFIX, "name": name}]
    external_views = [
        {"name": "GHL", "href": f"{URL_PREFIX}/", "url_route": "ghl", "category": "GHL", "destination": "nav"}
    ]
