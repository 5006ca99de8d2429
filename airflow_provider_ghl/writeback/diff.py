"""What a record would change on a contact: the fields of one PUT, the tags to add or remove, the children to create.

A record is compared with the contact as GHL returns it; only what differs is written, and nothing at all when
nothing differs. Tags never go in the PUT (``tags`` there replaces every tag, racing anyone else's tagging): they
go through the add / remove tag endpoints. Custom fields are compared by field id; a record may name them by
key (``contact.plan`` or ``plan``), resolved through the location's definitions. Without the definitions (the
token lacks ``locations/customFields.readonly``) a value named by key cannot be compared and is written as
given, by key: correct, though not minimal.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from airflow_provider_ghl.checks import parse_datetime
from airflow_provider_ghl.writeback.rows import CustomFieldValue, RowRejected, WriteBackRecord

#: ``tags_mode`` values: ``add`` only adds the record's tags; ``replace`` also removes the contact's others.
TAGS_MODES = ("add", "replace")
#: Fields that identify a child record (a task or note with the same ones already exists: not created again).
CHILD_IDENTITY = {"tasks": ("title", "dueDate", "body"), "notes": ("body", "title")}
#: An ISO date-time at midnight UTC, kept to its day (``1990-01-02T00:00:00.000Z`` -> ``1990-01-02``).
_ISO_DAY = re.compile(r"^(\d{4}-\d{2}-\d{2})T00:00:00(?:\.0+)?(?:Z|\+00:00)?$")


class CustomFieldRefs:
    """Resolves a record's custom field references (id or key) to field ids.

    :param definitions: the location's contact custom field definitions; None when they could not be read.
    """

    def __init__(self, definitions: Sequence[Mapping[str, Any]] | None) -> None:
        self.known = definitions is not None
        self._by_ref: dict[str, tuple[str, str]] = {}
        for definition in definitions or ():
            fid = str(definition["id"])
            key = str(definition.get("fieldKey") or "")
            self._by_ref[fid] = (fid, key or fid)
            if key:
                self._by_ref[key] = (fid, key)
                self._by_ref.setdefault(key.removeprefix("contact."), (fid, key))

    def resolve(self, value: CustomFieldValue) -> tuple[str | None, str]:
        """``(field id or None when it cannot be known, the name results use)``; :class:`RowRejected` for a
        reference the definitions do not have."""
        if not self.known:
            return (value.ref if value.by == "id" else None), value.ref
        hit = self._by_ref.get(value.ref)
        if hit is None:
            raise RowRejected(f"customFields.{value.ref}: no such custom field (id or key) in this location")
        return hit


@dataclass
class Change:
    """The writes a record needs on one contact.

    :param fields: body of the one PUT (changed standard fields, changed custom fields); empty: no PUT.
    :param tags_add: tags to add (``POST .../tags``).
    :param tags_remove: tags to remove (``DELETE .../tags``, ``tags_mode="replace"``).
    :param changed: names of what changes, for the results (``firstName``, ``customFields.contact.plan``,
        ``tags``).
    """

    fields: dict[str, Any] = field(default_factory=dict)
    tags_add: list[str] = field(default_factory=list)
    tags_remove: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.fields or self.tags_add or self.tags_remove)

    @property
    def writes(self) -> int:
        """Requests this change takes: one PUT, one tag add, one tag removal, each only when needed."""
        return bool(self.fields) + bool(self.tags_add) + bool(self.tags_remove)


def same_value(wanted: Any, current: Any) -> bool:
    """Whether a record's value equals GHL's across the ways one value is spelled: text compared without
    surrounding blanks, a number and its text (``"42"`` / ``42`` / ``42.0``), a list in any order."""
    if isinstance(wanted, list) or isinstance(current, list):
        if not (isinstance(wanted, list) and isinstance(current, list)):
            return False
        return sorted(map(_canonical, wanted)) == sorted(map(_canonical, current))
    if isinstance(wanted, str) and isinstance(current, str):
        return wanted.strip() == current.strip()  # "01234" is not 1234 when both sides are text
    return _canonical(wanted) == _canonical(current)


def _canonical(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            return text
        return _canonical(number) if number == number and abs(number) != float("inf") else text
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _same_field(name: str, wanted: Any, current: Any) -> bool:
    if name == "email" and isinstance(wanted, str) and isinstance(current, str):
        return wanted.strip().lower() == current.strip().lower()  # one address whatever its case
    if name == "dateOfBirth" and isinstance(wanted, str) and isinstance(current, str):
        # GHL may answer a date written as 1990-01-02 with its midnight: the same day.
        wanted, current = (_ISO_DAY.sub(r"\1", v.strip()) for v in (wanted, current))
    if isinstance(wanted, Mapping):
        return isinstance(current, Mapping) and _canonical(dict(wanted)) == _canonical(dict(current))
    return same_value(wanted, current)


def diff(record: WriteBackRecord, contact: Mapping[str, Any], refs: CustomFieldRefs, tags_mode: str) -> Change:
    """What ``record`` changes on ``contact`` (GHL's contact object).

    :param record: the checked record.
    :param contact: the contact as GHL returns it (``tags``, ``customFields`` as ``[{id, value}]``).
    :param refs: the custom field resolver.
    :param tags_mode: ``add`` or ``replace`` (see :data:`TAGS_MODES`).
    """
    change = Change()
    for name, wanted in record.fields.items():
        if not _same_field(name, wanted, contact.get(name)):
            change.fields[name] = wanted
            change.changed.append(name)
    current = {str(cf.get("id")): cf.get("value") for cf in contact.get("customFields") or ()}
    custom = []
    for value in record.custom_fields:
        field_id, name = refs.resolve(value)
        if field_id is not None and field_id in current and same_value(value.value, current[field_id]):
            continue
        if field_id is None:
            custom.append({"key": value.ref, "field_value": value.value})  # not comparable without definitions
        else:
            custom.append({"id": field_id, "field_value": value.value})
        change.changed.append(f"customFields.{name}")
    if custom:
        change.fields["customFields"] = custom
    if record.tags is not None:
        have = {t.lower() for t in contact.get("tags") or ()}
        want = {t.lower() for t in record.tags}
        change.tags_add = [t for t in record.tags if t.lower() not in have]
        if tags_mode == "replace":
            change.tags_remove = [t for t in contact.get("tags") or () if t.lower() not in want]
        if change.tags_add or change.tags_remove:
            change.changed.append("tags")
    return change


def create_body(record: WriteBackRecord, refs: CustomFieldRefs) -> tuple[dict[str, Any], list[str]]:
    """The body of ``POST /contacts/`` for a record without a contact, and the names of what it sets.

    Tags go in the create: a new contact has no tags to race with.
    """
    body: dict[str, Any] = dict(record.fields)
    changed = list(record.fields)
    custom = []
    for value in record.custom_fields:
        field_id, name = refs.resolve(value)
        ref = {"id": field_id} if field_id else {"key": value.ref}
        custom.append({**ref, "field_value": value.value})
        changed.append(f"customFields.{name}")
    if custom:
        body["customFields"] = custom
    if record.tags:
        body["tags"] = list(record.tags)
        changed.append("tags")
    return body, changed


def child_fingerprint(kind: str, child: Mapping[str, Any]) -> str:
    """A short stable digest of what identifies a task or note (:data:`CHILD_IDENTITY`), equal for the record's
    child and the one GHL returns once it is created (dates compared as instants)."""
    parts = []
    for key in CHILD_IDENTITY[kind]:
        value = child.get(key)
        if key == "dueDate" and (moment := parse_datetime(value)) is not None:
            value = moment.timestamp()
        parts.append("" if value is None else value)
    return hashlib.sha256(orjson.dumps([kind, *parts])).hexdigest()[:16]


def missing_children(
    kind: str, wanted: Iterable[Mapping[str, Any]], existing: Iterable[Mapping[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """``(fingerprint, child)`` of the record's children GHL does not have yet (each once)."""
    have = {child_fingerprint(kind, child) for child in existing}
    missing: dict[str, dict[str, Any]] = {}
    for child in wanted:
        fingerprint = child_fingerprint(kind, child)
        if fingerprint not in have:
            missing.setdefault(fingerprint, dict(child))
    return list(missing.items())
