"""The CSV columns of each GHL dataset: the one definition the exports, the tombstones and the webhook batches share.

Parquet types the same datasets (:mod:`~airflow_provider_ghl.outputs.parquet`); JSON Lines keeps records whole.
"""

from __future__ import annotations

from collections.abc import Sequence

#: A contact's columns (custom fields are added per location, by key).
CONTACT_COLUMNS = (
    "id", "locationId", "firstName", "lastName", "name", "email", "phone", "companyName", "address1", "city",
    "state", "postalCode", "country", "timezone", "website", "type", "source", "assignedTo", "dnd", "tags",
    "dateOfBirth", "dateAdded", "dateUpdated", "businessId",
)  # fmt: skip

#: The columns of a contact's children, by kind.
CHILD_COLUMNS: dict[str, tuple[str, ...]] = {
    "tasks": ("id", "contactId", "title", "body", "assignedTo", "dueDate", "completed"),
    "notes": ("id", "contactId", "body", "userId", "dateAdded", "title", "color", "pinned"),
    "appointments": (
        "id", "contactId", "calendarId", "locationId", "title", "status", "appointmentStatus", "assignedUserId",
        "startTime", "endTime", "address", "groupId", "notes", "users", "dateAdded", "dateUpdated",
    ),
}  # fmt: skip

#: A deleted contact's columns (the ``deleted`` dataset of a full export).
TOMBSTONE_COLUMNS = ("id", "locationId", "detectedAt")

#: Every enrichment dataset's CSV columns.
ENRICHMENT_CSV_COLUMNS: dict[str, Sequence[str]] = {"contacts": CONTACT_COLUMNS, **CHILD_COLUMNS}
