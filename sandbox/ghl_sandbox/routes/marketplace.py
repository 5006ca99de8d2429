"""GHL's authorization page (marketplace.gohighlevel.com ``/v2/oauth/chooselocation``, and the older
``/oauth/chooselocation`` the Node SDK still builds), served by the sandbox on its own host.

The page checks the app's request (``response_type=code``, ``client_id``, ``redirect_uri``, ``scope``) and lists
the agency and its locations; choosing one installs the app there and redirects to ``redirect_uri`` with
``code`` (and ``state``, as sent). A test that wants no page sets its pick with ``PUT /_sandbox/oauth/choice``;
the page then redirects at once. These routes are pages, not API: they skip the request gate.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ghl_sandbox.routes.common import sandbox_of
from ghl_sandbox.scopes import parse_scopes

router = APIRouter()

#: Where the page is served (the gate lets these through as pages).
PAGE_PATHS = ("/v2/oauth/chooselocation", "/oauth/chooselocation")


class PageError(Exception):
    """A refused authorization request: GHL shows an error page and redirects nowhere."""


def _checked(request: Request) -> tuple[str, str]:
    """The request's ``redirect_uri`` and ``scope``, after GHL's checks of the app's request."""
    q, sb = request.query_params, sandbox_of(request)
    if q.get("response_type") != "code":
        raise PageError("response_type must be code")
    if q.get("client_id") != sb.tokens.client_id:
        raise PageError("Invalid client_id: no app with this client id")
    redirect = q.get("redirect_uri", "")
    parts = urlsplit(redirect)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PageError("redirect_uri must be an http(s) URL")
    try:
        parse_scopes(q.get("scope", ""))
    except ValueError as exc:
        raise PageError(f"Invalid scope: {exc}") from None
    return redirect, q.get("scope", "")


def _back_to_app(request: Request, redirect: str, scope: str, choice: dict[str, str]) -> Response:
    """Approve ``choice`` (install the app there) and send the browser back to the app with the code."""
    code = sandbox_of(request).tokens.authorize(
        location_id=choice.get("locationId"),
        company_id=choice.get("companyId"),
        scopes=scope or None,
        redirect_uri=redirect,
    )
    parts = urlsplit(redirect)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("code", code)]
    if "state" in request.query_params:
        query.append(("state", request.query_params["state"]))
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), status_code=302)


def _error_page(message: str) -> HTMLResponse:
    body = f"<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{html.escape(message)}</p>"
    return HTMLResponse(body, status_code=400)


async def choose_location(request: Request) -> Response:
    try:
        redirect, scope = _checked(request)
    except PageError as exc:
        return _error_page(str(exc))
    sb = sandbox_of(request)
    if sb.oauth_choice:
        return _back_to_app(request, redirect, scope, sb.oauth_choice)
    base = f"{request.url.path}/approve?{request.url.query}"
    choices = [(f"{base}&companyId={sb.store.company_id}", f"Agency: {sb.installs.company_name}")]
    choices += [(f"{base}&locationId={loc.id}", loc.name) for loc in sb.store.locations.values()]
    items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(label)}</a></li>' for href, label in choices)
    page = f"<!doctype html><title>Choose account</title><h1>Choose an account for the app</h1><ul>{items}</ul>"
    return HTMLResponse(page)


async def approve(request: Request) -> Response:
    try:
        redirect, scope = _checked(request)
    except PageError as exc:
        return _error_page(str(exc))
    sb, q = sandbox_of(request), request.query_params
    if q.get("companyId") == sb.store.company_id:
        return _back_to_app(request, redirect, scope, {"companyId": sb.store.company_id})
    if q.get("locationId") in sb.store.locations:
        return _back_to_app(request, redirect, scope, {"locationId": q["locationId"]})
    return _error_page("Choose a location or the agency")


for _path in PAGE_PATHS:
    router.add_api_route(_path, choose_location, methods=["GET"], include_in_schema=False)
    router.add_api_route(f"{_path}/approve", approve, methods=["GET"], include_in_schema=False)
