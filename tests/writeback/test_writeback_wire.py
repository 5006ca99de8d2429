"""GHLWriteBackContactsOperator over the wire: 2,000 records under 10 % faults, the dry run's plan, re-runs, a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.exceptions import GHLTaskStopped
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator
from ghl_sandbox.testing import SandboxServer
from tests.stopping import stopped_mid_run
from tests.writeback.dataset import WriteBackDataset, build

FAULTS = {"error_rate": 0.04, "drop_rate": 0.03, "storm_rate": 0.03}
ROOT = Path(__file__).resolve().parents[2]


def _operator(conn_id: str, input_path: Path, results: Path, **kwargs: Any) -> GHLWriteBackContactsOperator:
    kwargs.setdefault("max_failed_ratio", 0.05)
    kwargs.setdefault("rows_per_file", 250)
    return GHLWriteBackContactsOperator(
        task_id="sync",
        ghl_conn_id=conn_id,
        input_path=f"file://{input_path}",
        results_path=f"file://{results}",
        retry_backoff=0.01,
        hook_params={"retry_backoff": 0.01, "max_retries": 8},
        **kwargs,
    )


def _snapshot(conn_id: str) -> list[dict[str, Any]]:
    hook = GHLHook(conn_id)
    # The search cursor is how the page was read, not part of the contact.
    return [{k: v for k, v in c.items() if k != "searchAfter"} for c in hook.iter_contacts(page_limit=500)]


def _dataset(conn_id: str) -> WriteBackDataset:
    hook = GHLHook(conn_id)
    keys = {d["fieldKey"]: d["id"] for d in hook.get_custom_fields(model="contact")}
    return build(_snapshot(conn_id), keys)


def _results(results: Path) -> list[dict[str, Any]]:
    manifest = json.loads((results / "_manifest.json").read_text())
    rows = [json.loads(line) for name in manifest["results"] for line in (results / name).read_text().splitlines()]
    assert [r["row"] for r in rows] == list(range(1, len(rows) + 1))
    return rows


def _assert_final_state(conn_id: str, data: WriteBackDataset, before: list[dict[str, Any]]) -> None:
    """GHL holds exactly the contacts, tags, custom fields, tasks and notes the records ask for; nothing else."""
    hook = GHLHook(conn_id)
    keys = {d["fieldKey"]: d["id"] for d in hook.get_custom_fields(model="contact")}
    after = _snapshot(conn_id)
    by_id = {c["id"]: c for c in after}
    emails = Counter(c["email"] for c in after if c.get("email"))
    assert max(emails.values()) == 1, [e for e, n in emails.items() if n > 1][:5]  # no duplicate contact
    assert len(after) == len(before) + data.creates
    by_email = {c["email"]: c for c in after}
    before_by_id = {c["id"]: c for c in before}
    for record in data.applied.values():
        old = before_by_id.get(record.get("id", ""))
        if old is None and "email" in record:
            old = before_by_id.get(next((c["id"] for c in before if c["email"] == record["email"]), ""))
        if old is None and "phone" in record and "email" not in record:
            old = next(c for c in before if c.get("phone") == record["phone"])
        contact = by_id[old["id"]] if old else by_email[record["email"]]
        for name in ("firstName", "lastName", "phone"):
            if name in record:
                assert contact[name] == record[name], (name, record, contact)
        expected_tags = set(record.get("tags", [])) | set(old["tags"] if old else [])
        assert set(contact["tags"]) == expected_tags, (record, contact["tags"])
        values = {cf["id"]: cf["value"] for cf in contact["customFields"]}
        for key, value in record.get("customFields", {}).items():
            assert values[keys[key]] == value, (key, record, values)
        for kind, items in (("tasks", record.get("tasks", [])), ("notes", record.get("notes", []))):
            if not items:
                continue
            children = hook.get_tasks(contact["id"]) if kind == "tasks" else hook.get_notes(contact["id"])
            for item in items:
                same = [c for c in children if all(c.get(k) == v for k, v in item.items())]
                assert len(same) == 1, (kind, item, children)  # created, and once
    for contact_id, old in data.unchanged.items():
        assert by_id[contact_id] == old, "an unchanged record was written"  # dateUpdated included


def _run_expecting(
    conn_id: str, sandbox: SandboxServer, input_path: Path, results: Path, data: WriteBackDataset
) -> None:
    sandbox.clear_stats()
    counts = _operator(conn_id, input_path, results).execute(context={})
    stats = sandbox.stats()
    expected = Counter(data.actions.values())
    assert {a: counts[a] for a in ("create", "update", "skip", "reject")} == {
        a: expected[a] for a in ("create", "update", "skip", "reject")
    }
    assert counts["error"] == 0
    # Every write the plan needs, each applied once: none repeated after a lost answer, none for a skip.
    assert stats["writes"] == data.writes == counts["writes"], stats
    rows = _results(results)
    assert {r["row"]: r["action"] for r in rows} == data.actions


@pytest.fixture
def data(writeback_conn: str) -> WriteBackDataset:
    return _dataset(writeback_conn)


def test_two_thousand_records_under_faults_then_a_second_run_writes_nothing(
    writeback_conn: str, writeback_sandbox: SandboxServer, data: WriteBackDataset, tmp_path: Path
) -> None:
    input_path = tmp_path / "contacts.csv"
    input_path.write_bytes(data.csv())
    before = _snapshot(writeback_conn)

    # The dry run: the plan, and no write.
    writeback_sandbox.clear_stats()
    plan_counts = _operator(writeback_conn, input_path, tmp_path / "plan", dry_run=True).execute(context={})
    assert writeback_sandbox.stats()["writes"] == 0
    plan = _results(tmp_path / "plan")
    assert plan_counts["writes"] == data.writes

    writeback_sandbox.set_faults(**FAULTS)
    _run_expecting(writeback_conn, writeback_sandbox, input_path, tmp_path / "run1", data)
    stats = writeback_sandbox.stats()
    assert stats["faults"].get("after_write", 0) > 0 and stats["faults"].get("storm_429", 0) > 0, stats["faults"]
    writeback_sandbox.set_faults()
    _assert_final_state(writeback_conn, data, before)

    # The dry run predicted the real run row by row: action, contact, what changes, the writes.
    real = _results(tmp_path / "run1")
    for planned, done in zip(plan, real, strict=True):
        same = ("row", "action", "changed", "writes", "error")
        assert {k: planned[k] for k in same} == {k: done[k] for k in same}
        if planned["action"] != "create":
            assert planned["contact_id"] == done["contact_id"]

    # The bad rows are in the dead-letter file, exactly as they came (header first).
    manifest = json.loads((tmp_path / "run1" / "_manifest.json").read_text())
    dead = b"".join((tmp_path / "run1" / name).read_bytes() for name in manifest["dead_letter"])
    lines = input_path.read_bytes().splitlines(keepends=True)
    header = lines[0]
    expected_dead = [lines[row] for row in data.bad_rows]
    got = [line for line in dead.splitlines(keepends=True) if line != header]
    assert got == expected_dead
    assert all((tmp_path / "run1" / name).read_bytes().startswith(header) for name in manifest["dead_letter"])

    # The same file again (a new results directory): everything is already there, nothing is written.
    writeback_sandbox.set_faults(**FAULTS)
    writeback_sandbox.clear_stats()
    again = _operator(writeback_conn, input_path, tmp_path / "run2").execute(context={})
    assert writeback_sandbox.stats()["writes"] == 0
    assert again["writes"] == 0 and again["create"] == again["update"] == 0
    assert again["skip"] == len(data.applied) + len(data.unchanged)


def test_a_worker_killed_mid_run_and_run_again_ends_in_the_same_state(
    writeback_conn: str, writeback_sandbox: SandboxServer, data: WriteBackDataset, tmp_path: Path
) -> None:
    input_path = tmp_path / "contacts.jsonl"
    input_path.write_bytes(data.jsonl())
    results = tmp_path / "results"
    before = _snapshot(writeback_conn)
    writeback_sandbox.clear_stats()
    writeback_sandbox.set_faults(latency_ms=3, **FAULTS)  # slow enough to be caught mid-run

    child = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("writeback_child.py")),
            f"file://{input_path}",
            f"file://{results}",
        ],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (results / "_checkpoint.json").exists():
            assert child.poll() is None, "the worker ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)  # rows are in flight, some writes sent and unanswered
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    killed_at = json.loads((results / "_checkpoint.json").read_text())["datasets"]["results"]["cursor"][0]
    assert 0 < killed_at < len(data.records)
    assert not (results / "_manifest.json").exists()

    counts = _operator(writeback_conn, input_path, results, rows_per_file=100).execute(context={})
    writeback_sandbox.set_faults()

    manifest = json.loads((results / "_manifest.json").read_text())
    assert manifest["resumed_from_row"] >= killed_at
    assert counts["rows"] == len(data.records) and counts["error"] == 0
    assert [r["action"] for r in _results(results) if r["action"] == "reject"] == ["reject"] * len(data.bad_rows)
    _assert_final_state(writeback_conn, data, before)  # no duplicate contact, task or note
    # The two workers together applied each needed write once.
    assert writeback_sandbox.stats()["writes"] == data.writes


def test_on_kill_stops_the_pool_keeps_what_was_committed_and_a_rerun_ends_in_the_same_state(
    writeback_conn: str, writeback_sandbox: SandboxServer, data: WriteBackDataset, tmp_path: Path
) -> None:
    """Airflow calls ``on_kill`` while rows are in flight on the pool: no row starts after it, the rows that
    finished are committed, the task fails with GHLTaskStopped, and the retried task writes only what is left."""
    input_path = tmp_path / "contacts.jsonl"
    input_path.write_bytes(data.jsonl())
    results = tmp_path / "results"
    before = _snapshot(writeback_conn)
    writeback_sandbox.clear_stats()
    writeback_sandbox.set_faults(latency_ms=5)
    operator = _operator(writeback_conn, input_path, results, rows_per_file=50)
    err = stopped_mid_run(operator, started=(results / "_checkpoint.json").exists)
    assert isinstance(err, GHLTaskStopped), err
    stopped_at = json.loads((results / "_checkpoint.json").read_text())["datasets"]["results"]["cursor"][0]
    assert 0 < stopped_at < len(data.records) and not (results / "_manifest.json").exists()
    sent = writeback_sandbox.stats()["requests_total"]
    time.sleep(0.3)
    assert writeback_sandbox.stats()["requests_total"] == sent  # nothing more after the stop

    writeback_sandbox.set_faults()
    counts = _operator(writeback_conn, input_path, results, rows_per_file=50).execute(context={})
    assert counts["rows"] == len(data.records) and counts["error"] == 0
    _assert_final_state(writeback_conn, data, before)
    assert writeback_sandbox.stats()["writes"] == data.writes  # each needed write once, across both runs
