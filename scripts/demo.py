"""``make demo``: start the GHL sandbox and run the provider against it, end to end, over HTTP.

For each location, in parallel (each location has its own rate budget): check the connection, export every
contact with ``searchAfter`` paging, fetch the tasks, notes and appointments of the recently changed contacts
with the concurrent fan-out, and exercise a few writes. Output lands in ``.demo/output/<location_id>/``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
# Before Airflow is imported: keep the demo's Airflow state out of ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(DEMO / "airflow-home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_ghl.hooks.ghl import GHLHook  # noqa: E402
from airflow_provider_ghl.sandbox import SandboxServer  # noqa: E402

CONTACTS_PER_LOCATION = 3000
CHANGED_CONTACTS = 40


def write_jsonl(path: Path, records: Any) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
            n += 1
    return n


def run_location(sandbox: SandboxServer, index: int) -> dict[str, Any]:
    location = sandbox.info["locations"][index]
    conn_id = f"ghl_demo_{index}"
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(sandbox.airflow_connection(index))
    hook = GHLHook(ghl_conn_id=conn_id)
    out = DEMO / "output" / location["id"]
    started = time.monotonic()
    ok, message = hook.test_connection()
    if not ok:
        raise SystemExit(f"connection test failed for {location['id']}: {message}")

    # 1. Full export: every contact, in dateAdded order, with searchAfter cursors.
    contacts = write_jsonl(out / "contacts.jsonl", hook.iter_contacts())

    # 2. Changed contacts, then their children, fetched concurrently under the shared rate limiter.
    changed = sandbox.touch_contacts(location["id"], count=CHANGED_CONTACTS)
    children: dict[str, list[dict[str, Any]]] = {"tasks": [], "notes": [], "appointments": []}
    for result in hook.fetch_contact_children(changed):
        children[result.kind].extend({**item, "contactId": result.contact_id} for item in result.items)
    counts = {kind: write_jsonl(out / f"{kind}.jsonl", items) for kind, items in children.items()}

    # 3. A few writes: create (or find) a contact, tag it, add a note and a task, complete the task.
    email = f"demo.{index}@example.com"
    contact = hook.get_duplicate_contact(email=email) or hook.create_contact(
        {"firstName": "Demo", "lastName": f"Contact {index}", "email": email}
    )
    hook.add_tags(contact["id"], ["airflow-demo"])
    hook.create_note(contact["id"], body="Created by make demo.")
    task = hook.create_task(contact["id"], title="Follow up", due_date="2030-01-01T09:00:00Z")
    hook.complete_task(contact["id"], task["id"])
    hook.close()
    return {
        "location": location["id"],
        "contacts": contacts,
        **counts,
        "demo_contact": contact["id"],
        "seconds": round(time.monotonic() - started, 1),
        "output": str(out.relative_to(ROOT)),
    }


def main() -> int:
    print(f"Starting the GHL sandbox: 2 locations x {CONTACTS_PER_LOCATION} contacts, 20-60 ms latency, 100 req/10 s")
    with SandboxServer(
        contacts=CONTACTS_PER_LOCATION, locations=2, seed=7, latency_ms=20, jitter_ms=40, max_requests=100
    ) as sandbox:
        print(f"sandbox at {sandbox.base_url}")
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            rows = list(pool.map(lambda i: run_location(sandbox, i), range(2)))
        stats = sandbox.stats()
    elapsed = time.monotonic() - started
    print()
    header = f"{'location':<22}{'contacts':>9}{'tasks':>7}{'notes':>7}{'appts':>7}{'seconds':>9}  output"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['location']:<22}{r['contacts']:>9}{r['tasks']:>7}{r['notes']:>7}{r['appointments']:>7}"
            f"{r['seconds']:>9}  {r['output']}/"
        )
    print()
    print(
        f"requests made: {stats['requests_total']}, 429s met: {stats['responses_429']}, "
        f"peak concurrency: {stats['peak_concurrency']}, elapsed: {elapsed:.1f} s"
    )
    print("by route: " + ", ".join(f"{route} x{n}" for route, n in sorted(stats["requests_by_route"].items())))
    print(f"Output: {DEMO / 'output'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
