"""The apply engine on batches of constructed events: last writer wins, stale events, exactly-once, formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.webhooks.apply import apply_batch, committed_batches, drain
from airflow_provider_ghl.webhooks.inbox import Batch, Inbox
from tests.webhooks.events import contact, event, read_dataset, store

from ghl_layout import WEBHOOK_BATCHES

# The ``inbox`` fixture (tests/webhooks/conftest.py) runs each test on both engines: SQLite and Redis streams.
LOC = "loc-apply"


def folder(tmp_path: Path) -> ObjectStoragePath:
    return ObjectStoragePath(WEBHOOK_BATCHES.path(f"file://{tmp_path}", LOC))


class NoApi:
    """A record source that fails the test if asked."""

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        raise AssertionError(f"asked the API for contact {contact_id}")

    def task(self, task_id: str, *, contact_id: str | None, title: str | None) -> dict[str, Any] | None:
        raise AssertionError(f"asked the API for task {task_id}")


def test_contacts_resolve_by_timestamp_whatever_the_arrival_order(inbox: Inbox, tmp_path: Path) -> None:
    store(
        inbox,
        # c1: the update stamped later arrives first; the create (earlier) must not win.
        event("ContactUpdate", 10, LOC, **contact("c1", firstName="Newer")),
        event("ContactCreate", 1, LOC, **contact("c1", firstName="Older")),
        # c1: a tag update with the whole contact, after both.
        event("ContactTagUpdate", 11, LOC, **contact("c1", firstName="Newer", tags=["vip"])),
        # c2: created, then a DND update carrying only what changed, then an earlier update arriving last.
        event("ContactCreate", 2, LOC, **contact("c2", firstName="Bo")),
        event("ContactDndUpdate", 5, LOC, id="c2", dnd=True, dndSettings={"SMS": {"status": "active"}}),
        event("ContactUpdate", 3, LOC, **contact("c2", firstName="Bob")),
        # c2: a later update: it does not carry dndSettings (only DND updates do), which it keeps.
        event("ContactUpdate", 6, LOC, **contact("c2", firstName="Bobby", dnd=True)),
        # c3: deleted; an update stamped before the delete arrives after it.
        event("ContactCreate", 1, LOC, **contact("c3")),
        event("ContactDelete", 7, LOC, id="c3"),
        event("ContactUpdate", 6, LOC, **contact("c3", firstName="Late")),
        {"type": "INSTALL", "locationId": LOC, "webhookId": "wh-install", "timestamp": "2026-12-02T05:40:00.000Z"},
    )
    # An event whose timestamp is not one (the receiver refuses those) is ignored, not fatal to the batch.
    inbox.store(LOC, "wh-bad-time", "ContactUpdate", "yesterday", {"id": "c1", "firstName": "Never"})
    batch = inbox.claim(LOC)
    assert batch is not None
    result = apply_batch(inbox, batch, folder(tmp_path), source=NoApi())

    out = tmp_path / LOC / "webhooks" / "000000000001-000000000012"
    assert result.folder.path == str(out)
    contacts = {c["id"]: c for c in read_dataset(out, "contacts")}
    assert set(contacts) == {"c1", "c2"}
    assert contacts["c1"]["firstName"] == "Newer" and contacts["c1"]["tags"] == ["vip"]
    assert contacts["c1"]["_event_type"] == "ContactTagUpdate"
    assert contacts["c2"]["firstName"] == "Bobby" and contacts["c2"]["dnd"] is True
    assert contacts["c2"]["dndSettings"] == {"SMS": {"status": "active"}}
    assert contacts["c2"]["_event_timestamp"] == "2026-12-02T05:40:06.000Z"
    # The envelope is not part of the record; the location is.
    assert not {"webhookId", "timestamp", "type"} & set(contacts["c1"])
    assert contacts["c1"]["locationId"] == LOC
    [tombstone] = read_dataset(out, "tombstones")
    assert tombstone["id"] == "c3" and tombstone["locationId"] == LOC
    assert tombstone["detectedAt"] == tombstone["_event_timestamp"] == "2026-12-02T05:40:07.000Z"

    manifest = json.loads((out / "_manifest.json").read_text())
    assert (manifest["first_seq"], manifest["last_seq"], manifest["events"]) == (1, 12, 12)
    assert (manifest["ignored"], manifest["stale"], manifest["applied"]) == (2, 0, 10)
    assert manifest["event_types"]["ContactCreate"] == 3
    assert manifest["files"] == ["contacts-00001.jsonl", "tombstones-00001.jsonl"]
    assert manifest["datasets"]["tasks"] == {"files": [], "records": 0}
    # Acknowledged with each record's newest event.
    assert inbox.pending() == {}
    assert inbox.versions(LOC, [("contacts", "c1"), ("contacts", "c3")]) == {
        ("contacts", "c1"): "2026-12-02T05:40:11.000Z",
        ("contacts", "c3"): "2026-12-02T05:40:07.000Z",
    }


def test_an_event_older_than_the_applied_version_is_stale(inbox: Inbox, tmp_path: Path) -> None:
    store(inbox, event("ContactUpdate", 20, LOC, **contact("c1", firstName="Current")))
    first = drain(inbox, LOC, folder(tmp_path), source=NoApi())
    # Delayed deliveries of older changes, in a later batch: ignored, counted.
    store(
        inbox,
        event("ContactUpdate", 5, LOC, **contact("c1", firstName="Old")),
        event("ContactDelete", 6, LOC, id="c1"),
        event("ContactUpdate", 21, LOC, **contact("c2")),
    )
    second = drain(inbox, LOC, folder(tmp_path), source=NoApi())

    assert [r.batch.batch_id for r in first + second] == ["000000000001-000000000001", "000000000002-000000000004"]
    manifest = second[0].manifest
    assert (manifest["stale"], manifest["applied"]) == (2, 1)
    assert [c["id"] for c in read_dataset(Path(second[0].folder.path), "contacts")] == ["c2"]
    assert manifest["datasets"]["tombstones"]["records"] == 0
    assert [m["batch_id"] for m in committed_batches(folder(tmp_path))] == [r.batch.batch_id for r in first + second]


def test_children_and_their_tombstones(inbox: Inbox, tmp_path: Path) -> None:
    appointment = {"id": "a1", "contactId": "c1", "calendarId": "cal", "title": "Call", "startTime": "2026-12-03"}
    store(
        inbox,
        event("NoteCreate", 1, LOC, id="n1", contactId="c1", body="first"),
        event("NoteUpdate", 2, LOC, id="n1", contactId="c1", body="second"),
        event("NoteCreate", 1, LOC, id="n2", contactId="c1", body="gone"),
        event("NoteDelete", 3, LOC, id="n2", contactId="c1"),
        event("TaskCreate", 1, LOC, id="t1", contactId="c1", title="Call back", dueDate="2026-12-05"),
        event("TaskComplete", 4, LOC, id="t1"),  # only the id: completed onto the task above
        event("TaskCreate", 1, LOC, id="t2", contactId="c1", title="Drop"),
        event("TaskDelete", 2, LOC, id="t2"),  # no contactId: the create's
        event("AppointmentCreate", 1, LOC, appointment=appointment),
        event("AppointmentUpdate", 3, LOC, appointment={**appointment, "title": "Call (moved)"}),
        event("AppointmentCreate", 1, LOC, appointment={**appointment, "id": "a2"}),
        event("AppointmentDelete", 2, LOC, appointment={"id": "a2"}),
    )
    [result] = drain(inbox, LOC, folder(tmp_path), source=NoApi())
    out = Path(result.folder.path)

    notes = {n["id"]: n for n in read_dataset(out, "notes")}
    assert notes["n1"]["body"] == "second" and notes["n1"]["_deleted"] is False
    assert notes["n2"] == {**notes["n2"], "_deleted": True, "contactId": "c1", "locationId": LOC}
    tasks = {t["id"]: t for t in read_dataset(out, "tasks")}
    assert tasks["t1"]["completed"] is True and tasks["t1"]["title"] == "Call back"
    assert tasks["t1"]["_event_type"] == "TaskComplete"
    assert tasks["t2"]["_deleted"] is True and tasks["t2"]["contactId"] == "c1"
    appointments = {a["id"]: a for a in read_dataset(out, "appointments")}
    assert appointments["a1"]["title"] == "Call (moved)" and appointments["a1"]["locationId"] == LOC
    assert appointments["a2"]["_deleted"] is True
    assert result.manifest["datasets"]["contacts"]["records"] == 0


class KilledBeforeAck:
    """The inbox of a task killed after it wrote the batch, before its ack reached the inbox."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inbox, name)

    def ack(self, batch: Batch, versions: Any) -> None:
        raise SystemExit("task killed")


def test_a_batch_whose_manifest_exists_is_acknowledged_not_rewritten(inbox: Inbox, tmp_path: Path) -> None:
    store(inbox, event("ContactCreate", 1, LOC, **contact("c1")), event("ContactCreate", 2, LOC, **contact("c2")))
    batch = inbox.claim(LOC)
    assert batch is not None

    with pytest.raises(SystemExit):
        apply_batch(KilledBeforeAck(inbox), batch, folder(tmp_path))
    out = tmp_path / LOC / "webhooks" / batch.batch_id
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert inbox.pending() == {LOC: 2}
    assert inbox.claim(LOC) == batch  # the re-run gets the same open batch

    again = apply_batch(inbox, batch, folder(tmp_path), source=NoApi())

    assert again.already
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written
    assert inbox.pending() == {}
    assert inbox.versions(LOC, [("contacts", "c2")]) == {("contacts", "c2"): "2026-12-02T05:40:02.000Z"}
    assert drain(inbox, LOC, folder(tmp_path)) == []


def test_a_killed_attempt_leaves_nothing_the_rerun_keeps(inbox: Inbox, tmp_path: Path) -> None:
    store(inbox, event("ContactCreate", 1, LOC, **contact("c1")))
    batch = inbox.claim(LOC)
    assert batch is not None
    out = tmp_path / LOC / "webhooks" / batch.batch_id
    out.mkdir(parents=True)
    # What an attempt killed mid-write leaves: a temp file and a part published before the manifest.
    (out / ".contacts-00001.jsonl.inprogress").write_text("{partial")
    (out / "tombstones-00001.jsonl").write_text('{"id": "not-from-this-batch"}\n')

    drain(inbox, LOC, folder(tmp_path))

    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "contacts-00001.jsonl"]


def test_drain_claims_batches_until_the_high_water(inbox: Inbox, tmp_path: Path) -> None:
    store(inbox, *(event("ContactCreate", i, LOC, **contact(f"c{i}")) for i in range(7)))
    results = drain(inbox, LOC, folder(tmp_path), max_events=3)
    assert [r.batch.batch_id for r in results] == [
        "000000000001-000000000003",
        "000000000004-000000000006",
        "000000000007-000000000007",
    ]
    assert sum(r.manifest["datasets"]["contacts"]["records"] for r in results) == 7


def test_csv_batches_have_the_exports_columns_and_the_event_fields(inbox: Inbox, tmp_path: Path) -> None:
    store(
        inbox, event("ContactCreate", 1, LOC, **contact("c1", tags=["a", "b"])), event("ContactDelete", 2, LOC, id="c9")
    )
    [result] = drain(inbox, LOC, folder(tmp_path), fmt="csv")
    out = Path(result.folder.path)
    header, row = (out / "contacts-00001.csv").read_text().splitlines()
    assert header.startswith("id,locationId,firstName") and header.endswith("_event_timestamp,_event_type,_webhook_id")
    assert "a|b" in row
    assert (out / "tombstones-00001.csv").read_text().splitlines()[0] == (
        "id,locationId,detectedAt,_event_timestamp,_event_type,_webhook_id"
    )


def test_csv_batch_cells_that_would_run_as_formulas_are_neutralised(inbox: Inbox, tmp_path: Path) -> None:
    import csv

    store(inbox, event("ContactCreate", 1, LOC, **contact("c1", firstName="=cmd|' /C calc'!A0", phone="+15550100")))
    [result] = drain(inbox, LOC, folder(tmp_path), fmt="csv")
    [row] = csv.DictReader((Path(result.folder.path) / "contacts-00001.csv").open())
    assert (row["firstName"], row["phone"]) == ("'=cmd|' /C calc'!A0", "+15550100")


def test_parquet_batches_are_typed(inbox: Inbox, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    store(
        inbox,
        event("ContactCreate", 1, LOC, **contact("c1", tags=["a"], dnd=False)),
        event("TaskCreate", 1, LOC, id="t1", contactId="c1", title="T", dueDate="2026-12-05T10:00:00Z"),
        event("TaskDelete", 2, LOC, id="t2", contactId="c1"),
    )
    [result] = drain(inbox, LOC, folder(tmp_path), fmt="parquet")
    out = Path(result.folder.path)
    contacts = pq.read_table(out / "contacts-00001.parquet")
    assert contacts.column("tags").to_pylist() == [["a"]]
    assert str(contacts.schema.field("_event_timestamp").type) == "timestamp[ms, tz=UTC]"
    tasks = pq.read_table(out / "tasks-00001.parquet").to_pylist()
    assert sorted((t["id"], t["_deleted"]) for t in tasks) == [("t1", False), ("t2", True)]
    assert result.manifest["datasets"]["tasks"]["type_mismatches"] == {}
