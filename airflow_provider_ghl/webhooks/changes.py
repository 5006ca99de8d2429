"""What one GHL webhook event means for the records it touches, and how those records are laid out.

Every event becomes one :class:`Change` of one record, keyed ``(kind, record_id)`` like the inbox's versions:

- ``ContactCreate``, ``ContactUpdate``: contacts, ``put`` (the payload is the contact);
- ``ContactTagUpdate`` (``tags``), ``ContactDndUpdate`` (``dnd``, ``dndSettings``): contacts, ``merge`` (the
  changed fields onto the contact);
- ``ContactDelete``: contacts, ``delete`` (a tombstone);
- ``NoteCreate``, ``NoteUpdate`` / ``NoteDelete``: notes, ``put`` / ``delete``;
- ``TaskCreate`` / ``TaskComplete`` / ``TaskDelete``: tasks, ``put`` / ``merge`` (``completed``) / ``delete``;
- ``AppointmentCreate``, ``AppointmentUpdate`` / ``AppointmentDelete``: appointments, ``put`` / ``delete`` (the
  record is the payload's ``appointment`` object).

Other types (``INSTALL``, ``UNINSTALL``, anything new) change no record and are counted as ignored.

A record is the payload without the delivery envelope (``webhookId``, ``timestamp``, ``type``, ``appId``; so a
contact's own ``type`` field, which the envelope's shadows, is not in the output) plus three fields saying which
event it is as of: ``_event_timestamp`` (its version, the event's ``timestamp``), ``_event_type`` and
``_webhook_id``. Child records also carry ``_deleted`` (False, or True for a child's tombstone: its id,
``contactId`` when known and ``locationId``). A deleted contact is a tombstone in the ``tombstones`` dataset in the
shape a full export writes its ``deleted`` dataset (``id``, ``locationId``, ``detectedAt``: here the event's
``timestamp``), plus the same three event fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_ghl.outputs.columns import CHILD_COLUMNS, CONTACT_COLUMNS, TOMBSTONE_COLUMNS
from airflow_provider_ghl.webhooks.inbox import event_instant

if TYPE_CHECKING:
    from airflow_provider_ghl.outputs.parquet import ParquetTable
    from airflow_provider_ghl.webhooks.inbox import InboxEvent

#: The kinds of record (the inbox's version keys) and the datasets of a batch.
KINDS = ("contacts", "notes", "tasks", "appointments")
TOMBSTONES = "tombstones"
DATASETS = ("contacts", TOMBSTONES, "tasks", "notes", "appointments")
CHILD_KINDS = ("notes", "tasks", "appointments")

#: Keys of the delivery, not of the record.
ENVELOPE = frozenset({"webhookId", "timestamp", "type", "appId"})
#: The fields naming the event a record is as of.
EVENT_TIMESTAMP, EVENT_TYPE, WEBHOOK_ID, DELETED_FLAG = "_event_timestamp", "_event_type", "_webhook_id", "_deleted"
EVENT_FIELDS = (EVENT_TIMESTAMP, EVENT_TYPE, WEBHOOK_ID)

Action = Literal["put", "merge", "delete"]

#: Event type -> (kind, action).
EVENT_ACTIONS: dict[str, tuple[str, Action]] = {
    "ContactCreate": ("contacts", "put"),
    "ContactUpdate": ("contacts", "put"),
    "ContactDelete": ("contacts", "delete"),
    "ContactTagUpdate": ("contacts", "merge"),
    "ContactDndUpdate": ("contacts", "merge"),
    "NoteCreate": ("notes", "put"),
    "NoteUpdate": ("notes", "put"),
    "NoteDelete": ("notes", "delete"),
    "TaskCreate": ("tasks", "put"),
    "TaskComplete": ("tasks", "merge"),
    "TaskDelete": ("tasks", "delete"),
    "AppointmentCreate": ("appointments", "put"),
    "AppointmentUpdate": ("appointments", "put"),
    "AppointmentDelete": ("appointments", "delete"),
}
#: The fields a ``merge`` event changes; a payload with nothing else but ids does not carry the record.
MERGED_FIELDS: dict[str, frozenset[str]] = {
    "ContactTagUpdate": frozenset({"tags"}),
    "ContactDndUpdate": frozenset({"dnd", "dndSettings"}),
    "TaskComplete": frozenset({"completed"}),
}
_ID_FIELDS = frozenset({"id", "locationId", "contactId"})
#: Fields only some events of a kind carry: a ``put`` without them keeps what an earlier event of the batch set
#: (``dndSettings`` comes only with ``ContactDndUpdate``; a contact update does not clear it).
CARRIED_OVER: dict[str, frozenset[str]] = {"contacts": frozenset({"dndSettings"})}


@dataclass(frozen=True)
class Change:
    """What one event does to one record.

    :param kind: ``contacts``, ``notes``, ``tasks`` or ``appointments``.
    :param record_id: the record's id.
    :param action: ``put`` (the fields are the whole record), ``merge`` (they change some of it) or ``delete``.
    :param fields: the record's fields from the payload (no envelope).
    :param event: the inbox event.
    :param instant: the event's ``timestamp`` as a UTC datetime (the order of last writer wins).
    """

    kind: str
    record_id: str
    action: Action
    fields: dict[str, Any]
    event: InboxEvent
    instant: datetime

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.record_id

    @property
    def order(self) -> tuple[datetime, int]:
        """Last writer wins by ``timestamp``; of two events of the same instant, the later arrival wins."""
        return self.instant, self.event.seq

    @property
    def carries_record(self) -> bool:
        """Whether ``fields`` hold the whole record (a ``merge`` may carry only what changed)."""
        if self.action != "merge":
            return self.action == "put"
        return bool(set(self.fields) - MERGED_FIELDS.get(self.event.type, frozenset()) - _ID_FIELDS)


def change_of(event: InboxEvent) -> Change | None:
    """The change ``event`` makes; None for a type that changes no record, a payload without its record id, or
    a ``timestamp`` that is not one (counted as ignored)."""
    mapped = EVENT_ACTIONS.get(event.type)
    if mapped is None:
        return None
    kind, action = mapped
    body = event.body
    if kind == "appointments":
        nested = body.get("appointment")
        fields = dict(nested) if isinstance(nested, Mapping) else {}
        fields.setdefault("locationId", event.location_id)
    else:
        fields = {k: v for k, v in body.items() if k not in ENVELOPE}
    if event.type == "TaskComplete":
        fields["completed"] = True
    record_id = fields.get("id")
    if not isinstance(record_id, str) or not record_id:
        return None
    try:
        instant = event_instant(event.timestamp)
    except (TypeError, ValueError):
        # The receiver refuses such deliveries; one that got in anyway must not stop its location's batches.
        return None
    return Change(kind, record_id, action, fields, event, instant)


def event_fields(change: Change) -> dict[str, Any]:
    """The fields naming the event a record is as of."""
    return {EVENT_TIMESTAMP: change.event.timestamp, EVENT_TYPE: change.event.type, WEBHOOK_ID: change.event.webhook_id}


def contact_tombstone(change: Change) -> dict[str, Any]:
    """A deleted contact, in the shape of a full export's ``deleted`` dataset."""
    location = change.fields.get("locationId") or change.event.location_id
    return {
        "id": change.record_id,
        "locationId": location,
        "detectedAt": change.event.timestamp,
        **event_fields(change),
    }


def child_tombstone(change: Change, contact_id: str | None) -> dict[str, Any]:
    """A deleted note, task or appointment: its ids and ``_deleted``."""
    location = change.fields.get("locationId") or change.event.location_id
    return {
        "id": change.record_id,
        "contactId": contact_id,
        "locationId": location,
        DELETED_FLAG: True,
        **event_fields(change),
    }


# -- layouts ---------------------------------------------------------------------------------------------------
#: Each dataset's CSV columns: the export's, then the event fields.
CSV_LAYOUTS: dict[str, Sequence[str]] = {
    "contacts": (*CONTACT_COLUMNS, *EVENT_FIELDS),
    TOMBSTONES: (*TOMBSTONE_COLUMNS, *EVENT_FIELDS),
    **{
        kind: (*dict.fromkeys((*CHILD_COLUMNS[kind], "locationId")), DELETED_FLAG, *EVENT_FIELDS)
        for kind in CHILD_KINDS
    },
}


def parquet_tables() -> dict[str, ParquetTable]:
    """Each dataset's Parquet table: the export's typed columns plus the event fields (pyarrow needed)."""
    from airflow_provider_ghl.outputs.parquet import CHILD_FIELDS, CONTACT_FIELDS, TOMBSTONE_FIELDS, ParquetTable

    event = {EVENT_TIMESTAMP: "timestamp", EVENT_TYPE: "text", WEBHOOK_ID: "text"}
    # No custom field definitions are read for a batch (no request): every value stays in the raw customFields.
    tables = {
        "contacts": ParquetTable({**CONTACT_FIELDS, **event}, {}, raw_custom_fields=True),
        TOMBSTONES: ParquetTable.for_fields({**TOMBSTONE_FIELDS, **event}),
    }
    for kind in CHILD_KINDS:
        fields = {**CHILD_FIELDS[kind], "locationId": "text", DELETED_FLAG: "bool", **event}
        tables[kind] = ParquetTable.for_fields(fields)
    return tables
