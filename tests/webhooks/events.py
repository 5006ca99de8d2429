"""GHL-shaped webhook events for the apply tests (payloads as in ghl-api-details.md §6)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_ids = itertools.count(1)
BASE = datetime(2026, 12, 2, 5, 40, tzinfo=UTC)


def stamp(seconds: float) -> str:
    """An event timestamp ``seconds`` after BASE, as GHL writes it (milliseconds, ``Z``)."""
    moment = BASE + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event(type_: str, at: float, location_id: str, **fields: Any) -> dict[str, Any]:
    """One delivery body: the envelope and the event's fields."""
    return {"type": type_, "locationId": location_id, "webhookId": f"wh-{next(_ids)}", "timestamp": stamp(at), **fields}


def contact(contact_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": contact_id, "firstName": "Ada", "lastName": "Lovelace", "email": f"{contact_id}@x.test", **fields}


def store(inbox: Any, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        inbox.store(body["locationId"], body["webhookId"], body["type"], body["timestamp"], body)


def read_dataset(folder: Path, name: str) -> list[dict[str, Any]]:
    """The records of dataset ``name`` in a JSON Lines batch folder (its manifest lists the files)."""
    manifest = json.loads((folder / "_manifest.json").read_text())
    return [
        json.loads(line) for f in manifest["datasets"][name]["files"] for line in (folder / f).read_text().splitlines()
    ]
