"""Several worker processes spending one GHL budget: does a shared budget stop the 429 storm?

Issue #12: 4 processes x 50 contacts x (tasks, notes, appointments) = 600 requests for the same location
against the sandbox at 50 requests / 2 s and 30 ms latency, once per ``budget_backend`` (process, host, redis)
in one run. Each worker is its own Python process with its own ``GHLHook`` (8 threads, ``max_workers``); they
start together. Reported per backend: calls, wall time, achieved rate vs budget, 429 answers.

Targets: ``host`` and ``redis`` >= 0.9 x budget and <= 1 % of calls answered 429; the default configuration
(``host``) the same, so <= 5 % holds. ``process`` is the per-process limiter of before, shown for comparison
(its only way to learn of the others is ``X-RateLimit-Remaining``).

The ``redis`` row needs Debian's ``redis-server`` (started here on a free loopback port); without it the row
is skipped, and the run fails when ``CI=true``. Exit status 0 when every target is met. Writes
``benchmarks/results/budget_workers.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def worker(contacts: list[str], threads: int, report: Path) -> None:
    """One worker process: say it is ready, wait for "go" on stdin, fan out, write what it saw to ``report``.

    Files, not stdout, carry the protocol: Airflow logs to stdout, and a full pipe would stall the worker.
    """
    from airflow_provider_ghl.hooks.ghl import CHILD_KINDS, GHLHook

    hook = GHLHook("ghl_bench", max_workers=threads)
    _ = hook.config  # resolve the connection outside the timed part
    report.with_suffix(".ready").touch()
    sys.stdin.readline()
    started = time.time()
    results = list(hook.fetch_contact_children(contacts, kinds=CHILD_KINDS, raise_on_error=False))
    finished = time.time()
    hook.close()
    errors = sum(r.error is not None for r in results)
    summary = {"started": started, "finished": finished, "results": len(results), "errors": errors}
    report.write_text(json.dumps({**summary, **hook.request_stats.as_dict()}))


def run_backend(sandbox: Any, backend: str, args: argparse.Namespace, redis_conn: dict[str, Any] | None) -> dict:
    """Run the workers once on ``backend``; returns the row of the table."""
    sandbox.reset()
    location = sandbox.info["locations"][0]
    contacts = sandbox.contact_ids(location["id"])[: args.contacts]
    extra: dict[str, Any] = {"location_id": location["id"]}
    if backend != "default":
        extra["budget_backend"] = backend
    budget_dir = tempfile.mkdtemp(prefix="ghl-bench-budget-")
    extra["budget_dir"] = budget_dir  # a fresh window per run (also for the default backend, host)
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "AIRFLOW_CONN_GHL_BENCH": json.dumps({"conn_type": "ghl", "host": sandbox.base_url,
                                                 "password": location["private_token"], "extra": extra})}  # fmt: skip
    if backend == "redis":
        assert redis_conn is not None
        extra["budget_redis_conn_id"] = "ghl_bench_redis"
        env["AIRFLOW_CONN_GHL_BENCH"] = json.dumps({**json.loads(env["AIRFLOW_CONN_GHL_BENCH"]), "extra": extra})
        env["AIRFLOW_CONN_GHL_BENCH_REDIS"] = json.dumps(redis_conn)
    cmd = [sys.executable, __file__, "--worker", "--threads", str(args.threads), "--ids", ",".join(contacts)]
    paths = [Path(budget_dir) / f"worker-{i}.json" for i in range(args.processes)]
    procs = [
        subprocess.Popen(
            [*cmd, "--report", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for path in paths
    ]
    # Every worker has imported Airflow and read its connection before the clock starts.
    while not all(path.with_suffix(".ready").exists() for path in paths):
        if any(proc.poll() is not None for proc in procs):
            raise RuntimeError("a worker exited before it was ready")
        time.sleep(0.05)
    sandbox.clear_stats()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        if proc.wait(timeout=600) != 0:
            raise RuntimeError(f"a worker failed (exit {proc.returncode})")
    reports = [json.loads(path.read_text()) for path in paths]
    stats = sandbox.stats()
    seconds = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    calls = stats["requests_total"]
    budget = args.max_requests / (args.interval_ms / 1000)
    return {
        "backend": backend,
        "calls": calls,
        "results": sum(r["results"] for r in reports),
        "errors": sum(r["errors"] for r in reports),
        "seconds": seconds,
        # What the budget bought: answers that did work (a 429 did nothing but spend time).
        "rate_over_budget": (calls - stats["responses_429"]) / seconds / budget,
        "responses_429": stats["responses_429"],
        "share_429": stats["responses_429"] / max(calls, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=4, help="worker processes (4)")
    parser.add_argument("--contacts", type=int, default=50, help="contacts per worker (50)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker's hook (8)")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="sandbox latency per request (30)")
    parser.add_argument("--max-requests", type=int, default=50, help="sandbox burst budget (50)")
    parser.add_argument("--interval-ms", type=int, default=2000, help="sandbox burst window (2000)")
    parser.add_argument("--backends", default="process,host,redis,default", help="comma-separated; default = host")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "budget_workers.json", help="results file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ids", default="", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.ids.split(","), args.threads, args.report)
        return 0

    from _measure import isolated_airflow_home

    isolated_airflow_home("ghl-bench-budget-")  # the workers inherit this AIRFLOW_HOME
    from ghl_sandbox.redis_server import RedisServer
    from ghl_sandbox.testing import SandboxServer

    backends = [b for b in args.backends.split(",") if b]
    rows = []
    skipped = []
    with contextlib.ExitStack() as stack:
        settings = {"contacts": args.contacts, "locations": 1, "max_requests": args.max_requests,
                    "interval_ms": args.interval_ms, "latency_ms": args.latency_ms}  # fmt: skip
        sandbox = stack.enter_context(SandboxServer(**settings))
        redis_conn = None
        if "redis" in backends:
            if RedisServer.available():
                redis_conn = stack.enter_context(RedisServer()).airflow_connection()
            else:
                skipped.append("redis (install Debian's redis-server package)")
                backends.remove("redis")
        for backend in backends:
            rows.append(run_backend(sandbox, backend, args, redis_conn))

    budget = args.max_requests / (args.interval_ms / 1000)
    print(
        f"Shared budget benchmark: {args.processes} processes x {args.contacts} contacts x 3 kinds, budget "
        f"{args.max_requests} / {args.interval_ms / 1000:g} s = {budget:g}/s, latency {args.latency_ms:g} ms"
    )
    header = f"  {'backend':<9} {'calls':>6} {'wall s':>7} {'ok/s÷budget':>12} {'429s':>6} {'429 %':>7}  target"
    print(header)
    ok = not (skipped and os.environ.get("CI") == "true")
    for row in rows:
        if row["backend"] == "process":
            target, met = "(before: no target)", True
        else:
            limit = 0.05 if row["backend"] == "default" else 0.01
            met = row["rate_over_budget"] >= 0.9 and row["share_429"] <= limit and row["errors"] == 0
            target = f">= 0.9 x, <= {limit:.0%} 429: {'met' if met else 'MISSED'}"
        ok = ok and met
        name = "default" if row["backend"] == "default" else row["backend"]
        print(f"  {name:<9} {row['calls']:>6} {row['seconds']:>7.2f} {row['rate_over_budget']:>11.3f}x "
              f"{row['responses_429']:>6} {row['share_429']:>7.1%}  {target}")  # fmt: skip
    for name in skipped:
        print(f"  skipped: {name}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "skipped": skipped, "passed": ok}, indent=2))
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
