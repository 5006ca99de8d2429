"""Which existing contact a record is: found by its id, or by GHL's duplicate lookup, never by guessing.

``match_on`` orders the keys tried (default: ``id``, then ``email``, then ``phone``). An id is read with
``GET /contacts/{id}``; an e-mail or phone goes to ``GET /contacts/search/duplicate``, the very rule GHL applies
to refuse a duplicate, so what it finds is the contact a create would collide with. An e-mail directly followed by
a phone in ``match_on`` is one lookup with both (GHL tries the e-mail first). A record's id that GHL does not
know rejects the row: a contact cannot be created with a chosen id.

Two rows of one file with the same key would race each other (both see no contact, both create); the second is
rejected instead (:class:`InFileKeys`), so a dry run can predict the real run row by row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_ghl.exceptions import GHLNotFoundError
from airflow_provider_ghl.hooks import operations as ops
from airflow_provider_ghl.hooks.request import RequestRunner
from airflow_provider_ghl.writeback.rows import InputRow, RowRejected, WriteBackRecord

#: The keys a record can be matched on, in the default order.
MATCH_KEYS = ("id", "email", "phone")
#: What a contact from the duplicate lookup must hold to be diffed without reading it again.
_FULL_CONTACT = ("tags", "customFields")


def record_keys(record: WriteBackRecord, match_on: Sequence[str]) -> list[tuple[str, str]]:
    """The record's usable keys in ``match_on`` order (e-mails compared without case)."""
    values = {"id": record.contact_id, "email": (record.email or "").lower() or None, "phone": record.phone}
    return [(key, value) for key in match_on if (value := values.get(key))]


class InFileKeys:
    """The keys claimed by earlier rows of the file; a row sharing one is rejected.

    :param match_on: the keys rows are matched on.
    """

    def __init__(self, match_on: Sequence[str]) -> None:
        self.match_on = tuple(match_on)
        self._seen: dict[tuple[str, str], int] = {}

    def claim(self, row: InputRow) -> None:
        """Reject ``row`` (set its problem) when it has no usable key or shares one with an earlier row."""
        if row.record is None:
            return
        keys = record_keys(row.record, self.match_on)
        if not keys:
            row.record, row.problem = None, f"no key to match on: give one of {', '.join(self.match_on)}"
            return
        for key in keys:
            if (earlier := self._seen.get(key)) is not None:
                row.record = None
                row.problem = f"{key[0]}: row {earlier} of this file has the same one (one row per contact)"
                return
        for key in keys:
            self._seen[key] = row.number


def find_contact(
    hook: RequestRunner, record: WriteBackRecord, match_on: Sequence[str], location_id: str
) -> tuple[dict[str, Any] | None, str | None]:
    """``(the contact, the key that found it)``, or ``(None, None)`` when no contact has the record's keys.

    :param hook: runs the reads (the hook's funnel retries them).
    :param record: the record.
    :param match_on: keys in the order to try.
    :param location_id: the location searched.
    """
    for lookup in _lookups(record, match_on):
        if "id" in lookup:
            try:
                return hook.run(ops.get_contact(lookup["id"])), "id"
            except GHLNotFoundError:
                raise RowRejected(
                    f"id: GHL has no contact {lookup['id']!r} (a contact cannot be made with an id)"
                ) from None
        contact = hook.run(
            ops.get_duplicate_contact(email=lookup.get("email"), phone=lookup.get("phone"), location_id=location_id)
        )
        if contact:
            return full_contact(hook, contact), "+".join(lookup)
    return None, None


def full_contact(hook: RequestRunner, contact: Mapping[str, Any]) -> dict[str, Any]:
    """``contact`` if it holds what a diff needs, else the contact read by id."""
    if all(key in contact for key in _FULL_CONTACT):
        return dict(contact)
    return hook.run(ops.get_contact(str(contact["id"])))


def _lookups(record: WriteBackRecord, match_on: Sequence[str]) -> list[dict[str, str]]:
    lookups: list[dict[str, str]] = []
    previous = None
    for key, value in record_keys(record, match_on):
        if key == "phone" and previous == "email":
            lookups[-1]["phone"] = value
        else:
            lookups.append({key: record.email if key == "email" else value})  # type: ignore[dict-item]
        previous = key
    return lookups
