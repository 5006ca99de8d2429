"""The app's install flow as two routes of the receiver app: ``GET /oauth/start`` and ``GET /oauth/callback``
(``/ghl/oauth/...`` once mounted), on :mod:`airflow_provider_ghl.hooks.install`.

``start`` issues a single-use state for the connection named by ``conn_id`` and redirects the browser to GHL's
authorization page; GHL sends the browser back to ``callback`` with ``code`` and ``state``, which takes the state
once, exchanges the code and stores the installation's token set. Every refusal answers 400 with the reason
and stores nothing. In the api-server the routes are guarded by Airflow's own check that the user may edit the
connection; ``ghl-webhooks serve`` asks no login (``[ghl_webhooks] install_flow`` is its opt-in).

The routes are plain ``def``: the state store and the code exchange block (the metadata database, one HTTP
request to GHL), so FastAPI runs them in its thread pool, off the event loop of the webhook deliveries.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from typing import Any

from airflow.exceptions import AirflowNotFoundException
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from airflow_provider_ghl.checks import require_id
from airflow_provider_ghl.exceptions import GHLError, GHLInputError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.install import MAX_PARAM_LENGTH, InstallStates, authorization_url, installation_name

log = logging.getLogger(__name__)


def _page(title: str, message: str, status: int) -> HTMLResponse:
    body = (
        f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    )
    return HTMLResponse(body, status_code=status)


def install_router(
    *, redirect_uri: str = "", dependencies: Sequence[Any] = (), states: InstallStates | None = None
) -> APIRouter:
    """The two routes of the install flow.

    :param redirect_uri: the callback URL registered with the app ("": this router's callback on the host the
        start request came to).
    :param dependencies: FastAPI dependencies guarding both routes (the api-server's permission check).
    :param states: where the install states live (default: Airflow Variables).
    """
    router = APIRouter(dependencies=list(dependencies))
    pending = states or InstallStates()

    @router.get("/oauth/start")
    def start(request: Request, conn_id: str = Query(GHLHook.default_conn_name, max_length=250)) -> Any:
        try:
            conn_id = require_id("conn_id", conn_id)
            config = GHLHook(conn_id).config
            if not config.is_oauth:
                raise GHLInputError("conn_id", f"connection {conn_id!r} is not an OAuth app (auth_type=oauth)")
            # Beside this route, wherever the app is mounted (the api-server serves it through a wrapper, so
            # there is no route name to resolve from the root).
            here = request.url
            callback = redirect_uri or str(here.replace(path=here.path.removesuffix("/start") + "/callback", query=""))
            state = pending.issue(conn_id, callback)
        except GHLError as err:
            return _page("Install not started", str(err), 400)
        except AirflowNotFoundException:
            return _page("Install not started", f"There is no connection {conn_id!r}.", 400)
        log.info("GHL app install started for connection %s; redirecting to GHL's authorization page.", conn_id)
        return RedirectResponse(authorization_url(config, callback, state), status_code=302)

    @router.get("/oauth/callback")
    def callback(
        code: str = Query("", max_length=MAX_PARAM_LENGTH), state: str = Query("", max_length=MAX_PARAM_LENGTH)
    ) -> HTMLResponse:
        try:
            install = pending.consume(state)
            if not code:
                raise GHLInputError("code", "GHL sent no authorization code (was the install cancelled?)")
            tokens = GHLHook(install.conn_id).install_from_code(code, install.redirect_uri)
        except GHLError as err:
            log.warning("GHL app install refused: %s", err)
            return _page("Install refused", str(err), 400)
        facts = tokens.describe()
        return _page(
            "App installed",
            f"The installation of the {installation_name(facts)} is stored for connection {install.conn_id!r}; "
            f"its token set is valid until {facts['expires_at']} and renews itself.",
            200,
        )

    return router
