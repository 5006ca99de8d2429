"""The Airflow plugin that mounts the webhook receiver on the api-server at ``/ghl`` (``POST /ghl/webhooks``).

Registered through the ``airflow.plugins`` entry point (what Airflow loads by default) and the provider
info's ``plugins`` (read when ``[core] lazy_discover_providers`` is off). Airflow does **not** authenticate
plugin apps: every route here is anonymous, and the GHL signature on each delivery is the authentication.

Every Airflow process imports the plugins, each task process too (for macros), so this module imports
nothing heavy: the app is built, with the ``[ghl_webhooks]`` settings, by the api-server's first request to
``/ghl``. Settings that do not validate are logged and answered 429 (GHL retries a 429, so no event is
lost while they are fixed); the app is built again at the next request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_ghl.webhooks.options import URL_PREFIX

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyReceiverApp:
    """An ASGI app that builds the receiver (``build_receiver_app(WebhookSettings.load())``) on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._app: Any = None

    def app(self) -> Any:
        """The receiver's FastAPI app, built now if not yet.

        :raises GHLConfigError: the ``[ghl_webhooks]`` settings do not validate.
        """
        with self._lock:
            if self._app is None:
                from airflow_provider_ghl.webhooks.receiver import build_receiver_app
                from airflow_provider_ghl.webhooks.settings import WebhookSettings

                self._app = build_receiver_app(WebhookSettings.load())
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from airflow_provider_ghl.exceptions import GHLConfigError

        try:
            app = self.app()
        except GHLConfigError as err:
            log.error("GHL webhook receiver not started: %s", err)
            from starlette.responses import JSONResponse

            answer = JSONResponse({"error": "receiver_misconfigured"}, status_code=429, headers={"Retry-After": "60"})
            await answer(scope, receive, send)
            return
        await app(scope, receive, send)


class GHLWebhooksPlugin(AirflowPlugin):
    """``fastapi_apps``: the receiver, mounted at ``/ghl``."""

    name = "ghl-webhooks"
    fastapi_apps = [{"app": LazyReceiverApp(), "url_prefix": URL_PREFIX, "name": name}]
