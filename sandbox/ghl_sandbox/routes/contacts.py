"""Contact routes: get, create, update, delete, upsert, the deprecated list, search, duplicates, by business."""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from ghl_sandbox import models as m
from ghl_sandbox import writes
from ghl_sandbox.errors import SandboxHTTPError
from ghl_sandbox.routes.common import ok, own_contact, own_location, sandbox_of
from ghl_sandbox.search import SearchError, cursor_of, search
from ghl_sandbox.versions import contact_fields_in, contact_out, success

router = APIRouter()


@router.get("/contacts/{contactId}")
async def get_contact(request: Request, contactId: str) -> JSONResponse:
    _, contact = own_contact(request, contactId)
    return ok({"contact": contact_out(request, contact.data)})


@router.post("/contacts")
async def create_contact(request: Request, dto: m.CreateContactDto) -> JSONResponse:
    sb = sandbox_of(request)
    loc = own_location(request, dto.locationId)
    if not sb.config.allow_duplicates and (dup := loc.find_duplicate(dto.email, dto.phone)):
        existing, matched = dup
        raise SandboxHTTPError(
            400,
            "This location does not allow duplicated contacts.",
            meta={"contactId": existing.id, "contactName": existing.data.get("name", ""), "matchingField": matched},
        )
    contact = writes.create_contact(sb, loc, contact_fields_in(request, dto.model_dump(exclude_unset=True)))
    return ok({"contact": contact_out(request, contact.data)}, 201)


@router.put("/contacts/{contactId}")
async def update_contact(request: Request, contactId: str, dto: m.UpdateContactDto) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    writes.update_contact(loc, contact, contact_fields_in(request, dto.model_dump(exclude_unset=True)))
    return ok({**success(request, v3_spelling_only=True), "contact": contact_out(request, contact.data)})


@router.delete("/contacts/{contactId}")
async def delete_contact(request: Request, contactId: str) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    writes.delete_contact(loc, contact)
    return ok(success(request))


@router.post("/contacts/upsert")
async def upsert_contact(request: Request, dto: m.UpsertContactDto) -> JSONResponse:
    sb = sandbox_of(request)
    loc = own_location(request, dto.locationId)
    dup = loc.find_duplicate(dto.email, dto.phone)
    fields = contact_fields_in(request, dto.model_dump(exclude_unset=True, exclude={"createNewIfDuplicateAllowed"}))
    if dup is None or (sb.config.allow_duplicates and dto.createNewIfDuplicateAllowed):
        contact, created = writes.create_contact(sb, loc, fields), True
    else:
        contact, created = dup[0], False
        writes.update_contact(loc, contact, fields)
    return ok({"new": created, "contact": contact_out(request, contact.data), "traceId": str(uuid.uuid4())})


@router.get("/contacts")
async def get_contacts(
    request: Request,
    locationId: str | None = None,
    query: str | None = None,
    limit: int = 20,
    startAfterId: str | None = None,
    startAfter: int | None = None,
) -> JSONResponse:
    sb = sandbox_of(request)
    loc = own_location(request, locationId)
    if not 1 <= limit <= 100:
        raise SandboxHTTPError(422, ["limit must not be greater than 100" if limit > 100 else "limit must be positive"])
    # Deprecated list: newest first; the cursor is the last item's dateAdded (ms) and id.
    q = (query or "").lower()
    rows = sorted(
        (
            c
            for c in loc.contacts.values()
            if not q or q in c.data["fullNameLowerCase"] or q in c.data["emailLowerCase"]
        ),
        key=lambda c: (-c.added_ms, c.id),
    )
    start = 0
    if startAfter is not None and startAfterId is not None:
        cursor = (-startAfter, startAfterId)
        start = next((i for i, c in enumerate(rows) if (-c.added_ms, c.id) > cursor), len(rows))
    page = rows[start : start + limit]
    meta: dict[str, Any] = {
        "total": len(rows),
        "currentPage": start // limit + 1,
        "nextPage": None,
        "prevPage": start // limit if start else None,
        "startAfterId": None,
        "startAfter": None,
        "nextPageUrl": None,
    }
    if page and start + limit < len(rows):
        last = page[-1]
        params = {"locationId": loc.id, "limit": limit, "startAfter": last.added_ms, "startAfterId": last.id}
        if query:
            params["query"] = query
        meta.update(
            nextPage=start // limit + 2,
            startAfterId=last.id,
            startAfter=last.added_ms,
            nextPageUrl=f"{sb.base_url}/contacts/?{urlencode(params)}",
        )
    return ok({"contacts": [c.data for c in page], "count": len(rows), "meta": meta})


@router.post("/contacts/search")
async def search_contacts(request: Request) -> Response:
    sb = sandbox_of(request)
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise SandboxHTTPError(400, "Body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SandboxHTTPError(422, ["body must be an object"])
    if not body.get("locationId"):
        raise SandboxHTTPError(422, ["locationId should not be empty"])
    loc = own_location(request, body["locationId"])
    try:
        hits, total, spec = search(loc, body)
    except SearchError as exc:
        raise SandboxHTTPError(422, exc.messages) from None
    # Joined from per-contact cached JSON: keeps the sandbox far from being the benchmarks' bottleneck.
    sort_key = tuple(spec)
    parts = [c.search_hit(sort_key, cursor_of(c, spec)) for c in hits]
    content = b'{"contacts":[' + b",".join(parts) + b'],"total":' + str(total).encode() + b"}"
    if n := sb.faults.mutate_on_search:
        # Changes made meanwhile by GHL's own users, as GHL would report them.
        for contact in sb.rng.sample(list(loc.contacts.values()), min(n, len(loc.contacts))):
            loc.touched(contact)
    return Response(content, media_type="application/json")


@router.get("/contacts/search/duplicate")
async def get_duplicate_contact(
    request: Request, locationId: str | None = None, number: str | None = None, email: str | None = None
) -> JSONResponse:
    loc = own_location(request, locationId)
    dup = loc.find_duplicate(email, number)
    return ok({"contact": dup[0].data if dup else None})


# Registered before the routes of a contact's tasks and notes: /contacts/business/tasks is this route.
@router.get("/contacts/business/{businessId}")
async def get_contacts_by_business(
    request: Request,
    businessId: str,
    locationId: str | None = None,
    limit: int = 25,
    skip: int = 0,
    query: str | None = None,
) -> JSONResponse:
    loc = own_location(request, locationId)
    if not 1 <= limit <= 100 or skip < 0:
        raise SandboxHTTPError(422, ["limit must be between 1 and 100 and skip must not be negative"])
    q = (query or "").lower()
    rows = sorted(
        (
            c
            for c in loc.contacts.values()
            if c.data.get("businessId") == businessId and (not q or q in c.data["fullNameLowerCase"])
        ),
        key=lambda c: (c.added_ms, c.id),
    )
    return ok({"contacts": [c.data for c in rows[skip : skip + limit]], "count": len(rows)})
