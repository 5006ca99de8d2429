"""The webhook inbox: durable, ordered per location, drained in acknowledged batches.

The receiver ``store``\\ s each verified event; the trigger watches ``pending``; the apply task ``claim``\\ s a
batch up to the high-water mark, reads its ``events``, writes its files and ``ack``\\ s it together with the
record versions it applied. A batch stays *open* until acked, so a killed task claims the very same batch
again and rewrites the same output.

Two engines behind one protocol, chosen by URL (:func:`open_inbox`):

* ``sqlite:///<absolute path>`` (:class:`SQLiteInbox`): one file under AIRFLOW_HOME, no new service. WAL mode
  lets the receiver, the triggerer and the workers of one machine use it at once (readers never block the one
  writer). ``synchronous=FULL``: each commit fsyncs the WAL before ``store`` returns, so an event answered
  200 survives a power cut, not only a killed process. ``NORMAL`` under WAL survives a killed process too but
  may lose the last commits on a power cut or OS crash, and GHL never redelivers what was answered 200; the
  fsync costs little (``benchmarks/bench_webhook_receiver.py``: ~700 events/s). SQLite's file locks need
  one machine (no NFS): for several, use Redis.
* ``redis://<conn_id>`` (:class:`RedisStreamInbox`): an Airflow ``redis`` connection, the one the shared rate
  budget already uses (``budget_redis_conn_id``). One stream per location holds the events; a Lua script
  makes the id check (a ``SET NX`` key with a TTL), the sequence number and the ``XADD`` one atomic step.
  Redis streams rather than a ``common.messaging`` queue: the provider already depends on Redis for the
  budget (no second service to run), and the inbox needs more than a queue gives: dedupe by ``webhookId``
  for days, a per-location high-water mark, re-reading an open batch after a crash, and the record versions
  committed with the acknowledgement. Redis keeps what its persistence keeps: run it with
  ``appendonly yes`` (``appendfsync always`` for the same guarantee as SQLite's FULL) or replicas.

Sequence numbers start at 1 and are contiguous per location. A ``webhookId`` is recognised within its
location (GHL's are unique per event, and an event belongs to one location), for :data:`RETENTION_SECONDS`
after its ack, so a late redelivery is still a duplicate.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from airflow_provider_ghl.exceptions import GHLInboxError

#: How long a ``webhookId`` is remembered after its event was acked (GHL's own retries end after ~1 h).
RETENTION_SECONDS = 7 * 24 * 3600
#: Seconds a SQLite writer waits for another process's write lock before the store fails.
SQLITE_BUSY_TIMEOUT = 10.0
#: The record kinds of ``versions``.
KINDS = ("contacts", "notes", "tasks", "appointments")

Key = tuple[str, str]


@dataclass(frozen=True)
class InboxEvent:
    """One stored event.

    :param seq: per-location arrival order, assigned by the inbox, strictly increasing from 1.
    :param webhook_id: GHL's ``webhookId`` (the same on redelivery).
    :param location_id: the payload's ``locationId``.
    :param type: the payload's ``type`` (``ContactCreate``, ...).
    :param timestamp: the payload's ``timestamp``, as sent.
    :param body: the parsed payload.
    """

    seq: int
    webhook_id: str
    location_id: str
    type: str
    timestamp: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """The events ``first_seq..last_seq`` of one location, claimed for one apply.

    :param location_id: the location.
    :param first_seq: the first seq in the batch.
    :param last_seq: the last seq (the high-water mark when the batch was claimed).
    :param batch_id: ``f"{first_seq:012d}-{last_seq:012d}"``, the output folder name.
    """

    location_id: str
    first_seq: int
    last_seq: int
    batch_id: str

    @classmethod
    def of(cls, location_id: str, first_seq: int, last_seq: int) -> Batch:
        return cls(location_id, first_seq, last_seq, f"{first_seq:012d}-{last_seq:012d}")


class Inbox(Protocol):
    """What the receiver, the trigger and the apply task use; see the module docstring."""

    def store(self, location_id: str, webhook_id: str, type: str, timestamp: str, body: dict[str, Any]) -> bool:
        """Store one event, durably before returning; False when ``webhook_id`` was already stored."""

    def pending(self) -> dict[str, int]:
        """location_id -> high-water seq, for each location with unapplied events."""

    def claim(self, location_id: str, limit: int = 10_000) -> Batch | None:
        """The open batch if there is one, else a new one of at most ``limit`` unapplied events; None if none."""

    def events(self, batch: Batch) -> list[InboxEvent]:
        """The batch's events in seq order."""

    def versions(self, location_id: str, keys: Iterable[Key]) -> dict[Key, str]:
        """(kind, record_id) -> timestamp of the last applied event of that record, for the keys known."""

    def ack(self, batch: Batch, versions: Mapping[Key, str]) -> None:
        """In one commit: the batch's events become applied and ``versions`` are stored. Idempotent."""

    def close(self) -> None:
        """Release connections."""


def open_inbox(url: str) -> Inbox:
    """The inbox at ``url``: ``sqlite:///<absolute path>`` or ``redis://<conn_id>``.

    ``{AIRFLOW_HOME}`` in the URL is replaced by this process's AIRFLOW_HOME.

    :raises GHLInboxError: an unknown scheme, an empty path or connection id, or an inbox that cannot be opened.
    :raises GHLConfigError: a Redis inbox without the redis provider or with an unknown connection.
    """
    resolved = url
    if "{AIRFLOW_HOME}" in resolved:
        from airflow.configuration import AIRFLOW_HOME

        resolved = resolved.replace("{AIRFLOW_HOME}", AIRFLOW_HOME)
    if resolved.startswith("sqlite:///"):
        rest = resolved.removeprefix("sqlite:///").lstrip("/")
        if not rest:
            raise GHLInboxError(url, "no file path after sqlite:///")
        # sqlite:///tmp/x.db and sqlite:////tmp/x.db both mean /tmp/x.db: the path is always absolute.
        return SQLiteInbox("/" + rest)
    if resolved.startswith("redis://"):
        conn_id = resolved.removeprefix("redis://")
        if not conn_id or any(c in conn_id for c in "/@:"):
            raise GHLInboxError(url, "redis://<conn_id> names an Airflow redis connection, not a server address")
        return RedisStreamInbox.from_connection(conn_id)
    raise GHLInboxError(url, "unknown inbox URL: use sqlite:///<absolute path> or redis://<redis conn id>")


def _batch_versions(versions: Mapping[Key, str]) -> list[tuple[str, str, str]]:
    rows = []
    for (kind, record_id), stamp in versions.items():
        if kind not in KINDS:
            raise ValueError(f"versions: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        rows.append((kind, str(record_id), str(stamp)))
    return rows


# ----------------------------------------------------------------------------------------------------------
# SQLite
# ----------------------------------------------------------------------------------------------------------
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
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise GHLInboxError(self.url, f"cannot create {self.path.parent}: {err}") from None
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
        rows = _batch_versions(versions)
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

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()


# ----------------------------------------------------------------------------------------------------------
# Redis streams
# ----------------------------------------------------------------------------------------------------------
#: An unacked event's ``webhookId`` key lives this many retention periods (then the TTL restarts at the ack).
UNACKED_ID_FACTOR = 4
#: The set of locations that ever stored an event (``pending`` reads their meta hashes).
LOCATIONS_KEY = "ghl:webhooks:locations"

# KEYS: stream, meta, id key. ARGV: id TTL (s), webhook id, type, timestamp, body.
_STORE = """
if not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local seq = redis.call('HINCRBY', KEYS[2], 'high_water', 1)
redis.call('XADD', KEYS[1], '0-' .. seq, 'w', ARGV[2], 't', ARGV[3], 'ts', ARGV[4], 'b', ARGV[5])
return seq
"""

# KEYS: meta. ARGV: limit. Returns {first, last} or {}.
_CLAIM = """
local m = redis.call('HMGET', KEYS[1], 'high_water', 'applied', 'open_first', 'open_last')
if m[3] then return {tonumber(m[3]), tonumber(m[4])} end
local hw, applied = tonumber(m[1]) or 0, tonumber(m[2]) or 0
if hw <= applied then return {} end
local last = math.min(hw, applied + tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'open_first', applied + 1, 'open_last', last)
return {applied + 1, last}
"""

# KEYS: meta, versions, stream. ARGV: first, last, id TTL (s), id key prefix, then field, value pairs.
# Returns 1 (acked), 0 (acked before), -1 (not the open batch).
_ACK = """
local m = redis.call('HMGET', KEYS[1], 'applied', 'open_first', 'open_last')
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
if (tonumber(m[1]) or 0) >= last then return 0 end
if tonumber(m[2]) ~= first or tonumber(m[3]) ~= last then return -1 end
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '0-' .. first, '0-' .. last)) do
  local fields = entry[2]
  for j = 1, #fields, 2 do
    if fields[j] == 'w' then redis.call('EXPIRE', ARGV[4] .. fields[j + 1], ARGV[3]) end
  end
end
redis.call('XTRIM', KEYS[3], 'MINID', '0-' .. (last + 1))
redis.call('HSET', KEYS[1], 'applied', last)
redis.call('HDEL', KEYS[1], 'open_first', 'open_last')
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStreamInbox:
    """The inbox on a Redis server: a stream per location, shared by every machine.

    Keys of location L share the hash tag ``{L}`` (one cluster slot, so each script touches one slot):
    the stream ``ghl:webhooks:{L}`` (entry id ``0-<seq>``), its ``:meta`` hash (``high_water``, ``applied``,
    the open batch), its ``:versions`` hash (``<kind>:<record_id>`` -> timestamp) and one ``:id:<webhookId>``
    key per event, whose TTL restarts at the ack. Acked entries are trimmed from the stream at the ack.

    :param client: a ``redis.Redis`` client.
    :param url: the inbox URL, named in errors.
    :param retention_seconds: TTL of a ``webhookId`` key from the ack; from the store it is
        :data:`UNACKED_ID_FACTOR` times that (the guard of an event waiting for a paused DAG).
    """

    def __init__(self, client: Any, *, url: str, retention_seconds: float = RETENTION_SECONDS) -> None:
        import redis

        self._redis_error = redis.RedisError
        self._client = client
        self.url = url
        self.retention_seconds = int(retention_seconds)
        self._store = client.register_script(_STORE)
        self._claim = client.register_script(_CLAIM)
        self._ack = client.register_script(_ACK)
        with self._errors():
            client.ping()  # fail at open, not at the first event

    @classmethod
    def from_connection(cls, redis_conn_id: str) -> RedisStreamInbox:
        """The inbox on the server of an Airflow ``redis`` connection (as the shared budget gets it)."""
        from airflow_provider_ghl.hooks.budget import redis_client

        client = redis_client(
            redis_conn_id, owner="[ghl_webhooks] inbox", feature="a redis:// inbox", setting="redis connection"
        )
        return cls(client, url=f"redis://{redis_conn_id}")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._redis_error as err:
            raise GHLInboxError(self.url, f"{type(err).__name__}: {err}") from None

    @staticmethod
    def _keys(location_id: str) -> tuple[str, str, str, str]:
        tag = f"ghl:webhooks:{{{location_id}}}"
        return tag, f"{tag}:meta", f"{tag}:versions", f"{tag}:id:"

    def store(self, location_id: str, webhook_id: str, type: str, timestamp: str, body: dict[str, Any]) -> bool:
        stream, meta, _, id_prefix = self._keys(location_id)
        with self._errors():
            pipe = self._client.pipeline(transaction=False)  # one round trip; the script alone is atomic
            pipe.sadd(LOCATIONS_KEY, location_id)
            self._store(
                keys=[stream, meta, id_prefix + webhook_id],
                args=[self.retention_seconds * UNACKED_ID_FACTOR, webhook_id, type, timestamp, orjson.dumps(body)],
                client=pipe,
            )
            _, seq = pipe.execute()
        return int(seq) > 0

    def pending(self) -> dict[str, int]:
        with self._errors():
            locations = sorted(_text(v) for v in self._client.smembers(LOCATIONS_KEY))
            pipe = self._client.pipeline(transaction=False)
            for location_id in locations:
                pipe.hmget(self._keys(location_id)[1], "high_water", "applied")
            marks = pipe.execute()
        pending = {}
        for location_id, (high_water, applied) in zip(locations, marks, strict=True):
            if int(high_water or 0) > int(applied or 0):
                pending[location_id] = int(high_water)
        return pending

    def claim(self, location_id: str, limit: int = 10_000) -> Batch | None:
        if limit < 1:
            raise ValueError(f"limit: must be at least 1, got {limit}")
        with self._errors():
            reply = self._claim(keys=[self._keys(location_id)[1]], args=[limit])
        return Batch.of(location_id, int(reply[0]), int(reply[1])) if reply else None

    def events(self, batch: Batch) -> list[InboxEvent]:
        with self._errors():
            entries = self._client.xrange(
                self._keys(batch.location_id)[0], f"0-{batch.first_seq}", f"0-{batch.last_seq}"
            )
        events = []
        for entry_id, raw in entries:
            fields = {_text(k): v for k, v in raw.items()}
            events.append(
                InboxEvent(
                    seq=int(_text(entry_id).split("-")[1]),
                    webhook_id=_text(fields["w"]),
                    location_id=batch.location_id,
                    type=_text(fields["t"]),
                    timestamp=_text(fields["ts"]),
                    body=orjson.loads(fields["b"]),
                )
            )
        return events

    def versions(self, location_id: str, keys: Iterable[Key]) -> dict[Key, str]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        with self._errors():
            values = self._client.hmget(self._keys(location_id)[2], [f"{kind}:{rid}" for kind, rid in wanted])
        return {key: _text(value) for key, value in zip(wanted, values, strict=True) if value is not None}

    def ack(self, batch: Batch, versions: Mapping[Key, str]) -> None:
        stream, meta, versions_key, id_prefix = self._keys(batch.location_id)
        pairs = [
            item for kind, record_id, stamp in _batch_versions(versions) for item in (f"{kind}:{record_id}", stamp)
        ]
        with self._errors():
            result = self._ack(
                keys=[meta, versions_key, stream],
                args=[batch.first_seq, batch.last_seq, self.retention_seconds, id_prefix, *pairs],
            )
        if int(result) < 0:
            raise GHLInboxError(
                self.url, f"ack of {batch.batch_id} for {batch.location_id!r}: it is not the open batch"
            )

    def close(self) -> None:
        with contextlib.suppress(self._redis_error):
            self._client.close()
