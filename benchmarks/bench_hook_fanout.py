"""GHLHook fan-out under GHL's rate budget: does the shared limiter run at the budget without a single 429?

Target (from the issue): 300 contacts x (tasks, notes, appointments) = 900 requests against the sandbox with
100 ms latency per request and a budget of 100 requests / 2 s (50 requests/s):

* achieved request rate >= 0.95 x budget,
* zero 429 responses,
* and the speed-up over a sequential plain-``requests`` loop doing the same work.

The hook learns the budget from the ``X-RateLimit-*`` headers (it is configured with GHL's default 100 / 10 s
and nothing else) and runs ``fetch_contact_children`` with ``--workers`` threads. The sequential loop is one
``requests.Session`` calling the same 900 URLs one after another; at 100 ms a request it needs about 90 s, so
by default it runs on the first ``--baseline-contacts`` contacts and its time is scaled to the 900 requests
(requests are independent and identical in cost; ``--baseline-contacts 300`` runs the whole loop).

"Window-limited minimum" is the least time any client can take under a sliding window of M requests per I
seconds: the first M go at once, each further M need another I, plus one round trip.

Exit status 0 when the target is met. Writes ``benchmarks/results/hook_fanout.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import requests
from _measure import use_bench_connection

from airflow_provider_ghl.hooks.ghl import CHILD_KINDS, GHLHook
from ghl_sandbox.testing import SandboxServer

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def sequential_loop(sandbox: SandboxServer, contact_ids: list[str]) -> tuple[float, int]:
    """What a plain script does: one request after the other. Returns (seconds, requests)."""
    session = requests.Session()
    session.headers.update(sandbox.headers(0))
    start = time.perf_counter()
    count = 0
    for contact_id in contact_ids:
        for kind in CHILD_KINDS:
            response = session.get(f"{sandbox.base_url}/contacts/{contact_id}/{kind}", timeout=30)
            response.raise_for_status()
            count += 1
    session.close()
    return time.perf_counter() - start, count


def fan_out(sandbox: SandboxServer, contact_ids: list[str], workers: int) -> dict[str, Any]:
    location = sandbox.info["locations"][0]
    hook = GHLHook(
        use_bench_connection(sandbox.base_url, location["private_token"], location["id"]), max_workers=workers
    )
    _ = hook.config  # resolve the connection outside the timed part
    start = time.perf_counter()
    results = list(hook.fetch_contact_children(contact_ids, kinds=CHILD_KINDS))
    elapsed = time.perf_counter() - start
    hook.close()
    errors = [r for r in results if r.error is not None]
    return {"seconds": elapsed, "results": len(results), "errors": len(errors)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=300, help="contacts to fan out over (default 300)")
    parser.add_argument("--latency-ms", type=float, default=100.0, help="sandbox latency per request (100)")
    parser.add_argument("--max-requests", type=int, default=100, help="sandbox burst budget (100)")
    parser.add_argument("--interval-ms", type=int, default=2000, help="sandbox burst window (2000)")
    parser.add_argument("--workers", type=int, default=16, help="hook threads (default 16)")
    parser.add_argument(
        "--baseline-contacts", type=int, default=60, help="contacts the sequential loop runs on (default 60)"
    )
    parser.add_argument("--target", type=float, default=0.95, help="minimum achieved rate / budget (0.95)")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "hook_fanout.json", help="results file")
    args = parser.parse_args()

    budget = args.max_requests / (args.interval_ms / 1000)
    settings = {"contacts": args.contacts, "locations": 1, "max_requests": args.max_requests,
                "interval_ms": args.interval_ms, "latency_ms": args.latency_ms}  # fmt: skip
    with SandboxServer(**settings) as sandbox:
        contact_ids = sandbox.contact_ids(sandbox.location_ids[0])[: args.contacts]
        work = len(contact_ids) * len(CHILD_KINDS)

        sandbox.reset()
        fan = fan_out(sandbox, contact_ids, args.workers)
        stats = sandbox.stats()

        sandbox.reset()
        baseline_ids = contact_ids[: max(1, min(args.baseline_contacts, len(contact_ids)))]
        seq_seconds, seq_requests = sequential_loop(sandbox, baseline_ids)
        seq_stats = sandbox.stats()

    sent = stats["requests_total"]
    rate = sent / fan["seconds"]
    seq_full = seq_seconds * work / seq_requests
    windows = max(math.ceil(work / args.max_requests) - 1, 0)
    minimum = windows * args.interval_ms / 1000 + args.latency_ms / 1000
    ok = (
        rate >= args.target * budget
        and stats["responses_429"] == 0
        and fan["results"] == work
        and fan["errors"] == 0
        and seq_stats["responses_429"] == 0
    )

    rows = [
        ("work", f"{len(contact_ids)} contacts x {len(CHILD_KINDS)} kinds = {work} requests"),
        ("budget", f"{args.max_requests} / {args.interval_ms / 1000:g} s = {budget:g} requests/s"),
        ("latency", f"{args.latency_ms:g} ms per request"),
        ("hook fan-out", f"{fan['seconds']:.2f} s with {args.workers} workers, {sent} requests sent"),
        ("achieved rate", f"{rate:.1f} requests/s = {rate / budget:.3f} x budget (target >= {args.target})"),
        ("429 responses", f"{stats['responses_429']}"),
        ("peak concurrency", f"{stats['peak_concurrency']} (server side)"),
        ("window-limited min", f"{minimum:.2f} s -> fan-out took {fan['seconds'] / minimum:.3f} x the minimum"),
        ("sequential loop", f"{seq_seconds:.2f} s for {seq_requests} requests ({seq_requests / seq_seconds:.1f}/s)"),
        ("sequential, 900 req", f"{seq_full:.2f} s" + (" (scaled)" if seq_requests != work else " (measured)")),
        ("speed-up", f"{seq_full / fan['seconds']:.2f} x"),
    ]
    width = max(len(name) for name, _ in rows)
    print("GHLHook fan-out benchmark")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")

    summary = {
        "work": work, "budget_per_s": budget, "latency_ms": args.latency_ms, "workers": args.workers,
        "fanout_seconds": fan["seconds"], "requests_sent": sent, "achieved_rate": rate,
        "rate_over_budget": rate / budget, "responses_429": stats["responses_429"],
        "peak_concurrency": stats["peak_concurrency"], "window_limited_min_seconds": minimum,
        "sequential_seconds_measured": seq_seconds, "sequential_requests_measured": seq_requests,
        "sequential_seconds_for_work": seq_full, "speedup": seq_full / fan["seconds"], "passed": ok,
    }  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    verdict = "PASS" if ok else "FAIL"
    print(
        f"{verdict}: {rate / budget:.3f} x budget with {stats['responses_429']} x 429 "
        f"(target >= {args.target}, 0); speed-up {seq_full / fan['seconds']:.1f} x over the sequential loop"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
