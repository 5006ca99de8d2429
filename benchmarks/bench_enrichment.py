"""Incremental enrichment (GHLEnrichContactsOperator): requests at the floor, and the rate budget used in full.

Targets (from the issue):

(a) requests: with ``--changed-pct`` (1%) of ``--contacts`` (100,000) contacts changed, an enrichment run of the
    window ``[start, now + a few s)`` (``start`` noted before ``sandbox.touch_contacts``) makes

    * exactly the floor with ``task_search="never"``: the search pages of the changed contacts plus one request
      per (changed contact, kind);
    * fewer than the floor with ``task_search="auto"`` (the location-wide task search answers up to 100 tasks of
      many contacts per request).

    A ``searchAfter`` walk ends on its first short page, so the pages of ``C`` changed contacts are
    ``C // page_limit + 1`` (an exact multiple ends on an empty page). Requests are counted twice: by the sandbox
    (``/_sandbox/stats`` ``requests_total``) and by the operator (the manifest's ``requests``); they must agree.
    The sandbox does not throttle here (``max_requests=10**9``): this part counts requests, it does not time them.

(b) rate: ``--rate-changed`` (300) changed contacts x 3 kinds (``task_search="never"``: 900 child requests, plus the
    search page) against a sandbox with a budget of ``--max-requests`` / ``--interval-ms`` (100 / 2 s) and
    ``--latency-ms`` + uniform ``--jitter-ms`` latency (50 + 0..50 ms): achieved request rate (sandbox requests
    / time of ``execute``) >= ``--target`` (0.95) x the budget, and zero 429 responses. "Window-limited minimum"
    is the least time any client can take under a sliding window of M requests per I seconds: the first M go at
    once, each further M need another I, plus one round trip.

Every run is a fresh subprocess of this interpreter (as a task is), timed around ``execute`` only; the output is
``jsonl`` under ``file://`` in a temp dir. The written contacts must be exactly the changed ones, and both (a)
variants must write the same children. Exit status 0 when every target is met. Writes
``benchmarks/results/enrichment.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _measure import child_command, isolated_airflow_home, print_rows, use_bench_connection

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KINDS = ("tasks", "notes", "appointments")


# -- child: one GHLEnrichContactsOperator.execute, measured from the inside -----------------------------------
def child_main(args: argparse.Namespace) -> int:
    conn_id = use_bench_connection(args.base_url, args.token, args.location)
    from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator

    operator = GHLEnrichContactsOperator(
        task_id="enrich",
        ghl_conn_id=conn_id,
        output_path=f"file://{args.out}",
        updated_since=args.since,
        updated_until=args.until,
        task_search=args.task_search,
        max_workers=args.workers,
        page_limit=args.page_limit,
    )
    t, started = os.times(), time.perf_counter()
    result = operator.execute(context={})
    wall, t2 = time.perf_counter() - started, os.times()
    manifest = json.loads(Path(result["manifest"].removeprefix("file://")).read_text())
    datasets = manifest["datasets"]
    ids = [json.loads(line)["id"] for f in datasets["contacts"]["files"] for line in (args.out / f).open("rb")]
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": t2.user + t2.system - t.user - t.system,
                "contact_ids": ids,
                "records": {name: d["records"] for name, d in datasets.items()},
                "requests": manifest["requests"],
                "responses_429": manifest["responses_429"],
            }
        )
    )
    return 0


# -- parent -----------------------------------------------------------------------------------------------
def run_child(
    sandbox: Any,
    args: argparse.Namespace,
    env: dict[str, str],
    out: Path,
    window: tuple[datetime, datetime],
    **opts: Any,
) -> dict[str, Any]:
    cmd = [
        *child_command(__file__, sandbox),
        "--out",
        str(out),
        "--since",
        window[0].isoformat(),
        "--until",
        window[1].isoformat(),
        "--task-search",
        opts["task_search"],
        "--workers",
        str(opts["workers"]),
        "--page-limit",
        str(opts["page_limit"]),
    ]
    sandbox.clear_stats()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.child_timeout)
    if proc.returncode != 0:
        raise SystemExit(f"enrichment child failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["stats"] = sandbox.stats()
    shutil.rmtree(out, ignore_errors=True)
    return result


def touch(sandbox: Any, count: int, ahead: float) -> tuple[tuple[datetime, datetime], list[str]]:
    """Change ``count`` contacts; the window [before the change, now + ``ahead`` s) holds exactly them."""
    start = datetime.now(UTC)
    ids = sandbox.touch_contacts(sandbox.location_ids[0], count=count)
    return (start, datetime.now(UTC) + timedelta(seconds=ahead)), ids


def part_a(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    from ghl_sandbox.testing import SandboxServer

    changed = max(1, round(args.contacts * args.changed_pct / 100))
    started = time.perf_counter()
    settings = {
        "contacts": args.contacts,
        "locations": 1,
        "max_requests": 10**9,
        "interval_ms": 1000,
        "daily_limit": 10**9,
    }
    with SandboxServer(**settings) as sandbox:
        startup = time.perf_counter() - started
        window, ids = touch(sandbox, changed, args.ahead)
        print(
            f"(a) {args.contacts:,} contacts, sandbox started in {startup:.1f} s; {len(ids):,} changed "
            f"({args.changed_pct:g}%), window [{window[0].isoformat()}, {window[1].isoformat()})",
            flush=True,
        )
        runs = {}
        for mode in ("never", "auto"):
            runs[mode] = run_child(
                sandbox,
                args,
                env,
                work / f"a-{mode}",
                window,
                task_search=mode,
                workers=args.workers,
                page_limit=args.page_limit,
            )
            r = runs[mode]
            print(f"    task_search={mode}: {r['stats']['requests_total']:,} requests in {r['wall']:.2f} s", flush=True)
    pages = changed // args.page_limit + 1
    floor = pages + changed * len(KINDS)
    return {
        "contacts": args.contacts,
        "changed": len(ids),
        "changed_ids": ids,
        "startup_s": startup,
        "pages": pages,
        "floor": floor,
        "runs": runs,
    }


def part_b(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    from ghl_sandbox.testing import SandboxServer

    settings = {
        "contacts": args.rate_contacts,
        "locations": 1,
        "max_requests": args.max_requests,
        "interval_ms": args.interval_ms,
        "latency_ms": args.latency_ms,
        "jitter_ms": args.jitter_ms,
    }
    with SandboxServer(**settings) as sandbox:
        window, ids = touch(sandbox, args.rate_changed, args.ahead)
        run = run_child(
            sandbox,
            args,
            env,
            work / "b",
            window,
            task_search="never",
            workers=args.workers,
            page_limit=args.page_limit,
        )
    pages = len(ids) // args.page_limit + 1
    return {"changed": len(ids), "changed_ids": ids, "pages": pages, "floor": pages + len(ids) * len(KINDS), "run": run}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--contacts", type=int, default=100_000, help="(a) contacts in the location (default 100000)")
    p.add_argument("--changed-pct", type=float, default=1.0, help="(a) percent of them changed (default 1)")
    p.add_argument("--rate-contacts", type=int, default=10_000, help="(b) contacts in the location (default 10000)")
    p.add_argument("--rate-changed", type=int, default=300, help="(b) changed contacts (default 300)")
    p.add_argument("--max-requests", type=int, default=100, help="(b) sandbox burst budget (default 100)")
    p.add_argument("--interval-ms", type=int, default=2000, help="(b) sandbox burst window (default 2000)")
    p.add_argument("--latency-ms", type=float, default=50.0, help="(b) sandbox latency per request (default 50)")
    p.add_argument("--jitter-ms", type=float, default=50.0, help="(b) extra uniform latency up to (default 50)")
    p.add_argument("--workers", type=int, default=8, help="operator max_workers (default 8, its default)")
    p.add_argument("--page-limit", type=int, default=500, help="contacts per search page (default 500)")
    p.add_argument("--ahead", type=float, default=5.0, help="the window ends this many s after the change (5)")
    p.add_argument("--target", type=float, default=0.95, help="(b) minimum achieved rate / budget (default 0.95)")
    p.add_argument("--skip", choices=["a", "b"], help="leave out part a or b")
    p.add_argument("--child-timeout", type=float, default=600, help="seconds allowed per run (default 600)")
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "enrichment.json", help="results file")
    # Internal: the measured child process.
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("--base-url", "--token", "--location", "--since", "--until"):
        p.add_argument(name, help=argparse.SUPPRESS)
    p.add_argument("--task-search", default="auto", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.contacts < 1 or not 0 < args.changed_pct <= 100 or not 0 < args.rate_changed <= args.rate_contacts:
        p.error("need --contacts >= 1, 0 < --changed-pct <= 100 and 0 < --rate-changed <= --rate-contacts")

    work, env = isolated_airflow_home("ghl-bench-enrich-")
    print(
        f"enrichment: GHLEnrichContactsOperator, pageLimit={args.page_limit}, max_workers={args.workers}, jsonl, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        flush=True,
    )
    try:
        a = part_a(args, env, work) if args.skip != "a" else None
        b = part_b(args, env, work) if args.skip != "b" else None
    finally:
        shutil.rmtree(work, ignore_errors=True)

    checks: list[tuple[str, bool]] = []
    summary: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items() if v is not None}}
    if a is not None:
        never, auto = a["runs"]["never"], a["runs"]["auto"]
        print()
        header = [
            "task_search",
            "requests (sandbox)",
            "requests (manifest)",
            "floor",
            "requests / floor",
            "search pages",
            "GET children",
            "task search",
            "records",
            "429s",
            "wall s",
        ]
        rows = []
        for mode, r in (("never", never), ("auto", auto)):
            routes = r["stats"]["requests_by_route"]
            rows.append(
                [
                    mode,
                    f"{r['stats']['requests_total']:,}",
                    f"{r['requests']:,}",
                    f"{a['floor']:,}",
                    f"{r['stats']['requests_total'] / a['floor']:.3f}",
                    f"{routes.get('POST /contacts/search', 0):,}",
                    f"{sum(v for k, v in routes.items() if k.startswith('GET /contacts/{contactId}/')):,}",
                    f"{routes.get('POST /locations/{locationId}/tasks/search', 0):,}",
                    ", ".join(f"{v:,} {k}" for k, v in r["records"].items()),
                    f"{r['stats']['responses_429']}",
                    f"{r['wall']:.2f}",
                ]
            )
        widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
        print(
            f"(a) requests with {a['changed']:,} of {a['contacts']:,} contacts changed; floor = {a['pages']} search "
            f"pages ({a['changed']:,} // {args.page_limit} + 1: a searchAfter walk ends on a short page) + "
            f"{a['changed']:,} contacts x {len(KINDS)} kinds = {a['floor']:,}"
        )
        for n, line in enumerate([header, *rows]):
            print(
                "  "
                + "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))
                )
            )
            if n == 0:
                print("  " + "  ".join("-" * w for w in widths))
        changed = sorted(a["changed_ids"])
        checks += [
            ("(a) never: requests == floor", never["stats"]["requests_total"] == a["floor"]),
            ("(a) auto: requests < floor", auto["stats"]["requests_total"] < a["floor"]),
            (
                "(a) manifest requests == sandbox requests",
                all(r["requests"] == r["stats"]["requests_total"] for r in (never, auto)),
            ),
            (
                "(a) contacts written == the changed ones",
                all(sorted(r["contact_ids"]) == changed for r in (never, auto)),
            ),
            ("(a) both variants wrote the same records", never["records"] == auto["records"]),
            ("(a) zero 429s", all(r["stats"]["responses_429"] == 0 for r in (never, auto))),
        ]
        for r in (never, auto):
            r.pop("contact_ids")
        a.pop("changed_ids")
        summary["requests"] = {
            **a,
            "ratio_never": never["stats"]["requests_total"] / a["floor"],
            "ratio_auto": auto["stats"]["requests_total"] / a["floor"],
        }
    if b is not None:
        r = b["run"]
        budget = args.max_requests / (args.interval_ms / 1000)
        sent = r["stats"]["requests_total"]
        rate = sent / r["wall"]
        windows = max(math.ceil(sent / args.max_requests) - 1, 0)
        minimum = windows * args.interval_ms / 1000 + (args.latency_ms + args.jitter_ms / 2) / 1000
        print()
        print_rows(
            "(b) enrichment throughput vs the sandbox budget",
            [
                (
                    "work",
                    f"{b['changed']} changed contacts x {len(KINDS)} kinds (task_search=never) + "
                    f"{b['pages']} search page(s) = floor {b['floor']} requests",
                ),
                ("budget", f"{args.max_requests} / {args.interval_ms / 1000:g} s = {budget:g} requests/s"),
                ("latency", f"{args.latency_ms:g} + 0..{args.jitter_ms:g} ms per request"),
                (
                    "execute",
                    f"{r['wall']:.2f} s with max_workers={args.workers}, {sent} requests sent "
                    f"(manifest: {r['requests']})",
                ),
                ("achieved rate", f"{rate:.1f} requests/s = {rate / budget:.3f} x budget (target >= {args.target})"),
                ("429 responses", f"{r['stats']['responses_429']} (manifest: {r['responses_429']})"),
                ("peak concurrency", f"{r['stats']['peak_concurrency']} (server side)"),
                ("window-limited min", f"{minimum:.2f} s -> execute took {r['wall'] / minimum:.3f} x the minimum"),
                ("records", ", ".join(f"{v:,} {k}" for k, v in r["records"].items())),
                ("client CPU", f"{r['cpu']:.2f} s"),
            ],
        )
        checks += [
            (f"(b) rate >= {args.target} x budget", rate >= args.target * budget),
            ("(b) zero 429s", r["stats"]["responses_429"] == 0 and r["responses_429"] == 0),
            ("(b) requests == floor", sent == b["floor"]),
            ("(b) contacts written == the changed ones", sorted(r["contact_ids"]) == sorted(b["changed_ids"])),
        ]
        r.pop("contact_ids")
        b.pop("changed_ids")
        summary["rate"] = {
            **b,
            "budget_per_s": budget,
            "achieved_rate": rate,
            "rate_over_budget": rate / budget,
            "window_limited_min_seconds": minimum,
        }

    print()
    for name, passed in checks:
        print(f"  {'ok  ' if passed else 'FAIL'}  {name}")
    ok = all(passed for _, passed in checks)
    summary.update(checks=dict(checks), passed=ok)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2, default=str))
    parts = []
    if a is not None:
        ra, rn = summary["requests"]["ratio_auto"], summary["requests"]["ratio_never"]
        parts.append(f"requests / floor {rn:.3f} (never), {ra:.3f} (auto)")
    if b is not None:
        rb = summary["rate"]
        parts.append(f"{rb['rate_over_budget']:.3f} x budget with {b['run']['stats']['responses_429']} x 429")
    failed = [name for name, passed in checks if not passed]
    print(f"{'PASS' if ok else 'FAIL'}: " + "; ".join(parts) + (f"; failed: {', '.join(failed)}" if failed else ""))
    print(f"results written to {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
