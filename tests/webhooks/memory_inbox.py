"""The inbox interface (``webhooks/inbox.py``) in memory, for the engine's tests before the real inbox lands."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InboxEvent:
    seq: int
    webhook_id: str
    location_id: str
    type: str
    timestamp: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    location_id: str
    first_seq: int
    last_seq: int
    batch_id: str


class MemoryInbox:
    def __init__(self) -> None:
        self.rows: dict[str, list[InboxEvent]] = {}
        self.acked: dict[str, int] = {}
        self.open: dict[str, Batch] = {}
        self.stored_versions: dict[tuple[str, str, str], str] = {}
        self.ids: set[str] = set()
        self.acks = 0

    def store(self, location_id: str, webhook_id: str, type: str, timestamp: str, body: dict[str, Any]) -> bool:
        if webhook_id in self.ids:
            return False
        self.ids.add(webhook_id)
        rows = self.rows.setdefault(location_id, [])
        rows.append(InboxEvent(len(rows) + 1, webhook_id, location_id, type, timestamp, body))
        return True

    def pending(self) -> dict[str, int]:
        return {loc: len(rows) for loc, rows in self.rows.items() if len(rows) > self.acked.get(loc, 0)}

    def claim(self, location_id: str, limit: int = 10_000) -> Batch | None:
        if location_id in self.open:
            return self.open[location_id]
        first = self.acked.get(location_id, 0) + 1
        high = len(self.rows.get(location_id, []))
        if high < first:
            return None
        last = min(high, first + limit - 1)
        batch = Batch(location_id, first, last, f"{first:012d}-{last:012d}")
        self.open[location_id] = batch
        return batch

    def events(self, batch: Batch) -> list[InboxEvent]:
        return self.rows[batch.location_id][batch.first_seq - 1 : batch.last_seq]

    def versions(self, location_id: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        found = {}
        for kind, rid in keys:
            if (location_id, kind, rid) in self.stored_versions:
                found[(kind, rid)] = self.stored_versions[(location_id, kind, rid)]
        return found

    def ack(self, batch: Batch, versions: Mapping[tuple[str, str], str]) -> None:
        self.acks += 1
        if self.acked.get(batch.location_id, 0) >= batch.last_seq:
            return
        for (kind, rid), ts in versions.items():
            self.stored_versions[(batch.location_id, kind, rid)] = ts
        self.acked[batch.location_id] = batch.last_seq
        self.open.pop(batch.location_id, None)

    def close(self) -> None:
        pass
