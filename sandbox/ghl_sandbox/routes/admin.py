"""``/_sandbox/*``: inspect and steer the sandbox from tests, benchmarks and the demo.

These routes skip the gate (no Version header, bearer token, rate budget or faults) and are not GHL's API.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ghl_sandbox import writes
from ghl_sandbox.data import Location, is_positive_int, iso
from ghl_sandbox.errors import SandboxHTTPError
from ghl_sandbox.routes.common import ok, sandbox_of
from ghl_sandbox.scopes import scope_text
from ghl_sandbox.settings import Faults
from ghl_sandbox.state import Sandbox

LIMIT_SETTINGS = {"max_requests", "interval_ms", "daily_limit"}

router = APIRouter()


async def _json_body(request: Request) -> Any:
    """The JSON body; an empty body reads as ``{}``."""
    return json.loads(await request.body() or b"{}")


def _admin_location(sb: Sandbox, location_id: str | None) -> Location:
    if location_id not in sb.store.locations:
        raise SandboxHTTPError(422, [f"locationId: unknown location {location_id!r}"])
    return sb.store.locations[location_id or ""]


@router.get("/_sandbox/info")
async def info(request: Request) -> JSONResponse:
    return ok(sandbox_of(request).info())


@router.get("/_sandbox/stats")
async def stats(request: Request) -> JSONResponse:
    return ok(sandbox_of(request).stats())


@router.delete("/_sandbox/stats")
async def clear_stats(request: Request) -> JSONResponse:
    sb = sandbox_of(request)
    sb.clear_stats()
    return ok(sb.stats())


@router.post("/_sandbox/reset")
async def reset(request: Request) -> JSONResponse:
    sb = sandbox_of(request)
    changes = await _json_body(request)
    try:
        config = sb.start_config.replace(**changes)
    except (TypeError, ValueError) as exc:
        raise SandboxHTTPError(422, [str(exc)]) from None
    sb.reset(config)
    return ok(sb.info())


@router.get("/_sandbox/faults")
async def get_faults(request: Request) -> JSONResponse:
    return ok(sandbox_of(request).faults.model_dump())


@router.put("/_sandbox/faults")
async def put_faults(request: Request, faults: Faults) -> JSONResponse:
    sandbox_of(request).set_faults(faults)
    return ok(faults.model_dump())


@router.put("/_sandbox/limits")
async def put_limits(request: Request) -> JSONResponse:
    sb = sandbox_of(request)
    body = await _json_body(request)
    unknown = set(body) - LIMIT_SETTINGS
    bad = [k for k, v in body.items() if not is_positive_int(v)]
    if unknown or bad:
        raise SandboxHTTPError(422, [f"limits: unknown or invalid setting(s): {', '.join(sorted(unknown | set(bad)))}"])
    sb.limiter.configure(**body)
    return ok(sb.limits())


@router.post("/_sandbox/tokens/expire")
async def expire_tokens(request: Request) -> JSONResponse:
    body = await _json_body(request)
    return ok({"expired": sandbox_of(request).tokens.expire(body.get("access_token"))})


@router.post("/_sandbox/oauth/authorize")
async def authorize(request: Request) -> JSONResponse:
    """A user's approval, without the page: ``{"locationId" | "companyId", "scopes"?, "redirectUri"?}`` ->
    ``{"code"}`` (a location gets the app installed if it had not)."""
    body = await _json_body(request)
    try:
        code = sandbox_of(request).tokens.authorize(
            location_id=body.get("locationId"),
            company_id=body.get("companyId"),
            scopes=body.get("scopes"),
            redirect_uri=body.get("redirectUri"),
        )
    except ValueError as exc:
        raise SandboxHTTPError(422, [str(exc)]) from None
    return ok({"code": code})


@router.put("/_sandbox/oauth/choice")
async def oauth_choice(request: Request) -> JSONResponse:
    """What the authorization page picks without showing itself: ``{"locationId"}``, ``{"companyId"}``, or
    ``{}`` to show the page again. Holds until changed or reset."""
    sb = sandbox_of(request)
    body = await _json_body(request)
    choice = {k: str(v) for k, v in body.items() if k in ("locationId", "companyId") and v}
    if set(body) - {"locationId", "companyId"} or len(choice) > 1:
        raise SandboxHTTPError(422, ["choice: give one of locationId or companyId, or nothing"])
    if "locationId" in choice:
        _admin_location(sb, choice["locationId"])
    if choice.get("companyId", sb.store.company_id) != sb.store.company_id:
        raise SandboxHTTPError(422, [f"companyId: unknown company {choice['companyId']!r}"])
    sb.oauth_choice = choice
    return ok(choice)


@router.get("/_sandbox/installs")
async def installs(request: Request) -> JSONResponse:
    return ok(sandbox_of(request).installs.view())


@router.post("/_sandbox/installs")
async def change_install(request: Request) -> JSONResponse:
    """Install, uninstall, suspend or reactivate: ``{"locationId", "installed"?: bool, "active"?: bool}``.
    An install or uninstall sends the app's INSTALL / UNINSTALL webhook; an uninstall drops the app's tokens of
    the location."""
    sb = sandbox_of(request)
    body = await _json_body(request)
    loc = _admin_location(sb, body.get("locationId"))
    bad = [k for k in ("installed", "active") if k in body and not isinstance(body[k], bool)]
    if bad or set(body) - {"locationId", "installed", "active"}:
        raise SandboxHTTPError(422, [f"installs: unknown or non-boolean setting(s): {', '.join(bad or sorted(body))}"])
    revoked = 0
    if body.get("installed") is True:
        sb.installs.install(loc.id)
    elif body.get("installed") is False:
        revoked = sb.uninstall(loc.id)
    if "active" in body:
        sb.installs.set_active(loc.id, body["active"])
    return ok({**sb.installs.view(), "tokens_revoked": revoked})


@router.post("/_sandbox/tokens/pit")
async def issue_pit(request: Request) -> JSONResponse:
    """A new Private Integration Token: ``{"locationId", "scopes": [...]}`` (scopes left out: all)."""
    body = await _json_body(request)
    try:
        token, principal = sandbox_of(request).tokens.issue_pit(str(body.get("locationId") or ""), body.get("scopes"))
    except ValueError as exc:
        raise SandboxHTTPError(422, [str(exc)]) from None
    return ok({"private_token": token, "locationId": principal.location_id, "scopes": scope_text(principal.scopes)})


@router.get("/_sandbox/contacts/ids")
async def contact_ids(request: Request, locationId: str) -> JSONResponse:
    loc = _admin_location(sandbox_of(request), locationId)
    return ok({"ids": list(loc.contacts)})


@router.post("/_sandbox/contacts/touch")
async def touch_contacts(request: Request) -> JSONResponse:
    sb = sandbox_of(request)
    body = await _json_body(request)
    loc = _admin_location(sb, body.get("locationId"))
    if body.get("ids") is not None:
        missing = [i for i in body["ids"] if i not in loc.contacts]
        if missing:
            raise SandboxHTTPError(422, [f"ids not in location: {', '.join(missing)}"])
        chosen = [loc.contacts[i] for i in body["ids"]]
    else:
        count = body.get("count", 1)
        chosen = sb.rng.sample(list(loc.contacts.values()), min(int(count), len(loc.contacts)))
    for contact in chosen:
        writes.set_field(loc, contact, "lastActivity", iso(sb.store.now_ms()))
    return ok({"ids": [c.id for c in chosen]})
