"""Write-back (GHLWriteBackContactsOperator): records per second under GHL's budget, and requests against the floor.

A location of ``--contacts`` (1,000) contacts gets a CSV of ``--records`` (300) records keyed by e-mail:
``--new-pct`` (40 %) new, ``--changed-pct`` (40 %) changed (a new ``firstName``), the rest unchanged. The floor
is what no client can do with less: one lookup per record without an id (GHL's duplicate lookup) plus one write
per record that needs one (a create, or a PUT of the changed field), plus the one read of the custom-field
definitions. Against a sandbox budget of ``--max-requests`` / ``--interval-ms`` (100 / 10 s, GHL's burst limit)
with ``--latency-ms`` (30) latency the benchmark reports:

* requests: sent (by the sandbox's count, and the manifest's) / floor: must be 1;
* records per second, against the floor's records per second: the records over the window-limited minimum of
  the floor's requests (the first M requests go at once, each further M need another window, plus one round
  trip); target ``--target`` (0.9) x;
* zero 429s, and the sandbox's writes == creates + updates (the results say the same).

The run is a fresh subprocess of this interpreter (as a task is), timed around ``execute``; the data is prepared
before the budget is set. Exit status 0 when every target is met. Writes ``benchmarks/results/write_back.json``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from _measure import child_command, isolated_airflow_home, print_rows, use_bench_connection

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# -- child: one GHLWriteBackContactsOperator.execute, measured from the inside ------------------------------------
def child_main(args: argparse.Namespace) -> int:
    conn_id = use_bench_connection(args.base_url, args.token, args.location)
    from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator

    operator = GHLWriteBackContactsOperator(
        task_id="sync",
        ghl_conn_id=conn_id,
        input_path=f"file://{args.input}",
        results_path=f"file://{args.out}",
        max_workers=args.workers,
    )
    t, started = os.times(), time.perf_counter()
    counts = operator.execute(context={})
    wall, t2 = time.perf_counter() - started, os.times()
    manifest = json.loads(Path(counts["manifest"].removeprefix("file://")).read_text())
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": t2.user + t2.system - t.user - t.system,
                "counts": counts,
                "writes": manifest["writes"],
                "requests": manifest["requests"],
                "responses_429": manifest["responses_429"],
            }
        )
    )
    return 0


# -- parent -----------------------------------------------------------------------------------------------
def build_input(sandbox: Any, args: argparse.Namespace, path: Path) -> dict[str, int]:
    """Write the CSV from the sandbox's contacts (read before the budget is set); return what it holds."""
    location = sandbox.info["locations"][0]
    body = {"locationId": location["id"], "pageLimit": 500}
    contacts: list[dict[str, Any]] = []
    while True:
        resp = requests.post(f"{sandbox.base_url}/contacts/search", json=body, headers=sandbox.headers(0), timeout=60)
        resp.raise_for_status()
        page = resp.json()["contacts"]
        contacts += page
        if len(page) < body["pageLimit"]:
            break
        body["searchAfter"] = page[-1]["searchAfter"]
    contacts.sort(key=lambda c: c["id"])
    new = round(args.records * args.new_pct / 100)
    changed = round(args.records * args.changed_pct / 100)
    unchanged = args.records - new - changed
    if changed + unchanged > len(contacts):
        raise SystemExit(f"--contacts {args.contacts} is too few for {changed + unchanged} existing records")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["email", "firstName"])
    for i in range(new):
        writer.writerow([f"bench.new.{i}@sync.example.com", f"New{i}"])
    for contact in contacts[:changed]:
        writer.writerow([contact["email"], f"{contact['firstName']}-v2"])
    for contact in contacts[changed : changed + unchanged]:
        writer.writerow([contact["email"], contact["firstName"]])
    path.write_text(out.getvalue())
    return {"new": new, "changed": changed, "unchanged": unchanged}


def run_child(sandbox: Any, args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    cmd = [
        *child_command(__file__, sandbox),
        "--input",
        str(work / "records.csv"),
        "--out",
        str(work / "results"),
        "--workers",
        str(args.workers),
    ]
    sandbox.clear_stats()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.child_timeout)
    if proc.returncode != 0:
        raise SystemExit(f"sync child failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stats"] = sandbox.stats()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--contacts", type=int, default=1_000, help="contacts in the location (default 1000)")
    p.add_argument("--records", type=int, default=300, help="records in the input (default 300)")
    p.add_argument("--new-pct", type=float, default=40.0, help="percent of records that are new (default 40)")
    p.add_argument("--changed-pct", type=float, default=40.0, help="percent that change a contact (default 40)")
    p.add_argument("--max-requests", type=int, default=100, help="sandbox burst budget (default 100)")
    p.add_argument("--interval-ms", type=int, default=10_000, help="sandbox burst window (default 10000)")
    p.add_argument("--latency-ms", type=float, default=30.0, help="sandbox latency per request (default 30)")
    p.add_argument("--workers", type=int, default=8, help="operator max_workers (default 8, the hook's)")
    p.add_argument("--target", type=float, default=0.9, help="minimum records/s over the floor's (default 0.9)")
    p.add_argument("--child-timeout", type=float, default=600, help="seconds allowed for the run (default 600)")
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "write_back.json", help="results file")
    # Internal: the measured child process.
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--base-url", "--token", "--location"):
        p.add_argument(name, help=argparse.SUPPRESS)
    p.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.records < 1 or not 0 <= args.new_pct + args.changed_pct <= 100:
        p.error("need --records >= 1 and --new-pct + --changed-pct <= 100")

    from ghl_sandbox.testing import SandboxServer

    work, env = isolated_airflow_home("ghl-bench-writeback-")
    print(
        f"write-back: GHLWriteBackContactsOperator, {args.records} records (csv, by e-mail), workers={args.workers}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        flush=True,
    )
    try:
        settings = {"contacts": args.contacts, "locations": 1, "max_requests": 10**9, "interval_ms": 1000}
        with SandboxServer(**settings) as sandbox:
            mix = build_input(sandbox, args, work / "records.csv")
            sandbox.set_limits(max_requests=args.max_requests, interval_ms=args.interval_ms)
            sandbox.set_faults(latency_ms=args.latency_ms)
            run = run_child(sandbox, args, env, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    writes_needed = mix["new"] + mix["changed"]
    floor = args.records + writes_needed + 1  # a lookup per record, a write per changed or new one, definitions
    sent = run["stats"]["requests_total"]
    budget = args.max_requests / (args.interval_ms / 1000)
    windows = max(math.ceil(floor / args.max_requests) - 1, 0)
    minimum = windows * args.interval_ms / 1000 + args.latency_ms / 1000
    floor_rate = args.records / minimum
    rate = args.records / run["wall"]
    counts = run["counts"]
    print()
    print_rows(
        "write-back under the sandbox budget",
        [
            ("records", f"{args.records}: {mix['new']} new, {mix['changed']} changed, {mix['unchanged']} unchanged"),
            ("budget", f"{args.max_requests} / {args.interval_ms / 1000:g} s = {budget:g} requests/s"),
            (
                "floor",
                f"{args.records} lookups + {writes_needed} writes + 1 definitions read = {floor} requests; "
                f"window-limited minimum {minimum:.2f} s = {floor_rate:.2f} records/s",
            ),
            (
                "execute",
                f"{run['wall']:.2f} s, {sent} requests (manifest: {run['requests']}), "
                f"requests / floor = {sent / floor:.3f}",
            ),
            ("records/s", f"{rate:.2f} = {rate / floor_rate:.3f} x the floor's (target >= {args.target})"),
            ("actions", ", ".join(f"{counts[k]} {k}" for k in ("create", "update", "skip", "reject", "error"))),
            ("writes", f"{run['stats']['writes']} (sandbox), {counts['writes']} (results: {run['writes']})"),
            ("429 responses", f"{run['stats']['responses_429']} (manifest: {run['responses_429']})"),
            ("client CPU", f"{run['cpu']:.2f} s = {1000 * run['cpu'] / args.records:.2f} ms per record"),
        ],
    )
    checks = [
        ("requests == floor", sent == floor),
        ("manifest requests == sandbox requests", run["requests"] == sent),
        (f"records/s >= {args.target} x the floor's", rate >= args.target * floor_rate),
        ("zero 429s", run["stats"]["responses_429"] == 0),
        ("writes == creates + updates", run["stats"]["writes"] == counts["writes"] == writes_needed),
        (
            "actions as planned",
            (counts["create"], counts["update"], counts["skip"]) == (mix["new"], mix["changed"], mix["unchanged"]),
        ),
    ]
    print()
    for name, passed in checks:
        print(f"  {'ok  ' if passed else 'FAIL'}  {name}")
    ok = all(passed for _, passed in checks)
    summary = {
        "args": {k: str(v) for k, v in vars(args).items() if v is not None},
        "mix": mix,
        "floor": floor,
        "requests": sent,
        "requests_over_floor": sent / floor,
        "window_limited_min_seconds": minimum,
        "records_per_s": rate,
        "floor_records_per_s": floor_rate,
        "rate_over_floor": rate / floor_rate,
        "run": run,
        "checks": dict(checks),
        "passed": ok,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2, default=str))
    failed = [name for name, passed in checks if not passed]
    verdict = f"{rate:.2f} records/s = {rate / floor_rate:.3f} x the floor's, requests / floor {sent / floor:.3f}"
    tail = f"; failed: {', '.join(failed)}" if failed else ""
    print(f"{'PASS' if ok else 'FAIL'}: {verdict}, {run['stats']['responses_429']} x 429{tail}")
    print(f"results written to {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
