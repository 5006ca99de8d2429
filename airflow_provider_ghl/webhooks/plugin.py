"""The Airflow plugin that mounts the webhook receiver on the api-server at ``/ghl`` (``POST /ghl/webhooks``).

Registered through the ``airflow.plugins`` entry point (what Airflow loads by default) and the provider
info's ``plugins`` (read when ``[core] lazy_discover_providers`` is off). The receiver is mounted only when
``[ghl_webhooks] enabled`` is true: installing the provider exposes nothing. Airflow does **not** authenticate
plugin apps: ``POST /ghl/webhooks`` is anonymous (the GHL signature on each delivery is the authentication),
``GET /ghl/health`` says only ok or not, ``GET /ghl/stats`` requires an authenticated Airflow user, and the
install flow (``GET /ghl/oauth/start`` and ``/callback``, only with ``[ghl_webhooks] install_flow``) a user
allowed to edit connections.

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

from airflow_provider_ghl.webhooks.options import SECTION, URL_PREFIX

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """An ASGI app built by ``build`` on first use, once (the plugins' apps: every Airflow process imports the
    plugins, only the api-server serves them).

    :param build: makes the app.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._app: Any = None

    def app(self) -> Any:
        """The app, built now if not yet (a build that raises is tried again at the next call)."""
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app()(scope, receive, send)


def _build_receiver() -> Any:
    """The receiver's FastAPI app with the ``[ghl_webhooks]`` settings.

    :raises GHLConfigError: the settings do not validate.
    """
    # Airflow's own checks of the caller (a token or the UI's cookie): any user for the counters, a user allowed
    # to edit connections for the install flow (it writes a connection's token set).
    from airflow.api_fastapi.core_api.security import requires_access_connection, requires_authenticated
    from fastapi import Depends

    from airflow_provider_ghl.webhooks.receiver import build_receiver_app
    from airflow_provider_ghl.webhooks.settings import WebhookSettings

    return build_receiver_app(
        WebhookSettings.load(),
        stats_dependencies=[Depends(requires_authenticated())],
        install_dependencies=[Depends(requires_access_connection("PUT"))],
    )


class LazyReceiverApp(LazyApp):
    """The receiver (``build_receiver_app(WebhookSettings.load())``), built on first use."""

    def __init__(self) -> None:
        super().__init__(_build_receiver)

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


def receiver_enabled() -> bool:
    """``[ghl_webhooks] enabled`` (default False). A value that is not a boolean is logged and counts as off:
    the plugin is imported by every Airflow process, which must not fail over it."""
    from airflow.configuration import conf

    try:
        return conf.getboolean(SECTION, "enabled", fallback=False)
    except Exception as err:  # AirflowConfigException for a bad value
        log.error("GHL webhook receiver not mounted: [%s] enabled is not a boolean (%s).", SECTION, err)
        return False


class GHLWebhooksPlugin(AirflowPlugin):
    """``fastapi_apps``: the receiver, mounted at ``/ghl`` when ``[ghl_webhooks] enabled``; nothing otherwise."""

    name = "ghl-webhooks"
    fastapi_apps = [{"app": LazyReceiverApp(), "url_prefix": URL_PREFIX, "name": name}] if receiver_enabled() else []
