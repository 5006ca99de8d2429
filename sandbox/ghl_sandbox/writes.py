"""The sandbox's writes: what GHL does to its data for each kind of change, shared by API and admin routes.

The API routes (``routes/*.py``) and ``POST /_sandbox/changes`` call these, so a change made either way stores
the same data and, through :class:`~ghl_sandbox.data.Location`'s change methods (``add``,
``remove``, ``touched``, ``put_child``, ``drop_child``), reports the same webhook. Each function checks its input
before it changes anything (a refused write changes nothing and reports nothing).
"""

from __future__ import annotations

import re
from typing import Any

from ghl_sandbox.data import Contact, Location, iso, new_id, parse_time
from ghl_sandbox.errors import SandboxHTTPError
from ghl_sandbox.state import Sandbox

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# DTO fields GHL accepts but does not store on the contact.
NOT_STORED = ("createNewIfDuplicateAllowed", "inboundDndSettings")


def check_time(value: str | None, name: str) -> None:
    """GHL's 422 for a date field that is not an ISO 8601 string; ``None`` (not sent) passes.

    :param value: the field's value.
    :param name: the field's name, for the message.
    """
    if value is None:
        return
    try:
        parse_time(value)
    except ValueError:
        raise SandboxHTTPError(422, [f"{name} must be a valid ISO 8601 date string"]) from None


# -- contacts -----------------------------------------------------------------------------------------------
def check_contact_fields(loc: Location, fields: dict[str, Any]) -> None:
    """GHL's 422 for contact fields it refuses (an email that is not one, an unknown custom field); no write."""
    if "email" in fields and fields["email"] is not None and not EMAIL_RE.match(fields["email"]):
        raise SandboxHTTPError(422, ["email must be an email"])
    if fields.get("customFields") is not None:
        _custom_field_values(loc, Contact({"id": ""}, 0, 0), fields["customFields"])


def _write_fields(loc: Location, contact: Contact, fields: dict[str, Any]) -> set[str]:
    """Write DTO fields into a contact the way GHL stores them (lower-case copies, custom field values).

    :returns: the names of the fields whose value changed.
    """
    check_contact_fields(loc, fields)
    if "customFields" in fields and fields["customFields"] is not None:
        fields = {**fields, "customFields": _custom_field_values(loc, contact, fields["customFields"])}
    loc.unindex(contact)
    data = contact.data
    changed: set[str] = set()
    for key, value in fields.items():
        if key in NOT_STORED:
            continue
        if data.get(key) != value:
            changed.add(key)
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
    return changed


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


def create_contact(sb: Sandbox, loc: Location, fields: dict[str, Any]) -> Contact:
    """A new contact of ``loc`` with ``fields`` (stored names; ``locationId`` is dropped); ContactCreate.

    :param sb: the sandbox (its id generator).
    :param loc: the location.
    :param fields: the contact's fields as the create DTO gives them.
    """
    now = loc.clock()
    contact = Contact({"id": new_id(sb.store.rng), "locationId": loc.id}, now, now)
    contact.data.update(tags=[], customFields=[], followers=[], additionalEmails=[], dnd=False, type="lead")
    # A contact made through the API has no tasks, notes or appointments yet (only seeded ones get generated).
    contact.tasks, contact.notes, contact.events = {}, {}, {}
    _write_fields(loc, contact, {k: v for k, v in fields.items() if k != "locationId"})
    contact.touch(now)
    contact.data["dateAdded"] = contact.data["dateUpdated"]
    loc.add(contact)
    return contact


def update_contact(loc: Location, contact: Contact, fields: dict[str, Any]) -> None:
    """Write ``fields`` into an existing contact; ContactUpdate, ContactTagUpdate and/or ContactDndUpdate.

    :param loc: the contact's location.
    :param contact: the contact.
    :param fields: the fields as the update DTO gives them.
    """
    loc.touched(contact, _write_fields(loc, contact, {k: v for k, v in fields.items() if k != "locationId"}))


def delete_contact(loc: Location, contact: Contact) -> None:
    """Delete a contact; ContactDelete."""
    loc.remove(contact.id)


def set_tags(loc: Location, contact: Contact, tags: list[str]) -> None:
    """Give a contact exactly ``tags``; ContactTagUpdate when they changed, nothing otherwise.

    :param loc: the contact's location.
    :param contact: the contact.
    :param tags: the new tags, in order.
    """
    if tags != contact.data.get("tags", []):
        contact.data["tags"] = tags
        loc.touched(contact, {"tags"})


def add_tags(loc: Location, contact: Contact, tags: list[str]) -> list[str]:
    """Add tags (each once, after the existing ones); the contact's tags after."""
    old = contact.data.get("tags", [])
    set_tags(loc, contact, old + [t for t in dict.fromkeys(tags) if t not in old])
    return list(contact.data["tags"])


def remove_tags(loc: Location, contact: Contact, tags: list[str]) -> list[str]:
    """Remove tags; the contact's tags after."""
    set_tags(loc, contact, [t for t in contact.data.get("tags", []) if t not in tags])
    return list(contact.data.get("tags", []))


def set_field(loc: Location, contact: Contact, name: str, value: Any) -> None:
    """Set one stored field that no DTO writes (``followers``, ``businessId``, ``lastActivity``); ContactUpdate."""
    contact.data[name] = value
    loc.touched(contact, {name})


# -- tasks, notes and appointments ------------------------------------------------------------------------------
def children_of(loc: Location, contact: Contact, kind: str) -> dict[str, dict[str, Any]]:
    """The records of ``kind`` (``tasks``, ``notes``, ``events``) of a contact."""
    records: dict[str, dict[str, Any]] = getattr(loc.children(contact), kind)
    return records


def create_child(sb: Sandbox, loc: Location, contact: Contact, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A new task, note or appointment of a contact, shaped as GHL stores it; TaskCreate / NoteCreate / ...

    :param sb: the sandbox (its id generator).
    :param loc: the contact's location.
    :param contact: the contact.
    :param kind: ``tasks``, ``notes`` or ``events``.
    :param fields: the record's fields as the create DTO gives them.
    """
    check_time(fields.get("dueDate"), "dueDate")
    record = {"id": new_id(sb.store.rng), **fields, "contactId": contact.id}
    now = iso(loc.clock())
    if kind == "notes":
        record = {"title": "", "color": "", "pinned": False, "userId": "", **record, "dateAdded": now}
    elif kind == "events":
        for name in ("startTime", "endTime"):
            check_time(fields.get(name), name)
        record = {
            "calendarId": loc.campaigns[0], "status": "booked", "title": "", "assignedUserId": "", "notes": "",
            "address": "", "groupId": "", "appointmentStatus": "new", "users": [], "assignedResources": [],
            "source": "booking_widget", **record, "locationId": loc.id, "dateAdded": now, "dateUpdated": now,
        }  # fmt: skip
    loc.put_child(contact, kind, record, None)
    return record


def update_child(loc: Location, contact: Contact, kind: str, child_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Update a task, note or appointment (400 if the contact has none with that id); NoteUpdate, TaskComplete..."""
    check_time(fields.get("dueDate"), "dueDate")
    record = child(loc, contact, kind, child_id)
    before = dict(record)
    record.update(fields)
    if kind == "events":
        record["dateUpdated"] = iso(loc.clock())
    loc.put_child(contact, kind, record, before)
    return record


def delete_child(loc: Location, contact: Contact, kind: str, child_id: str) -> None:
    """Delete a task, note or appointment (400 if the contact has none with that id); TaskDelete, NoteDelete..."""
    child(loc, contact, kind, child_id)
    loc.drop_child(contact, kind, child_id)


CHILD_NAMES = {"tasks": "Task", "notes": "Note", "events": "Appointment"}


def child(loc: Location, contact: Contact, kind: str, child_id: str) -> dict[str, Any]:
    """One record of a contact; GHL's 400 when it has none with that id."""
    items = children_of(loc, contact, kind)
    if child_id not in items:
        raise SandboxHTTPError(400, f"{CHILD_NAMES[kind]} with id {child_id} not found")
    return items[child_id]
