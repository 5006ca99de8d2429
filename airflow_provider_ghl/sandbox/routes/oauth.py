"""OAuth routes: ``POST /oauth/token`` (no bearer needed) and ``POST /oauth/locationToken`` (agency token).

The token registry (:mod:`airflow_provider_ghl.sandbox.auth`) holds the logic and raises GHL's OAuth errors.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_ghl.sandbox.routes.common import ok, principal_of, sandbox_of

router = APIRouter()


async def _form(request: Request) -> dict[str, str]:
    """The form-encoded body, every value as text (as GHL's OAuth endpoints read it)."""
    return {k: str(v) for k, v in (await request.form()).items()}


@router.post("/oauth/token")
async def oauth_token(request: Request) -> JSONResponse:
    return ok(sandbox_of(request).tokens.token(await _form(request)))


@router.post("/oauth/locationToken")
async def oauth_location_token(request: Request) -> JSONResponse:
    form = await _form(request)
    return ok(sandbox_of(request).tokens.location_token(principal_of(request), form))
