"""The inbox protocol, held to the same behaviour on both engines (a SQLite file and a real redis-server)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.exceptions import GHLInboxError, GHLInputError
from airflow_provider_ghl.webhooks.inbox import Batch, Inbox, open_inbox
from airflow_provider_ghl.webhooks.inbox_sqlite import SQLiteInbox
from ghl_sandbox.redis_server import RedisServer
from tests.webhooks.signing import claimed

ROOT = Path(__file__).resolve().parents[2]


def _store(inbox: Inbox, location: str, webhook_id: str, type: str = "ContactUpdate", **fields: object) -> bool:
    body = {"type": type, "locationId": location, "webhookId": webhook_id, **fields}
    return inbox.store(location, webhook_id, type, f"2026-12-02T05:40:{len(webhook_id):02d}.000Z", body)


def test_store_dedupes_and_numbers_events_per_location_in_arrival_order(inbox: Inbox) -> None:
    assert _store(inbox, "loc1", "a", id="c1", tags=["x"]) is True
    assert _store(inbox, "loc2", "b") is True
    assert _store(inbox, "loc1", "c", type="ContactDelete") is True
    assert _store(inbox, "loc1", "a", id="other") is False  # a redelivery: stored once, first body kept
    assert inbox.pending() == {"loc1": 2, "loc2": 1}

    batch = claimed(inbox, "loc1")
    assert batch == Batch("loc1", 1, 2, "000000000001-000000000002")
    events = inbox.events(batch)
    assert [(e.seq, e.webhook_id, e.type) for e in events] == [(1, "a", "ContactUpdate"), (2, "c", "ContactDelete")]
    assert events[0].body == {
        "type": "ContactUpdate",
        "locationId": "loc1",
        "webhookId": "a",
        "id": "c1",
        "tags": ["x"],
    }
    assert events[0].location_id == "loc1" and events[0].timestamp == "2026-12-02T05:40:01.000Z"


def test_a_webhook_id_is_recognised_within_its_location(inbox: Inbox) -> None:
    assert _store(inbox, "loc1", "same") is True
    assert _store(inbox, "loc2", "same") is True
    assert _store(inbox, "loc2", "same") is False
    assert inbox.pending() == {"loc1": 1, "loc2": 1}


def test_claim_reclaims_the_open_batch_until_it_is_acked(inbox: Inbox) -> None:
    assert inbox.claim("loc1") is None
    for n in range(5):
        _store(inbox, "loc1", f"w{n}")
    first = claimed(inbox, "loc1", limit=3)
    assert (first.first_seq, first.last_seq) == (1, 3)
    _store(inbox, "loc1", "w5")
    # A killed task runs again: the same batch, however many events arrived since and whatever the limit.
    assert inbox.claim("loc1") == first
    assert inbox.claim("loc1", limit=1) == first
    assert [e.seq for e in inbox.events(first)] == [1, 2, 3]
    assert inbox.pending() == {"loc1": 6}

    inbox.ack(first, {("contacts", "c1"): "2026-12-02T05:40:00.000Z"})
    inbox.ack(first, {("contacts", "c1"): "2026-12-02T05:40:00.000Z"})  # a second ack changes nothing
    second = claimed(inbox, "loc1")
    assert (second.first_seq, second.last_seq, second.batch_id) == (4, 6, "000000000004-000000000006")
    assert [e.webhook_id for e in inbox.events(second)] == ["w3", "w4", "w5"]
    inbox.ack(second, {})
    assert inbox.pending() == {}
    assert inbox.claim("loc1") is None
    # The ids are remembered after the ack: a late redelivery is still a duplicate.
    assert _store(inbox, "loc1", "w1") is False
    assert _store(inbox, "loc1", "w6") is True
    assert inbox.pending() == {"loc1": 7}


def test_ack_commits_versions_last_writer_wins_and_refuses_a_batch_that_is_not_open(inbox: Inbox) -> None:
    for n in range(4):
        _store(inbox, "loc1", f"w{n}")
    _store(inbox, "loc2", "other")
    batch = claimed(inbox, "loc1", limit=2)
    stale = Batch.of("loc1", 1, 4)
    with pytest.raises(GHLInboxError, match="not the open batch"):
        inbox.ack(stale, {("contacts", "c1"): "2026-12-02T05:40:09.000Z"})
    with pytest.raises(ValueError, match="unknown kind 'contact'"):
        inbox.ack(batch, {("contact", "c1"): "2026-12-02T05:40:09.000Z"})
    assert inbox.versions("loc1", [("contacts", "c1")]) == {}  # neither refused ack wrote anything
    assert inbox.claim("loc1") == batch

    inbox.ack(batch, {("contacts", "c1"): "2026-12-02T05:40:01.000Z", ("tasks", "t1"): "2026-12-02T05:40:02.000Z"})
    later = claimed(inbox, "loc1")
    inbox.ack(later, {("contacts", "c1"): "2026-12-02T05:40:03.000Z", ("notes", "n1"): "2026-12-02T05:40:04.000Z"})
    keys = [("contacts", "c1"), ("tasks", "t1"), ("notes", "n1"), ("appointments", "a1"), ("contacts", "c2")]
    assert inbox.versions("loc1", keys) == {
        ("contacts", "c1"): "2026-12-02T05:40:03.000Z",
        ("tasks", "t1"): "2026-12-02T05:40:02.000Z",
        ("notes", "n1"): "2026-12-02T05:40:04.000Z",
    }
    assert inbox.versions("loc2", keys) == {}  # versions are per location
    assert inbox.pending() == {"loc2": 1}


def test_backlog_is_the_depth_and_the_oldest_waiting_event_per_location(inbox: Inbox) -> None:
    assert inbox.backlog() == {}
    before = time.time()
    _store(inbox, "loc1", "a")
    time.sleep(0.05)
    after_first = time.time()
    for webhook_id in ("b", "c", "d"):
        _store(inbox, "loc1", webhook_id)
    _store(inbox, "loc2", "e")
    backlog = inbox.backlog()
    assert {loc: (b.high_water, b.depth) for loc, b in backlog.items()} == {"loc1": (4, 4), "loc2": (1, 1)}
    oldest = backlog["loc1"].oldest_stored_at
    assert oldest is not None and before - 1 <= oldest <= after_first  # the first event's time, not a later one's
    # Applying the first two leaves the two after them: the oldest waiting one is now a later event.
    batch = claimed(inbox, "loc1", limit=2)
    assert inbox.backlog()["loc1"].depth == 4  # claimed is not applied
    inbox.ack(batch, {})
    backlog = inbox.backlog()
    assert (backlog["loc1"].high_water, backlog["loc1"].depth) == (4, 2)
    assert backlog["loc1"].oldest_stored_at is not None and backlog["loc1"].oldest_stored_at >= oldest + 0.04
    # An uninstall expires what waits: no backlog left.
    inbox.set_installed("loc2", False)
    assert set(inbox.backlog()) == {"loc1"}


def test_a_second_opening_sees_the_same_inbox(inbox_url: str) -> None:
    first = open_inbox(inbox_url)
    _store(first, "loc1", "a")
    batch = claimed(first, "loc1")
    first.close()
    again = open_inbox(inbox_url)
    assert again.pending() == {"loc1": 1}
    assert again.claim("loc1") == batch
    assert _store(again, "loc1", "a") is False
    again.close()


def test_two_processes_store_into_one_inbox_at_once(inbox_url: str) -> None:
    """Two writer processes race over overlapping ids: every id stored once, seqs contiguous per location."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "tests.webhooks._store_worker", inbox_url]
    # Worker 1 stores w-0..w-299, worker 2 w-150..w-449: 150 ids overlap.
    workers = [subprocess.Popen([*cmd, str(first), "300"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
               for first in (0, 150)]  # fmt: skip
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    assert sum(int(out) for out in outputs) == 450

    inbox = open_inbox(inbox_url)
    assert inbox.pending() == {"loc-a": 225, "loc-b": 225}
    for location in ("loc-a", "loc-b"):
        events = inbox.events(claimed(inbox, location))
        assert [e.seq for e in events] == list(range(1, 226))
        ids = [e.webhook_id for e in events]
        assert len(set(ids)) == 225
        parity = 1 if location == "loc-a" else 0
        assert set(ids) == {f"w-{n}" for n in range(450) if n % 2 == parity}
    inbox.close()


def test_sqlite_inbox_file_is_wal_with_full_sync(tmp_path: Path) -> None:
    inbox = SQLiteInbox(tmp_path / "sub" / "inbox.db")
    conn = inbox._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    inbox.close()


def test_open_inbox_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for url in (f"sqlite:///{tmp_path}/a.db", f"sqlite:///{str(tmp_path).lstrip('/')}/a.db"):
        inbox = open_inbox(url)
        assert isinstance(inbox, SQLiteInbox) and inbox.path == tmp_path / "a.db"
        inbox.close()
    import airflow.configuration

    monkeypatch.setattr(airflow.configuration, "AIRFLOW_HOME", str(tmp_path / "home"))
    inbox = open_inbox("sqlite:///{AIRFLOW_HOME}/ghl_webhooks.db")
    assert isinstance(inbox, SQLiteInbox) and inbox.path == tmp_path / "home" / "ghl_webhooks.db"
    inbox.close()

    with pytest.raises(GHLInboxError, match="unknown inbox URL"):
        open_inbox("postgres://x")
    with pytest.raises(GHLInboxError, match="no file path"):
        open_inbox("sqlite:///")
    with pytest.raises(GHLInboxError, match="not a server address"):
        open_inbox("redis://127.0.0.1:6379/0")
    from airflow_provider_ghl.exceptions import GHLConfigError

    with pytest.raises(GHLConfigError, match="redis connection 'no_such_conn' is not an Airflow connection"):
        open_inbox("redis://no_such_conn")


def test_batches_are_drained_while_another_process_stores(inbox_url: str) -> None:
    """The apply side claims and acks while the receiver side (another process) stores: every event lands in
    exactly one batch, in order, and nothing is left behind."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.webhooks._store_worker", inbox_url, "0", "400"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    inbox = open_inbox(inbox_url)
    drained: dict[str, list[int]] = {"loc-a": [], "loc-b": []}

    def drain() -> None:
        for location, seqs in drained.items():
            batch = inbox.claim(location, limit=25)
            if batch is not None:
                seqs.extend(e.seq for e in inbox.events(batch))
                inbox.ack(batch, {("contacts", f"last-{location}"): str(batch.last_seq)})

    while writer.poll() is None:
        drain()
    assert writer.returncode == 0 and int(writer.communicate()[0]) == 400
    drain_rounds = 0
    while inbox.pending():
        drain()
        drain_rounds += 1
        assert drain_rounds < 100
    assert drained == {"loc-a": list(range(1, 201)), "loc-b": list(range(1, 201))}
    assert inbox.versions("loc-a", [("contacts", "last-loc-a")]) == {("contacts", "last-loc-a"): "200"}
    inbox.close()


def test_redis_keys_expire_from_the_ack_and_acked_entries_leave_the_stream(
    redis_inbox_url: str, redis_server: RedisServer
) -> None:
    import redis

    from airflow_provider_ghl.webhooks.inbox import RETENTION_SECONDS

    raw: Any = redis.Redis(host="127.0.0.1", port=redis_server.port)
    inbox = open_inbox(redis_inbox_url)
    _store(inbox, "loc1", "a")
    _store(inbox, "loc1", "b")
    id_key = "ghl:webhooks:{loc1}:id:a"
    assert raw.ttl(id_key) > RETENTION_SECONDS  # unacked: kept longer than the retention
    batch = claimed(inbox, "loc1", limit=1)
    inbox.ack(batch, {})
    assert 0 < raw.ttl(id_key) <= RETENTION_SECONDS  # the retention counts from the ack
    assert raw.ttl("ghl:webhooks:{loc1}:id:b") > RETENTION_SECONDS
    assert [entry_id for entry_id, _ in raw.xrange("ghl:webhooks:{loc1}")] == [b"0-2"]
    inbox.close()


def test_a_redis_store_that_fails_half_way_leaves_nothing_so_its_retry_is_stored(
    redis_inbox_url: str, redis_server: RedisServer
) -> None:
    """#21 item 8: the dedupe key is set only once the event is in the stream. Here XADD fails (the stream's key
    holds a string): nothing is kept, and the redelivery of the same webhookId is stored, not called a duplicate."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    inbox = open_inbox(redis_inbox_url)
    try:
        client.set("ghl:webhooks:{loc-x}", "not a stream")
        with pytest.raises(GHLInboxError):
            inbox.store("loc-x", "wh-1", "ContactCreate", "2026-12-07T10:00:00Z", {"id": "c1"})
        assert client.keys("ghl:webhooks:{loc-x}:*") == []  # no dedupe key, no high-water mark
        client.delete("ghl:webhooks:{loc-x}")
        assert inbox.store("loc-x", "wh-1", "ContactCreate", "2026-12-07T10:00:00Z", {"id": "c1"}) is True
        assert inbox.store("loc-x", "wh-1", "ContactCreate", "2026-12-07T10:00:00Z", {"id": "c1"}) is False
        assert inbox.pending() == {"loc-x": 1}
    finally:
        inbox.close()


def test_two_deployments_share_a_redis_server_through_their_key_prefixes(redis_inbox_url: str) -> None:
    """#21 item 8: ``redis://<conn_id>/<prefix>``: each deployment's inbox has its own keys, so neither claims,
    acks or expires the other's events."""
    from airflow_provider_ghl.webhooks.inbox import inbox_url

    first, second = open_inbox(f"{redis_inbox_url}/deploy-a"), open_inbox(f"{redis_inbox_url}/deploy_b")
    default = open_inbox(redis_inbox_url)
    try:
        first.store("loc", "wh-1", "ContactCreate", "2026-12-07T10:00:00Z", {"id": "c1"})
        second.store("loc", "wh-1", "ContactCreate", "2026-12-07T10:00:00Z", {"id": "c1"})  # not a duplicate here
        second.store("loc", "wh-2", "ContactCreate", "2026-12-07T10:00:01Z", {"id": "c2"})
        assert (first.pending(), second.pending(), default.pending()) == ({"loc": 1}, {"loc": 2}, {})
        batch = first.claim("loc")
        assert batch is not None
        first.ack(batch, {})
        assert (first.pending(), second.pending()) == ({}, {"loc": 2})
    finally:
        for inbox in (first, second, default):
            inbox.close()
    assert inbox_url("inbox", f"{redis_inbox_url}/deploy-a") == f"{redis_inbox_url}/deploy-a"
    for bad in (f"{redis_inbox_url}/", f"{redis_inbox_url}/a/b", f"{redis_inbox_url}/x y"):
        with pytest.raises(GHLInputError, match="key prefix"):
            inbox_url("inbox", bad)
