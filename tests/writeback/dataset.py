"""A write-back input built from the sandbox's contacts, with what GHL must hold after it is applied.

Rows are new contacts, changed contacts (matched by id, e-mail or phone), unchanged contacts, and bad rows (an
e-mail that is not one, no key at all), shuffled. The expectations are computed here from the records, never
from the provider's results.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass, field
from typing import Any

REFERRAL = "contact.referral_code"
SCORE = "contact.lead_score"
NEW_TASK = {"title": "Welcome call", "dueDate": "2026-12-10T10:00:00.000Z"}
RENEWAL_TASK = {"title": "Renewal check", "dueDate": "2027-01-15T09:30:00.000Z", "body": "Ask about the plan"}
CSV_COLUMNS = ("id", "email", "phone", "firstName", "lastName", "tags", f"customFields.{REFERRAL}",
               f"customFields.{SCORE}", "tasks", "notes")  # fmt: skip


@dataclass
class WriteBackDataset:
    """Records in file order, and what each must do."""

    records: list[dict[str, Any]] = field(default_factory=list)
    #: Expected action of each row (1-based row number).
    actions: dict[int, str] = field(default_factory=dict)
    #: Rows whose record must end in GHL: row -> record.
    applied: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Existing contacts the rows change (id -> the contact before) and leave alone.
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    unchanged: dict[str, dict[str, Any]] = field(default_factory=dict)
    creates: int = 0
    field_updates: int = 0
    tag_adds: int = 0
    tasks: int = 0
    notes: int = 0

    @property
    def writes(self) -> int:
        return self.creates + self.field_updates + self.tag_adds + self.tasks + self.notes

    @property
    def bad_rows(self) -> list[int]:
        return sorted(row for row, action in self.actions.items() if action == "reject")

    def jsonl(self) -> bytes:
        return b"".join(json.dumps(r).encode() + b"\n" for r in self.records)

    def csv(self) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for record in self.records:
            custom = record.get("customFields", {})
            writer.writerow(
                [
                    record.get("id", ""),
                    record.get("email", ""),
                    record.get("phone", ""),
                    record.get("firstName", ""),
                    record.get("lastName", ""),
                    "|".join(record.get("tags", [])),
                    custom.get(REFERRAL, ""),
                    custom.get(SCORE, ""),
                    json.dumps(record["tasks"]) if record.get("tasks") else "",
                    json.dumps(record["notes"]) if record.get("notes") else "",
                ]
            )
        return out.getvalue().encode()


def build(
    contacts: list[dict[str, Any]],
    fields_by_key: dict[str, str],
    *,
    new: int = 800,
    changed: int = 800,
    unchanged: int = 400,
    bad_email: int = 30,
    no_key: int = 20,
    seed: int = 5,
) -> WriteBackDataset:
    """The dataset over ``contacts`` (GHL's, with tags and customFields).

    :param fields_by_key: custom field key -> id (from the definitions).
    """
    rng = random.Random(seed)
    pool = sorted(contacts, key=lambda c: c["id"])
    assert len(pool) >= changed + unchanged
    entries: list[tuple[str, dict[str, Any]]] = []
    for i in range(new):
        record: dict[str, Any] = {
            "email": f"new.{i}@sync.example.com",
            "firstName": f"New{i}",
            "lastName": "Synced",
            "tags": ["sync-new", f"wave-{i % 3}"],
            "customFields": {REFERRAL: f"N{i:05d}", SCORE: str(i % 100)},
        }
        if i % 2:
            record["phone"] = f"+1777{i:07d}"
        if i % 4 == 0:
            record["tasks"] = [NEW_TASK]
        if i % 5 == 0:
            record["notes"] = [{"body": f"Imported from the warehouse ({i})"}]
        if i < bad_email:
            record["email"] = f"broken.{i}@nowhere"
            entries.append(("reject", record))
        elif i < bad_email + no_key:
            entries.append(("reject", {"firstName": f"Keyless{i}", "tags": ["sync-new"]}))
        else:
            entries.append(("create", record))
    for i, contact in enumerate(pool[:changed]):
        record = {"firstName": f"{contact.get('firstName') or 'X'}-v2"}
        if i % 3 == 0:
            record["id"] = contact["id"]
        elif i % 3 == 1:
            record["email"] = contact["email"]
        else:
            record["phone"] = contact["phone"]
        if i % 2 == 0:
            record["tags"] = ["synced"]
        if i % 4 < 2:
            record["customFields"] = {REFERRAL: f"C{i:05d}"}
        if i % 6 == 0:
            record["tasks"] = [RENEWAL_TASK]
        entries.append(("update", record))
    for contact in pool[changed : changed + unchanged]:
        values = {cf["id"]: cf["value"] for cf in contact.get("customFields", [])}
        record = {"email": contact["email"].upper(), "firstName": contact["firstName"], "lastName": contact["lastName"]}
        if contact.get("tags"):
            record["tags"] = contact["tags"][:1]
        if fields_by_key[SCORE] in values:
            record["customFields"] = {SCORE: values[fields_by_key[SCORE]]}
        entries.append(("skip", record))
    rng.shuffle(entries)

    data = WriteBackDataset()
    by_id = {c["id"]: c for c in pool}
    for row, (action, record) in enumerate(entries, start=1):
        data.records.append(record)
        data.actions[row] = action
        if action in ("create", "update"):
            data.applied[row] = record
            data.tasks += len(record.get("tasks", []))
            data.notes += len(record.get("notes", []))
        if action == "create":
            data.creates += 1
        elif action == "update":
            contact = _matched(record, pool, by_id)
            data.changed[contact["id"]] = contact
            data.field_updates += 1  # firstName always changes
            data.tag_adds += "synced" in record.get("tags", []) and "synced" not in contact.get("tags", [])
        elif action == "skip":
            contact = _matched(record, pool, by_id)
            data.unchanged[contact["id"]] = contact
    return data


def _matched(record: dict[str, Any], pool: list[dict[str, Any]], by_id: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if "id" in record:
        return by_id[record["id"]]
    if "email" in record:
        return next(c for c in pool if c["email"] == record["email"].lower())
    return next(c for c in pool if c["phone"] == record["phone"])
