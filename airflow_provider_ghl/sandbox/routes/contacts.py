"""Contact routes: get, create, update, delete, upsert, the deprecated list, search, duplicates, by business."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from airflow_provider_ghl.sandbox import models as m
from airflow_provider_ghl.sandbox.data import Contact, Location, iso, new_id
from airflow_provider_ghl.sandbox.errors import SandboxHTTPError
from airflow_provider_ghl.sandbox.routes.common import ok, own_contact, own_location, sandbox_of
from airflow_provider_ghl.sandbox.search import SearchError, cursor_of, search
from airflow_provider_ghl.sandbox.state import Sandbox
from airflow_provider_ghl.sandbox.versions import contact_fields_in, contact_out, success

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# DTO fields GHL accepts but does not store on the contact.
NOT_STORED = ("createNewIfDuplicateAllowed", "inboundDndSettings")

router = APIRouter()


def _apply_contact_fields(sb: Sandbox, loc: Location, contact: Contact, fields: dict[str, Any]) -> None:
    """Write DTO fields into a contact the way GHL stores them (lower-case copies, custom field values)."""
    if "email" in fields and fields["email"] is not None and not EMAIL_RE.match(fields["email"]):
        raise SandboxHTTPError(422, ["email must be an email"])
    if "customFields" in fields and fields["customFields"] is not None:
        fields["customFields"] = _custom_field_values(loc, contact, fields["customFields"])
    loc.unindex(contact)
    data = contact.data
    for key, value in fields.items():
        if key in NOT_STORED:
            continue
        data[key] = value
    first, last = data.get("firstName") or "", data.get("lastName") or ""
    if "name" not in fields and (first or last):
        data["name"] = f"{first} {last}".strip()
    data["firstNameLowerCase"] = first.lower()
    data["lastNameLowerCase"] = last.lower()
    data["fullNameLowerCase"] = (data.get("name") or "").lower()
    data["emailLowerCase"] = (data.get("email") or "").lower()
    data.setdefault("tags", [])
    loc.index(contact)
    contact.touch(sb.store.now_ms())
    loc.changed()


def _custom_field_values(loc: Location, contact: Contact, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The contact's custom field values after ``items`` (by field id, key or short key) are written."""
    by_id = {f["id"]: f for f in loc.custom_fields}
    by_key = {f["fieldKey"]: f for f in loc.custom_fields}
    values = {cf["id"]: cf["value"] for cf in contact.data.get("customFields", [])}
    for item in items:
        ref = item.get("id") or item.get("key")
        field = by_id.get(ref) or by_key.get(ref) or by_key.get(f"contact.{ref}")
        if field is None:
            raise SandboxHTTPError(422, [f"customFields: no custom field with id or key {ref!r}"])
        for name in ("field_value", "fieldValue", "value"):
            if name in item:
                values[field["id"]] = item[name]
                break
        else:
            raise SandboxHTTPError(422, [f"customFields.{ref}: field_value should not be empty"])
    return [{"id": k, "value": v} for k, v in values.items()]


def _new_contact(sb: Sandbox, loc: Location, fields: dict[str, Any]) -> Contact:
    """A new contact of ``loc`` with the request's ``fields`` (stored names; ``locationId`` is dropped)."""
    now = sb.store.now_ms()
    cid = new_id(sb.store.rng)
    contact = Contact({"id": cid, "locationId": loc.id, "dateAdded": iso(now), "dateUpdated": iso(now)}, now, now)
    contact.data.update(tags=[], customFields=[], followers=[], additionalEmails=[], dnd=False, type="lead")
    # A contact made through the API has no tasks, notes or appointments yet (only seeded ones get generated).
    contact.tasks, contact.notes, contact.events = {}, {}, {}
    _apply_contact_fields(sb, loc, contact, {k: v for k, v in fields.items() if k != "locationId"})
    contact.added_ms = contact.updated_ms
    contact.data["dateAdded"] = contact.data["dateUpdated"]
    loc.add(contact)
    return contact


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
    contact = _new_contact(sb, loc, contact_fields_in(request, dto.model_dump(exclude_unset=True)))
    return ok({"contact": contact_out(request, contact.data)}, 201)


@router.put("/contacts/{contactId}")
async def update_contact(request: Request, contactId: str, dto: m.UpdateContactDto) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    fields = contact_fields_in(request, dto.model_dump(exclude_unset=True))
    _apply_contact_fields(sandbox_of(request), loc, contact, fields)
    return ok({**success(request, v3_spelling_only=True), "contact": contact_out(request, contact.data)})


@router.delete("/contacts/{contactId}")
async def delete_contact(request: Request, contactId: str) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    loc.remove(contact.id)
    return ok(success(request))


@router.post("/contacts/upsert")
async def upsert_contact(request: Request, dto: m.UpsertContactDto) -> JSONResponse:
    sb = sandbox_of(request)
    loc = own_location(request, dto.locationId)
    dup = loc.find_duplicate(dto.email, dto.phone)
    fields = contact_fields_in(request, dto.model_dump(exclude_unset=True, exclude={"createNewIfDuplicateAllowed"}))
    if dup is None or (sb.config.allow_duplicates and dto.createNewIfDuplicateAllowed):
        contact, created = _new_contact(sb, loc, fields), True
    else:
        contact, created = dup[0], False
        _apply_contact_fields(sb, loc, contact, {k: v for k, v in fields.items() if k != "locationId"})
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
        now = sb.store.now_ms
        for contact in sb.rng.sample(list(loc.contacts.values()), min(n, len(loc.contacts))):
            contact.touch(now())
        loc.changed()
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
