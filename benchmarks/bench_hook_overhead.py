"""GHLHook's own cost per request: client CPU of the funnel (sync and async) against a bare client.

The sandbox answers at once (no latency, a budget the run never reaches), so what is measured is the client:
building the request from the endpoint table, the limiter, the token, the attempt, parsing and mapping the
answer. Each scenario sends the same ``GET /contacts/{id}`` and one-page ``POST /contacts/search`` requests:

* bare ``requests``: one ``requests.Session`` and ``json.loads`` (the floor a hand-written script pays);
* hook, sync: ``GHLHook.get_contact`` / ``search_contacts`` (the worker path);
* hook, async: ``aget_contact`` / ``asearch_contacts`` (the triggerer path; one ``httpx.AsyncClient`` per call).

Reported: client CPU microseconds per request (``time.process_time`` of this process; the sandbox runs in its
own) and the ratio to bare ``requests``. Target: the sync hook at most ``--target`` x the bare client.
The connection takes the default budget backend (``host``: two locked state-file steps per request); set
``GHL_BENCH_EXTRA='{"budget_backend": "process"}'`` (any connection extras, as JSON) to measure another.
Exit status 0 when the target is met. Writes ``benchmarks/results/hook_overhead.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer

RESULTS_DIR = Path(__file__).resolve().parent / "results"
EXTRA = json.loads(os.environ.get("GHL_BENCH_EXTRA", "{}"))


def cpu_per_request(run: Callable[[], int]) -> tuple[float, int]:
    """Client CPU microseconds per request of ``run`` (which returns how many requests it sent)."""
    started = time.process_time()
    count = run()
    return (time.process_time() - started) / count * 1e6, count


def bare(sandbox: SandboxServer, contact_ids: list[str], location: str) -> int:
    session = requests.Session()
    session.headers.update(sandbox.headers(0))
    for contact_id in contact_ids:
        json.loads(session.get(f"{sandbox.base_url}/contacts/{contact_id}", timeout=30).content)
        body = {"locationId": location, "pageLimit": 1}
        json.loads(session.post(f"{sandbox.base_url}/contacts/search", json=body, timeout=30).content)
    session.close()
    return 2 * len(contact_ids)


def hook_sync(hook: GHLHook, contact_ids: list[str]) -> int:
    for contact_id in contact_ids:
        hook.get_contact(contact_id)
        hook.search_contacts(page_limit=1)
    return 2 * len(contact_ids)


def hook_async(hook: GHLHook, contact_ids: list[str]) -> int:
    async def walk() -> None:
        for contact_id in contact_ids:
            await hook.aget_contact(contact_id)
            await hook.asearch_contacts(page_limit=1)

    asyncio.run(walk())
    return 2 * len(contact_ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per scenario (default 2000)")
    parser.add_argument("--target", type=float, default=3.0, help="most sync-hook CPU / bare CPU (default 3.0)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "hook_overhead.json", help="results file")
    args = parser.parse_args(argv)
    calls = max(args.requests // 2, 1)
    results: dict[str, Any] = {}
    with SandboxServer(contacts=max(calls, 10), locations=1, max_requests=1_000_000, interval_ms=1000) as sandbox:
        location = sandbox.location_ids[0]
        ids = (sandbox.contact_ids(location) * (calls // 10 + 1))[:calls]
        conn = {"conn_type": "ghl", "host": sandbox.base_url, "password": sandbox.token(0),
                "extra": {"location_id": location, **EXTRA}}  # fmt: skip
        os.environ["AIRFLOW_CONN_GHL_OVERHEAD"] = json.dumps(conn)
        hook = GHLHook("ghl_overhead")
        hook_sync(hook, ids[:20])  # warm: connection, config, limiter, imports
        bare(sandbox, ids[:20], location)
        scenarios: dict[str, Callable[[], int]] = {
            "bare requests": lambda: bare(sandbox, ids, location),
            "hook, sync": lambda: hook_sync(hook, ids),
            "hook, async": lambda: hook_async(hook, ids),
        }
        for name, run in scenarios.items():
            micros, count = cpu_per_request(run)
            results[name] = {"requests": count, "client_cpu_us_per_request": round(micros, 1)}
        hook.close()
    floor = results["bare requests"]["client_cpu_us_per_request"]
    print("GHLHook overhead benchmark (client CPU per request, sandbox without latency)")
    print(f"  {'scenario':<16} {'requests':>8} {'CPU us/req':>11} {'x bare':>7}")
    for name, row in results.items():
        row["ratio_to_bare"] = round(row["client_cpu_us_per_request"] / floor, 2)
        print(
            f"  {name:<16} {row['requests']:>8} {row['client_cpu_us_per_request']:>11.1f} {row['ratio_to_bare']:>7.2f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    ratio = results["hook, sync"]["ratio_to_bare"]
    passed = ratio <= args.target
    print(f"{'PASS' if passed else 'FAIL'}: sync hook {ratio:.2f} x the bare client's CPU (target <= {args.target})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
