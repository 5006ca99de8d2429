"""OAuth routes: ``POST /oauth/token`` (no bearer needed) and the agency's location-token endpoint
(``POST /oauth/locationToken`` in v2, ``POST /oauth/location-token`` in v3).

The token registry (:mod:`ghl_sandbox.auth`) holds the logic and raises GHL's OAuth errors;
:mod:`ghl_sandbox.versions` translates v3's camelCase fields.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

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
