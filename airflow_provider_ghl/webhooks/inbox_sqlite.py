"""The single-host webhook inbox: one SQLite file (see :mod:`airflow_provider_ghl.webhooks.inbox`)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from airflow_provider_ghl.exceptions import GHLInboxError
from airflow_provider_ghl.webhooks.inbox import RETENTION_SECONDS, Backlog, Batch, InboxEvent, Key, version_rows

#: Seconds a SQLite writer waits for another process's write lock before the store fails.
SQLITE_BUSY_TIMEOUT = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS locations (
    location_id TEXT PRIMARY KEY,
    high_water INTEGER NOT NULL DEFAULT 0,
    applied INTEGER NOT NULL DEFAULT 0,
    open_first INTEGER,
    open_last INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    location_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    webhook_id TEXT NOT NULL,
    type TEXT NOT NULL,
    ts TEXT NOT NULL,
    body BLOB NOT NULL,
    stored_at REAL NOT NULL,
    applied_at REAL,
    PRIMARY KEY (location_id, seq),
    UNIQUE (location_id, webhook_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_applied_at ON events (applied_at) WHERE applied_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS installs (
    location_id TEXT PRIMARY KEY,
    installed_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS versions (
    location_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    ts TEXT NOT NULL,
    PRIMARY KEY (location_id, kind, record_id)
) WITHOUT ROWID;
"""


class SQLiteInbox:
    """The inbox in one SQLite file (WAL, ``synchronous=FULL``), for every process of one machine.

    Each thread gets its own connection (sqlite3 connections are not for sharing across threads); every write
    is one ``BEGIN IMMEDIATE`` transaction, which takes the file's write lock up front, so two writers never
    deadlock upgrading a read lock, and a writer waits up to ``busy_timeout`` for another.

    :param path: the database file (created with its directory).
    :param busy_timeout: seconds to wait for another writer's lock.
    :param retention_seconds: how long acked events (and so their ``webhookId``) are kept.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, busy_timeout: float = SQLITE_BUSY_TIMEOUT,
        retention_seconds: float = RETENTION_SECONDS,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.busy_timeout = busy_timeout
        self.retention_seconds = retention_seconds
        self._local = threading.local()
        self._lock = threading.Lock()
        # This process's writers queue here, in turn; SQLite's busy handler (sleep and poll) is left to
        # writers of other processes, and a burst of threads does not starve one of them for seconds.
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # The events are contacts' data: the file is the Airflow user's alone. SQLite gives its -wal and
            # -shm files the mode of the database file.
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
            os.chmod(self.path, 0o600)
        except OSError as err:
            raise GHLInboxError(self.url, f"cannot create {self.path}: {err.strerror or err}") from None
        with self._write() as conn:  # two processes opening a new file at once: one creates, one waits
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as err:
            raise GHLInboxError(self.url, f"{type(err).__name__}: {err}") from None

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: no implicit transactions; each write says BEGIN IMMEDIATE itself.
            with self._errors():
                conn = sqlite3.connect(
                    self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
                )
                self._wal(conn)
                conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _wal(self, conn: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs it to itself and answers "locked" without waiting on the busy
        # handler when another process is opening it too; the mode then sticks to the file.
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._write_lock, self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def store(self, location_id: str, webhook_id: str, type: str, timestamp: str, body: dict[str, Any]) -> bool:
        data = orjson.dumps(body)
        with self._write() as conn:
            seen = "SELECT 1 FROM events WHERE location_id = ? AND webhook_id = ?"
            if conn.execute(seen, (location_id, webhook_id)).fetchone():
                return False
            conn.execute("INSERT INTO locations (location_id) VALUES (?) ON CONFLICT DO NOTHING", (location_id,))
            (seq,) = conn.execute(
                "UPDATE locations SET high_water = high_water + 1 WHERE location_id = ? RETURNING high_water",
                (location_id,),
            ).fetchone()
            conn.execute(
                "INSERT INTO events (location_id, seq, webhook_id, type, ts, body, stored_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (location_id, seq, webhook_id, type, timestamp, data, time.time()),
            )
        return True

    def pending(self) -> dict[str, int]:
        with self._errors():
            rows = self._connection().execute(
                "SELECT location_id, high_water FROM locations WHERE high_water > applied ORDER BY location_id"
            )
            return {location_id: high_water for location_id, high_water in rows}

    def backlog(self) -> dict[str, Backlog]:
        with self._errors():
            rows = self._connection().execute(
                "SELECT location_id, high_water, high_water - applied, (SELECT MIN(stored_at) FROM events e "
                "WHERE e.location_id = l.location_id AND e.seq > l.applied) "
                "FROM locations l WHERE high_water > applied ORDER BY location_id"
            )
            return {location_id: Backlog(high_water, depth, oldest) for location_id, high_water, depth, oldest in rows}

    def claim(self, location_id: str, limit: int = 10_000) -> Batch | None:
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        with self._write() as conn:
            row = conn.execute(
                "SELECT high_water, applied, open_first, open_last FROM locations WHERE location_id = ?",
                (location_id,),
            ).fetchone()
            if row is None:
                return None
            high_water, applied, open_first, open_last = row
            if open_first is not None:
                return Batch.of(location_id, open_first, open_last)
            if high_water <= applied:
                return None
            last = min(high_water, applied + limit)
            conn.execute(
                "UPDATE locations SET open_first = ?, open_last = ? WHERE location_id = ?",
                (applied + 1, last, location_id),
            )
        return Batch.of(location_id, applied + 1, last)

    def events(self, batch: Batch) -> list[InboxEvent]:
        with self._errors():
            rows = self._connection().execute(
                "SELECT seq, webhook_id, type, ts, body FROM events "
                "WHERE location_id = ? AND seq BETWEEN ? AND ? ORDER BY seq",
                (batch.location_id, batch.first_seq, batch.last_seq),
            )
            return [
                InboxEvent(seq, webhook_id, batch.location_id, type_, ts, orjson.loads(body))
                for seq, webhook_id, type_, ts, body in rows
            ]

    def versions(self, location_id: str, keys: Iterable[Key]) -> dict[Key, str]:
        by_kind: dict[str, set[str]] = {}
        for kind, record_id in keys:
            by_kind.setdefault(kind, set()).add(record_id)
        found: dict[Key, str] = {}
        with self._errors():
            conn = self._connection()
            for kind, ids in by_kind.items():
                ordered = sorted(ids)
                for start in range(0, len(ordered), 500):  # well under SQLite's bound-parameter limit
                    chunk = ordered[start : start + 500]
                    rows = conn.execute(
                        f"SELECT record_id, ts FROM versions WHERE location_id = ? AND kind = ? "
                        f"AND record_id IN ({','.join('?' * len(chunk))})",
                        (location_id, kind, *chunk),
                    )
                    found.update({(kind, record_id): ts for record_id, ts in rows})
        return found

    def ack(self, batch: Batch, versions: Mapping[Key, str]) -> None:
        rows = version_rows(versions)
        now = time.time()
        with self._write() as conn:
            row = conn.execute(
                "SELECT applied, open_first, open_last FROM locations WHERE location_id = ?", (batch.location_id,)
            ).fetchone()
            if row is None:
                raise GHLInboxError(self.url, f"ack of {batch.batch_id}: location {batch.location_id!r} has no events")
            applied, open_first, open_last = row
            if applied >= batch.last_seq:
                return  # acked before: a re-run's second ack changes nothing
            if (open_first, open_last) != (batch.first_seq, batch.last_seq):
                raise GHLInboxError(
                    self.url, f"ack of {batch.batch_id} for {batch.location_id!r}: it is not the open batch"
                )
            conn.executemany(
                "INSERT INTO versions (location_id, kind, record_id, ts) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET ts = excluded.ts",
                [(batch.location_id, *r) for r in rows],
            )
            conn.execute(
                "UPDATE events SET applied_at = ? WHERE location_id = ? AND seq BETWEEN ? AND ?",
                (now, batch.location_id, batch.first_seq, batch.last_seq),
            )
            conn.execute(
                "UPDATE locations SET applied = ?, open_first = NULL, open_last = NULL WHERE location_id = ?",
                (batch.last_seq, batch.location_id),
            )
            conn.execute("DELETE FROM events WHERE applied_at < ?", (now - self.retention_seconds,))

    def installed(self) -> set[str]:
        with self._errors():
            return {row[0] for row in self._connection().execute("SELECT location_id FROM installs")}

    def set_installed(self, location_id: str, installed: bool) -> None:
        with self._write() as conn:
            if installed:
                conn.execute(
                    "INSERT INTO installs (location_id, installed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (location_id, time.time()),
                )
                return
            conn.execute("DELETE FROM installs WHERE location_id = ?", (location_id,))
            # Nothing waits any more: an open batch's apply still writes, and its ack changes nothing.
            conn.execute(
                "UPDATE events SET applied_at = ? WHERE location_id = ? AND applied_at IS NULL",
                (time.time(), location_id),
            )
            conn.execute(
                "UPDATE locations SET applied = high_water, open_first = NULL, open_last = NULL WHERE location_id = ?",
                (location_id,),
            )

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()
