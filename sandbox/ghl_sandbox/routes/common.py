"""What every route group of the sandbox uses: its state, the caller, GHL's lookups and input checks."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from ghl_sandbox.auth import Principal
from ghl_sandbox.data import Contact, Location
from ghl_sandbox.errors import SandboxHTTPError
from ghl_sandbox.gate import PRINCIPAL_KEY
from ghl_sandbox.state import Sandbox
from ghl_sandbox.writes import check_time

__all__ = ["check_time", "ok", "own_contact", "own_location", "principal_of", "require_known", "sandbox_of"]

FORBIDDEN_LOCATION = "The token does not have access to this location."


def sandbox_of(request: Request) -> Sandbox:
    """The sandbox state the app serves.

    :param request: the request being answered.
    """
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def principal_of(request: Request) -> Principal:
    """Who the request's bearer token speaks for (the gate checked it before the route runs).

    :param request: a request to an authenticated route.
    """
    principal: Principal = request.scope[PRINCIPAL_KEY]
    return principal


def ok(payload: Any, status: int = 200) -> JSONResponse:
    """A JSON answer.

    :param payload: the body.
    :param status: the HTTP status.
    """
    return JSONResponse(payload, status_code=status)


def own_location(request: Request, location_id: str | None) -> Location:
    """The location the request names, which must be the token's own (403 otherwise).

    :param request: the request being answered.
    :param location_id: the ``locationId`` of the path, query or body.
    """
    if not location_id or location_id != principal_of(request).location_id:
        raise SandboxHTTPError(403, FORBIDDEN_LOCATION)
    return sandbox_of(request).store.locations[location_id]


def own_contact(request: Request, contact_id: str) -> tuple[Location, Contact]:
    """The token's location and its contact ``contact_id``: 403 if another location has it, 400 if none does.

    :param request: the request being answered.
    :param contact_id: the contact's id.
    """
    sb = sandbox_of(request)
    loc = sb.store.locations[principal_of(request).location_id or ""]
    contact = loc.contacts.get(contact_id)
    if contact is None:
        if sb.store.find_contact(contact_id) is not None:
            raise SandboxHTTPError(403, FORBIDDEN_LOCATION)
        raise SandboxHTTPError(400, f"Contact with id {contact_id} not found")
    return loc, contact


def require_known(ids: list[str], value: str, what: str) -> None:
    """GHL's 400 for an id (business, campaign, workflow) the location does not have.

    :param ids: the location's ids of that kind.
    :param value: the id the request names.
    :param what: the kind, as GHL words it ("Business", "Campaign", ...).
    """
    if value not in ids:
        raise SandboxHTTPError(400, f"{what} with id {value} not found")
