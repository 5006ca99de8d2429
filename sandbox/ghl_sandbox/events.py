"""GHL's webhook payloads: a change of the sandbox's data as the flat JSON event GHL would POST.

Shapes from GHL's webhook reference (``ghl-api-details.md`` §6): ``type`` and ``locationId`` first, then the
record's documented fields (contact events the flat contact, ``ContactDndUpdate`` with ``dndSettings``; notes,
tasks; appointments nested under ``appointment``), then ``webhookId`` and ``timestamp`` (the change's time).
Only documented fields go out: a receiver tested here must not lean on anything GHL does not send.
"""

from __future__ import annotations

import copy
from typing import Any

from ghl_sandbox.data import iso

CONTACT_FIELDS = (
    "id", "address1", "city", "state", "companyName", "country", "source", "dateAdded", "dateOfBirth", "dnd",
    "email", "name", "firstName", "lastName", "phone", "postalCode", "tags", "website", "attachments",
    "assignedTo", "customFields",
)  # fmt: skip
NOTE_FIELDS = ("id", "body", "contactId", "dateAdded")
TASK_FIELDS = ("id", "assignedTo", "body", "contactId", "title", "dateAdded", "dueDate")
APPOINTMENT_FIELDS = (
    "id", "address", "title", "calendarId", "contactId", "groupId", "appointmentStatus", "assignedUserId", "users",
    "notes", "source", "startTime", "endTime", "dateAdded", "dateUpdated",
)  # fmt: skip

#: The app's own lifecycle events (WH/AppInstall, WH/AppUninstall): their record is the payload's fields.
APP_EVENT_TYPES = ("INSTALL", "UNINSTALL")
EVENT_TYPES = (
    "ContactCreate", "ContactUpdate", "ContactDelete", "ContactTagUpdate", "ContactDndUpdate",
    "NoteCreate", "NoteUpdate", "NoteDelete", "TaskCreate", "TaskComplete", "TaskDelete",
    "AppointmentCreate", "AppointmentUpdate", "AppointmentDelete",
)  # fmt: skip


def _pick(record: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    # Deep copies: the payload is the state at the change, whatever later writes do to the record.
    return {name: copy.deepcopy(record[name]) for name in names if name in record}


def payload(event_type: str, location_id: str, record: dict[str, Any], at_ms: int, webhook_id: str) -> dict[str, Any]:
    """The event GHL sends for a change.

    :param event_type: one of :data:`EVENT_TYPES` or :data:`APP_EVENT_TYPES`.
    :param location_id: the location whose data changed.
    :param record: the contact, note, task or appointment after the change (before it, for a delete); for
        ``INSTALL``/``UNINSTALL`` the event's own fields (``appId``...).
    :param at_ms: when the change happened (epoch ms).
    :param webhook_id: the event's id, the same on every delivery of it.
    """
    event: dict[str, Any] = {"type": event_type, "locationId": location_id}
    if event_type.startswith("Contact"):
        fields = _pick(record, CONTACT_FIELDS)
        fields.setdefault("attachments", [])
        fields["customFields"] = [{"id": cf["id"], "value": cf["value"]} for cf in fields.get("customFields", [])]
        if event_type == "ContactDndUpdate":
            fields["dndSettings"] = copy.deepcopy(record.get("dndSettings") or {})
        event.update(fields)
    elif event_type.startswith("Note"):
        event.update(_pick(record, NOTE_FIELDS))
    elif event_type.startswith("Task"):
        event.update(_pick(record, TASK_FIELDS))
    elif event_type.startswith("Appointment"):
        event["appointment"] = _pick(record, APPOINTMENT_FIELDS)
    elif event_type in APP_EVENT_TYPES:
        event.update(copy.deepcopy(record))
    else:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    event["webhookId"] = webhook_id
    event["timestamp"] = iso(at_ms)
    return event
