"""Apply rate of webhook events: from a filled SQLite inbox to committed batch folders (files, manifest, ack).

The inbox is filled first (not timed) with a GHL-shaped mix for one location: contact creates, updates, tag
updates, deletes, notes and tasks, with a share of events delivered out of order. Then the apply engine
(``webhooks/apply.py``, what ``GHLApplyWebhookEventsOperator`` runs) drains it in batches of ``--batch``
events: claim, read, fold by timestamp against the stored versions, write the part files and the manifest, ack.
Every payload is complete, so no API request is made (the engine's cost alone). Run once per output format.

    .venv/bin/python benchmarks/bench_webhook_apply.py                  # 20,000 events, jsonl and parquet
    .venv/bin/python benchmarks/bench_webhook_apply.py --events 5000 --formats jsonl

Target: >= 5,000 events/s for JSON Lines (200,000 changes, a busy location's day, applied in under a minute),
nothing left in the inbox, the same records whatever the format.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import isolated_airflow_home, own_cpu_seconds, status_kib

TARGET_EVENTS_PER_SECOND = 5_000
LOCATION = "bench-location"


def stamp(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_764_654_000 + seconds)) + f".{millis:03d}Z"


def events(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` events for about count/4 contacts; one in ten delivered after a later one, one in fifty last."""
    rng = random.Random(seed)
    contacts = max(count // 4, 1)
    made: list[dict[str, Any]] = []
    for n in range(count):
        cid = f"c{rng.randrange(contacts):06d}"
        roll = rng.random()
        if roll < 0.35:
            kind, fields = "ContactUpdate", {"id": cid, "firstName": f"F{n}", "email": f"{cid}@x.test", "tags": []}
        elif roll < 0.55:
            kind, fields = "ContactTagUpdate", {"id": cid, "firstName": "T", "tags": [f"t{n % 7}"]}
        elif roll < 0.60:
            kind, fields = "ContactDelete", {"id": cid}
        elif roll < 0.80:
            kind, fields = "NoteCreate", {"id": f"n{n}", "contactId": cid, "body": "x" * 80}
        else:
            kind, fields = "TaskCreate", {"id": f"t{n}", "contactId": cid, "title": "Call", "dueDate": stamp(n)}
        made.append({"type": kind, "locationId": LOCATION, "webhookId": f"wh{n}", "timestamp": stamp(n * 10), **fields})
    for i in range(0, len(made) - 1, 10):  # reordering: swap neighbours
        made[i], made[i + 1] = made[i + 1], made[i]
    # Delays: one in fifty arrives after everything else (in a later batch: stale when its record moved on).
    late = made[::50]
    return [e for i, e in enumerate(made) if i % 50] + late


def run(fmt: str, bodies: list[dict[str, Any]], batch: int, work: Path) -> dict[str, Any]:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_ghl.webhooks.apply import drain
    from airflow_provider_ghl.webhooks.inbox import open_inbox

    inbox = open_inbox(f"sqlite:///{work / f'inbox-{fmt}.db'}")
    fill = time.perf_counter()
    for body in bodies:
        inbox.store(LOCATION, body["webhookId"], body["type"], body["timestamp"], body)
    fill = time.perf_counter() - fill
    folder = ObjectStoragePath(f"file://{work / fmt}")
    cpu, started = own_cpu_seconds(), time.perf_counter()
    results = drain(inbox, LOCATION, folder, max_events=batch, fmt=fmt)
    elapsed, cpu = time.perf_counter() - started, own_cpu_seconds() - cpu
    pending = inbox.pending()
    inbox.close()
    records = sum(d["records"] for r in results for d in r.manifest["datasets"].values())
    stale = sum(r.manifest["stale"] for r in results)
    return {
        "format": fmt,
        "events": len(bodies),
        "batches": len(results),
        "records": records,
        "stale": stale,
        "fill_s": fill,
        "apply_s": elapsed,
        "events_per_s": len(bodies) / elapsed,
        "api_requests": sum(r.requests for r in results),
        "cpu_s": cpu,
        "left": pending,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000, help="events in the inbox (default 20,000)")
    p.add_argument("--batch", type=int, default=10_000, help="events per batch (default 10,000, the operator's)")
    p.add_argument("--formats", default="jsonl,parquet", help="comma-separated output formats")
    args = p.parse_args()
    work, _ = isolated_airflow_home("ghl-bench-webhook-apply-")
    bodies = events(args.events)
    rows = [run(fmt, bodies, args.batch, work) for fmt in args.formats.split(",")]

    print(f"{'format':<8} {'events':>7} {'batches':>7} {'records':>8} {'stale':>6} {'fill s':>7} {'apply s':>8} "
          f"{'events/s':>9} {'cpu s':>6}")  # fmt: skip
    for r in rows:
        print(
            f"{r['format']:<8} {r['events']:>7} {r['batches']:>7} {r['records']:>8} {r['stale']:>6} "
            f"{r['fill_s']:>7.2f} {r['apply_s']:>8.2f} {r['events_per_s']:>9.0f} {r['cpu_s']:>6.2f}"
        )
    print(f"peak RSS {status_kib('VmHWM') / 1024:.0f} MiB")
    results_dir = Path(__file__).resolve().parent / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "bench_webhook_apply.json").write_text(json.dumps(rows, indent=2))

    failures = [f"{r['format']}: events left in the inbox {r['left']}" for r in rows if r["left"]]
    # The same events give the same records whatever the format.
    if len({(r["records"], r["stale"]) for r in rows}) > 1:
        failures.append("formats disagree on records or stale events")
    jsonl = next((r for r in rows if r["format"] == "jsonl"), None)
    if jsonl is not None and jsonl["events_per_s"] < TARGET_EVENTS_PER_SECOND:
        failures.append(f"jsonl applies {jsonl['events_per_s']:.0f} events/s < {TARGET_EVENTS_PER_SECOND}")
    print(("FAIL: " + "; ".join(failures)) if failures else f"PASS: jsonl >= {TARGET_EVENTS_PER_SECOND} events/s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
