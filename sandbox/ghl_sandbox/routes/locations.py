"""Location routes: the contact custom fields and the task search of a location."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ghl_sandbox import models as m
from ghl_sandbox.errors import SandboxHTTPError
from ghl_sandbox.routes.common import ok, own_location

router = APIRouter()


@router.get("/locations/{locationId}/customFields")
async def get_custom_fields(request: Request, locationId: str, model: str = "contact") -> JSONResponse:
    loc = own_location(request, locationId)
    if model not in ("contact", "opportunity", "all"):
        raise SandboxHTTPError(422, ["model must be one of the following values: contact, opportunity, all"])
    fields = [f for f in loc.custom_fields if model in ("all", f["model"])]
    return ok({"customFields": fields})


@router.post("/locations/{locationId}/tasks/search")
async def search_location_tasks(request: Request, locationId: str, dto: m.TaskSearchParamsDto) -> JSONResponse:
    loc = own_location(request, locationId)
    wanted = set(dto.contactId or ())
    contacts = [loc.contacts[c] for c in wanted if c in loc.contacts] if wanted else list(loc.contacts.values())
    contacts.sort(key=lambda c: (c.added_ms, c.id))
    q = (dto.query or "").lower()
    rows = [
        {**t, "locationId": loc.id}
        for c in contacts
        for t in (loc.children(c).tasks or {}).values()
        if (dto.completed is None or t["completed"] == dto.completed)
        and (not dto.assignedTo or t["assignedTo"] in dto.assignedTo)
        and (not q or q in t["title"].lower())
        and (not dto.businessId or c.data.get("businessId") == dto.businessId)
    ]
    return ok({"tasks": rows[dto.skip : dto.skip + dto.limit], "total": len(rows)})
