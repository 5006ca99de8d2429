"""Request payloads in GHL's field names: the checks of what an operator (or the hook) is asked to send."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from airflow_provider_ghl.checks import (
    known_fields,
    optional_text,
    require_bool,
    require_choice,
    require_datetime,
    require_mapping,
    require_str_list,
)
from airflow_provider_ghl.exceptions import GHLInputError

#: What a bulk tag update does (the ``{type}`` of ``POST /contacts/bulk/tags/update/{type}``).
BULK_TAG_ACTIONS: tuple[Literal["add", "remove"], ...] = ("add", "remove")

#: Fields ``PUT /contacts/{contactId}/tasks/{taskId}`` accepts.
TASK_FIELDS = ("title", "body", "dueDate", "completed", "assignedTo")

#: Fields ``PUT /contacts/{contactId}/notes/{id}`` accepts.
NOTE_FIELDS = ("body", "userId", "title", "color", "pinned")

#: Why a contact payload may not carry ``locationId``: the location comes from the operator or the connection.
LOCATION_FROM_OPERATOR = {"locationId": "set the operator's location_id instead"}


def contact_fields(
    field: str,
    value: Any,
    forbidden: Mapping[str, str] = LOCATION_FROM_OPERATOR,
    *,
    match_on_email_or_phone: bool = False,
) -> dict[str, Any]:
    """A contact payload: a JSON object with well-shaped ``tags`` and ``customFields``, none of the ``forbidden``
    keys (each mapped to the reason) and, with ``match_on_email_or_phone`` (an upsert), an e-mail or a phone."""
    fields = require_mapping(field, value)
    for key, reason in forbidden.items():
        if key in fields:
            raise GHLInputError(f"{field}.{key}", reason)
    if "tags" in fields:
        fields["tags"] = require_str_list(f"{field}.tags", fields["tags"], allow_empty=True)
    custom = fields.get("customFields")
    if custom is not None:
        if not isinstance(custom, list) or not all(isinstance(c, Mapping) for c in custom):
            raise GHLInputError(f"{field}.customFields", "expected a list of {id|key, field_value} objects")
        for i, item in enumerate(custom):
            if not (item.get("id") or item.get("key")):
                raise GHLInputError(f"{field}.customFields[{i}]", "needs an 'id' or a 'key'")
    if match_on_email_or_phone and not (fields.get("email") or fields.get("phone")):
        raise GHLInputError(field, "an upsert needs 'email' or 'phone' to match on")
    return fields


def task_fields(field: str, value: Any) -> dict[str, Any]:
    """A task update payload: only the fields GHL accepts, with a real ``dueDate`` and ``completed``."""
    fields = known_fields(field, value, TASK_FIELDS, "task")
    if "dueDate" in fields:
        fields["dueDate"] = require_datetime(f"{field}.dueDate", fields["dueDate"])
    if "completed" in fields:
        fields["completed"] = require_bool(f"{field}.completed", fields["completed"])
    return fields


def note_fields(field: str, value: Any) -> dict[str, Any]:
    """A note update payload: only the fields GHL accepts, a non-blank ``body`` and a real ``pinned``."""
    fields = known_fields(field, value, NOTE_FIELDS, "note")
    if "body" in fields:
        optional_text(f"{field}.body", fields["body"], required=True)
    if "pinned" in fields:
        fields["pinned"] = require_bool(f"{field}.pinned", fields["pinned"])
    return fields


def bulk_tag_change(action: Any, remove_all_tags: Any, tags: Any) -> dict[str, Any]:
    """``action``, ``remove_all_tags`` and ``tags`` of a bulk tag update: with ``remove_all_tags`` (only for
    ``remove``) ``tags`` may be empty."""
    checked_action = require_choice("action", action, BULK_TAG_ACTIONS)
    remove_all = require_bool("remove_all_tags", remove_all_tags)
    if remove_all and checked_action != "remove":
        raise GHLInputError("remove_all_tags", "only applies to action='remove'")
    return {
        "action": checked_action,
        "remove_all_tags": remove_all,
        "tags": require_str_list("tags", tags, allow_empty=remove_all),
    }
