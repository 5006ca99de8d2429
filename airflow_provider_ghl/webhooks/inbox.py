"""The webhook inbox: durable, ordered per location, drained in acknowledged batches.

The receiver ``store``\\ s each verified event; the trigger watches ``pending``; the apply task ``claim``\\ s a
batch up to the high-water mark, reads its ``events``, writes its files and ``ack``\\ s it together with the
record versions it applied. A batch stays *open* until acked, so a killed task claims the very same batch
again and rewrites the same output.

Two engines behind one protocol, chosen by URL (:func:`open_inbox`):

* ``sqlite:///<absolute path>`` (``inbox_sqlite.SQLiteInbox``): one file under AIRFLOW_HOME, no new service. WAL mode
  lets the receiver, the triggerer and the workers of one machine use it at once (readers never block the one
  writer). ``synchronous=FULL``: each commit fsyncs the WAL before ``store`` returns, so an event answered
  200 survives a power cut, not only a killed process. ``NORMAL`` under WAL survives a killed process too but
  may lose the last commits on a power cut or OS crash, and GHL never redelivers what was answered 200; the
  fsync costs little (``benchmarks/bench_webhook_receiver.py``: ~700 events/s). SQLite's file locks need
  one machine (no NFS): for several, use Redis.
* ``redis://<conn_id>`` (``inbox_redis.RedisStreamInbox``): an Airflow ``redis`` connection, the one the shared rate
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

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from airflow_provider_ghl.exceptions import GHLInboxError, GHLInputError

#: How long a ``webhookId`` is remembered after its event was acked (GHL's own retries end after ~1 h).
RETENTION_SECONDS = 7 * 24 * 3600
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


#: What a :attr:`Batch.batch_id` looks like; its text sorts in apply order.
BATCH_ID = re.compile(r"\d{12}-\d{12}")


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


@dataclass(frozen=True)
class Backlog:
    """A location's events not yet applied.

    :param high_water: the last stored event's seq.
    :param depth: how many events wait (stored, neither applied nor expired).
    :param oldest_stored_at: when the oldest of them was stored (Unix time); None when the inbox does not know
        (an event stored by an older version of the Redis inbox).
    """

    high_water: int
    depth: int
    oldest_stored_at: float | None

    def lag_seconds(self, now: float) -> float | None:
        """How long the oldest waiting event has waited at ``now`` (Unix time): the webhook lag.

        :param now: the moment.
        :return: seconds (never negative: clocks of two machines may differ a little); None when not known.
        """
        return None if self.oldest_stored_at is None else max(0.0, now - self.oldest_stored_at)


#: The app's own lifecycle events: they add and remove served locations (``[ghl_webhooks] app_id``).
LIFECYCLE_EVENTS = ("INSTALL", "UNINSTALL")


def event_instant(timestamp: str) -> datetime:
    """An event's ``timestamp`` (ISO 8601, ``Z`` or an offset; no zone is UTC) as an aware UTC datetime.

    :raises ValueError: not a timestamp.
    """
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


class Inbox(Protocol):
    """What the receiver, the trigger and the apply task use; see the module docstring."""

    def store(self, location_id: str, webhook_id: str, type: str, timestamp: str, body: dict[str, Any]) -> bool:
        """Store one event, durably before returning; False when ``webhook_id`` was already stored."""

    def pending(self) -> dict[str, int]:
        """location_id -> high-water seq, for each location with unapplied events."""

    def backlog(self) -> dict[str, Backlog]:
        """location_id -> its :class:`Backlog`, for each location with unapplied events (the webhook lag)."""

    def claim(self, location_id: str, limit: int = 10_000) -> Batch | None:
        """The open batch if there is one, else a new one of at most ``limit`` unapplied events; None if none."""

    def events(self, batch: Batch) -> list[InboxEvent]:
        """The batch's events in seq order."""

    def versions(self, location_id: str, keys: Iterable[Key]) -> dict[Key, str]:
        """(kind, record_id) -> timestamp of the last applied event of that record, for the keys known."""

    def ack(self, batch: Batch, versions: Mapping[Key, str]) -> None:
        """In one commit: the batch's events become applied and ``versions`` are stored. Idempotent."""

    def installed(self) -> set[str]:
        """The locations that installed the app (an ``INSTALL`` the receiver accepted, not undone since)."""

    def set_installed(self, location_id: str, installed: bool) -> None:
        """Record an ``INSTALL`` (True) or ``UNINSTALL`` (False) of the app by ``location_id``. An uninstall also
        expires the location's events not yet applied (they are dropped unapplied, in the same commit); an
        open batch is left to its apply. Idempotent."""

    def close(self) -> None:
        """Release connections."""


#: A Redis inbox's key prefix (``redis://<conn_id>/<prefix>``): one deployment's keys on a shared server.
REDIS_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,40}")


def open_inbox(url: str) -> Inbox:
    """The inbox at ``url``: ``sqlite:///<absolute path>``, or ``redis://<conn_id>`` (keys ``ghl:webhooks:...``)
    or ``redis://<conn_id>/<prefix>`` (keys ``<prefix>:webhooks:...``, for deployments sharing a Redis server).

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
        from airflow_provider_ghl.webhooks.inbox_sqlite import SQLiteInbox

        return SQLiteInbox("/" + rest)
    if resolved.startswith("redis://"):
        conn_id, _, prefix = resolved.removeprefix("redis://").partition("/")
        if not conn_id or any(c in conn_id for c in "@:"):
            raise GHLInboxError(url, "redis://<conn_id> names an Airflow redis connection, not a server address")
        if prefix and not REDIS_PREFIX.fullmatch(prefix):
            raise GHLInboxError(url, f"the key prefix after the connection id must match {REDIS_PREFIX.pattern}")
        from airflow_provider_ghl.webhooks.inbox_redis import DEFAULT_PREFIX, RedisStreamInbox

        return RedisStreamInbox.from_connection(conn_id, prefix or DEFAULT_PREFIX)
    raise GHLInboxError(url, "unknown inbox URL: use sqlite:///<absolute path> or redis://<redis conn id>")


def version_rows(versions: Mapping[Key, str]) -> list[tuple[str, str, str]]:
    rows = []
    for (kind, record_id), stamp in versions.items():
        if kind not in KINDS:
            raise ValueError(f"versions: unknown kind {kind!r} (one of {', '.join(KINDS)})")
        rows.append((kind, str(record_id), str(stamp)))
    return rows


def inbox_url(field: str, value: Any) -> str:
    """A webhook inbox URL: ``sqlite:///<absolute path>`` or ``redis://<Airflow Redis connection id>``."""
    if not isinstance(value, str) or not value.strip():
        raise GHLInputError(field, "an inbox URL is required: sqlite:///<absolute path> or redis://<conn_id>")
    url = value.strip()
    if url.startswith("sqlite:///") and url.removeprefix("sqlite://").startswith("/") and len(url) > 10:
        return url
    conn_id, slash, prefix = url.removeprefix("redis://").partition("/")
    # The connection's id, never a server address (which would carry a password into logs and XComs).
    if (
        url.startswith("redis://")
        and conn_id
        and not any(c in conn_id for c in "@:")
        and (not slash or REDIS_PREFIX.fullmatch(prefix))
    ):
        return url
    raise GHLInputError(field, f"must be sqlite:///<absolute path> or redis://<conn_id>[/<key prefix>], got {value!r}")
