"""OAuth routes: ``POST /oauth/token`` (no bearer needed), the agency's location-token endpoint
(``POST /oauth/locationToken`` in v2, ``POST /oauth/location-token`` in v3) and the agency's list of the app's
installed locations (``GET /oauth/installedLocations`` in v2, ``GET /oauth/installed-locations`` in v3).

The token registry (:mod:`ghl_sandbox.auth`) holds the logic and raises GHL's OAuth errors;
:mod:`ghl_sandbox.versions` translates v3's camelCase fields.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ghl_sandbox.errors import AipError, SandboxHTTPError
from ghl_sandbox.installs import DEFAULT_PAGE, MAX_PAGE
from ghl_sandbox.routes.common import ok, principal_of, sandbox_of
from ghl_sandbox.versions import is_v3, oauth_field_names, oauth_fields_in, oauth_out

router = APIRouter()


async def _fields(request: Request) -> dict[str, str]:
    """The body's fields, every value as text (as GHL's OAuth endpoints read them): form-encoded, or under v3
    also JSON (oauth-v3.json declares both; v2's token endpoint reads only the form)."""
    fields: dict[str, str]
    if is_v3(request) and request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = {}
        fields = {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
    else:
        fields = {k: str(v) for k, v in (await request.form()).items()}
    return oauth_fields_in(request, fields)


@router.post("/oauth/token")
async def oauth_token(request: Request) -> JSONResponse:
    tokens = sandbox_of(request).tokens
    return ok(oauth_out(request, tokens.token(await _fields(request), names=oauth_field_names(request))))


@router.post("/oauth/locationToken")
async def oauth_location_token(request: Request) -> JSONResponse:
    form = await _fields(request)
    return ok(sandbox_of(request).tokens.location_token(principal_of(request), form))


@router.post("/oauth/location-token")
async def oauth_v3_location_token(request: Request) -> JSONResponse:
    form = await _fields(request)
    body = sandbox_of(request).tokens.location_token(principal_of(request), form, with_refresh=True)
    return ok(oauth_out(request, body))


# -- installed locations ------------------------------------------------------------------------------------
def _flag(request: Request, name: str) -> bool | None:
    """A boolean query parameter (``true``/``false``), None when absent; GHL's 422 otherwise."""
    value = request.query_params.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise SandboxHTTPError(422, [f"{name} must be a boolean value"])
    return value == "true"


def _number(request: Request, name: str, default: int, low: int, high: int | None = None) -> int:
    """A whole-number query parameter within ``low..high``; GHL's 422 otherwise."""
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SandboxHTTPError(422, [f"{name} must be a number string"]) from None
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SandboxHTTPError(422, [f"{name} must be {bound}"])
    return number


def _installed_listing(request: Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The checks both versions share (agency token, ``companyId``, ``appId``, filters) and the matching
    locations, with the filters applied (v3 reports them)."""
    sb, principal, q = sandbox_of(request), principal_of(request), request.query_params
    if principal.kind != "agency":
        raise SandboxHTTPError(401, "This authClass type is not allowed to access this scope. Use an agency token.")
    missing = [name for name in ("companyId", "appId") if not q.get(name)]
    if missing:
        raise SandboxHTTPError(422, [f"{name} should not be empty" for name in missing])
    v3 = is_v3(request)
    if q["companyId"] != principal.company_id:
        message = "The token does not have access to this company."
        raise AipError(400, "INVALID_ARGUMENT", message, field="companyId") if v3 else SandboxHTTPError(400, message)
    if q["appId"] != sb.installs.app_id:
        if v3:
            raise AipError(404, "RESOURCE_NOT_FOUND", f"The requested App '{q['appId']}' was not found.")
        raise SandboxHTTPError(400, "App not found")
    filters: dict[str, Any] = {
        "is_installed": _flag(request, "isInstalled"),
        "on_trial": _flag(request, "onTrial"),
        "query": q.get("query"),
        "location_id": q.get("locationId"),
        "plan_id": q.get("planId"),
        "version_id": q.get("versionId"),
    }
    if v3:
        _flag(request, "restrictToUserLocations")  # checked; the agency user sees every location anyway
    applied = {"companyId": q["companyId"], "appId": q["appId"]}
    optional = ("isInstalled", "onTrial", "query", "locationId", "planId", "versionId")
    applied |= {name: q[name] for name in optional if name in q}
    return sb.installs.listing(**filters), applied


@router.get("/oauth/installedLocations")
async def oauth_installed_locations(request: Request) -> JSONResponse:
    items, _ = _installed_listing(request)
    skip = _number(request, "skip", 0, 0)
    limit = _number(request, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    return ok(
        {
            "locations": items[skip : skip + limit],
            "count": len(items),
            "installToFutureLocations": sandbox_of(request).installs.install_to_future_locations,
        }
    )


def _page_token(skip: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"skip": skip}, separators=(",", ":")).encode()).decode().rstrip("=")


def _token_skip(token: str) -> int:
    """The offset an opaque ``pageToken`` of ours stands for; 400 INVALID_ARGUMENT for anything else."""
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        skip = decoded["skip"]
        if isinstance(skip, int) and not isinstance(skip, bool) and skip >= 0:
            return skip
    except (ValueError, TypeError, KeyError):
        pass
    raise AipError(400, "INVALID_ARGUMENT", "The pageToken is invalid or expired.", field="pageToken")


@router.get("/oauth/installed-locations")
async def oauth_v3_installed_locations(request: Request) -> JSONResponse:
    items, applied = _installed_listing(request)
    size = _number(request, "pageSize", DEFAULT_PAGE, 1, MAX_PAGE)
    token = request.query_params.get("pageToken")
    skip = _token_skip(token) if token else 0
    page = items[skip : skip + size]
    pagination: dict[str, Any] = {
        "totalRecords": len(items),
        "hasNextPage": skip + size < len(items),
        "hasPrevPage": skip > 0,
        "currentPageSize": len(page),
    }
    if pagination["hasNextPage"]:
        pagination["nextPageToken"] = _page_token(skip + size)
    if skip > 0:
        pagination["prevPageToken"] = _page_token(max(skip - size, 0))
    return ok(
        {
            "items": page,
            "pagination": pagination,
            "metadata": {"filterApplied": applied, "sortApplied": {"installedAt": "desc"}},
            "installToFutureLocations": sandbox_of(request).installs.install_to_future_locations,
        }
    )
