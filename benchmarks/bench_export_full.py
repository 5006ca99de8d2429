"""Full contact export (GHLExportContactsOperator) against an unthrottled sandbox: speed, memory and client CPU.

Targets (from the issue), for a 100,000-contact export to ``jsonl`` files under ``file://`` (a temp dir):

* contacts/s of the export (reported);
* peak RSS of the exporting process for 100k contacts within ``--rss-target`` (1.2) x that for 10k: the export
  streams, so its memory must not grow with the number of contacts;
* client CPU of the export vs a bare ``requests`` + ``json`` loop fetching the same pages (same page size, same
  sort, same ``searchAfter`` walk) and doing nothing else: at most ``--cpu-target`` (1.5) x.

For each size (``--small`` then ``--contacts``) the benchmark starts its own sandbox
(``SandboxServer(contacts=N, locations=1, max_requests=10**9, interval_ms=1000, daily_limit=10**9)``, start-up
time reported), warms it up with one full walk (the sandbox caches each contact's JSON on first use) and then
runs, each in a fresh subprocess of this interpreter, the bare loop and the export. Each child measures itself
around the timed part only (imports and set-up excluded): wall time, user+system CPU (``os.times``), ``VmRSS``
before it starts, and at the end the peak RSS of the process (``VmHWM`` of ``/proc/self/status``, which is what
``getrusage(RUSAGE_SELF).ru_maxrss`` reports too). The peak includes everything the process imported (Airflow
alone is most of it), so the table also shows the growth of the peak over the RSS just before the export.

The sandbox runs on the same 2 cores: ``srv CPU s`` is the server's CPU over the child's lifetime, to see which
side was the limit. Compare numbers within one run. Exit status 0 when the memory and CPU targets are met and both
exports wrote every contact exactly once (counted from the part files) with no 429 or error response.
Writes ``benchmarks/results/export_full.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _measure import (
    child_command,
    isolated_airflow_home,
    own_cpu_seconds,
    proc_cpu_seconds,
    status_kib,
    use_bench_connection,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SORT = [{"field": "dateAdded", "direction": "asc"}]  # the export's order (no window): what the baseline sends


def manifest_files(manifest: dict[str, Any], dataset: str) -> list[str]:
    return list(manifest["datasets"][dataset]["files"])


# -- children: one export or one bare loop, measured from the inside ------------------------------------------
def child_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The least a client can do: fetch every page with requests, parse it with json, keep nothing."""
    import requests

    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {args.token}", "Version": "2021-07-28"})
    url = f"{args.base_url}/contacts/search"
    rss_before = status_kib("VmRSS")
    cpu0, t0 = own_cpu_seconds(), time.perf_counter()
    cursor: list[Any] | None = None
    records = requests_sent = 0
    while True:
        body: dict[str, Any] = {"locationId": args.location, "pageLimit": args.page_limit, "sort": SORT}
        if cursor is not None:
            body["searchAfter"] = cursor
        response = session.post(url, json=body, timeout=60)
        requests_sent += 1
        response.raise_for_status()
        contacts = json.loads(response.content)["contacts"]
        records += len(contacts)
        if len(contacts) < args.page_limit:
            break
        cursor = contacts[-1]["searchAfter"]
    wall, cpu = time.perf_counter() - t0, own_cpu_seconds() - cpu0
    session.close()
    return {
        "records": records,
        "requests": requests_sent,
        "responses_429": 0,
        "wall": wall,
        "cpu": cpu,
        "rss_before_kib": rss_before,
    }


def child_export(args: argparse.Namespace) -> dict[str, Any]:
    """GHLExportContactsOperator.execute, as a worker would run it (connection from AIRFLOW_CONN_*); the
    ``parquet`` child writes typed Parquet instead of JSON Lines, ``csv`` CSV (formula cells neutralised, the
    default) and ``csv_kept`` CSV with ``neutralise_csv_formulas=False``."""
    # More connection extras (e.g. {"budget_backend": "process"}) from GHL_BENCH_EXTRA, as bench_hook_overhead.
    extra = json.loads(os.environ.get("GHL_BENCH_EXTRA", "{}"))
    conn_id = use_bench_connection(args.base_url, args.token, args.location, **extra)
    from airflow_provider_ghl.operators.export import GHLExportContactsOperator

    operator = GHLExportContactsOperator(
        task_id="export",
        ghl_conn_id=conn_id,
        output_path=f"file://{args.out}",
        page_limit=args.page_limit,
        records_per_file=args.records_per_file,
        file_format={"parquet": "parquet", "csv": "csv", "csv_kept": "csv"}.get(args.child, "jsonl"),
        neutralise_csv_formulas=args.child != "csv_kept",
    )
    rss_before = status_kib("VmRSS")
    cpu0, t0 = own_cpu_seconds(), time.perf_counter()
    result = operator.execute(context={})
    wall, cpu = time.perf_counter() - t0, own_cpu_seconds() - cpu0
    manifest = json.loads(Path(result["manifest"].removeprefix("file://")).read_text())
    files = manifest_files(manifest, "contacts")
    return {
        "records": int(manifest["datasets"]["contacts"]["records"]),
        "requests": manifest["requests"],
        "files": len(files),
        "responses_429": manifest["responses_429"],
        "wall": wall,
        "cpu": cpu,
        "rss_before_kib": rss_before,
    }


def child_main(args: argparse.Namespace) -> int:
    result = child_baseline(args) if args.child == "baseline" else child_export(args)
    import resource

    result["peak_kib"] = status_kib("VmHWM")
    result["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result), flush=True)
    return 0


# -- parent -----------------------------------------------------------------------------------------------
def warm_up(base_url: str, headers: dict[str, str], location: str, page_limit: int) -> tuple[int, float]:
    """One full walk in the export's order: the sandbox builds its sort index and every hit's JSON once."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    hdrs = {**headers, "Content-Type": "application/json"}
    started, cursor, seen = time.perf_counter(), None, 0
    while True:
        body: dict[str, Any] = {"locationId": location, "pageLimit": page_limit, "sort": SORT}
        if cursor is not None:
            body["searchAfter"] = cursor
        conn.request("POST", "/contacts/search", body=json.dumps(body).encode(), headers=hdrs)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise SystemExit(f"warm-up search failed: HTTP {response.status} {data[:300]!r}")
        contacts = json.loads(data)["contacts"]
        seen += len(contacts)
        if len(contacts) < page_limit:
            break
        cursor = contacts[-1]["searchAfter"]
    conn.close()
    return seen, time.perf_counter() - started


def count_exported(out: Path) -> tuple[int, int]:
    """(lines, distinct ids) over the published part files."""
    manifest = json.loads((out / "_manifest.json").read_text())
    lines, ids = 0, set()
    for name in manifest_files(manifest, "contacts"):
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            column = pq.read_table(out / name, columns=["id"]).column("id").to_pylist()
            lines += len(column)
            ids.update(column)
            continue
        if name.endswith(".csv"):
            import csv

            with open(out / name, newline="", encoding="utf-8") as fh:
                for record in csv.DictReader(fh):
                    lines += 1
                    ids.add(record["id"])
            continue
        with open(out / name, "rb") as fh:
            for line in fh:
                lines += 1
                ids.add(json.loads(line)["id"])
    return lines, len(ids)


def run_child(kind: str, args: argparse.Namespace, sandbox: Any, out: Path | None, env: dict[str, str]) -> dict:
    assert sandbox.process is not None
    cmd = [
        *child_command(__file__, sandbox, kind),
        "--page-limit",
        str(args.page_limit),
        "--records-per-file",
        str(args.records_per_file),
        "--out",
        str(out or ""),
    ]
    sandbox.clear_stats()
    server0 = proc_cpu_seconds(sandbox.process.pid)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.child_timeout)
    server_cpu = proc_cpu_seconds(sandbox.process.pid) - server0
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    stats = sandbox.stats()
    result.update(
        server_cpu=server_cpu,
        server_requests=stats["requests_total"],
        server_429=stats["responses_429"],
        server_errors=sum(v for k, v in stats["responses_by_status"].items() if k != "200"),
    )
    return result


def measure_size(n: int, args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, Any]:
    from ghl_sandbox.testing import SandboxServer

    started = time.perf_counter()
    sandbox = SandboxServer(contacts=n, locations=1, max_requests=10**9, interval_ms=1000, daily_limit=10**9)
    with sandbox:
        startup = time.perf_counter() - started
        location = sandbox.info["locations"][0]
        seen, warm_seconds = warm_up(sandbox.base_url, sandbox.headers(0), location["id"], args.page_limit)
        print(
            f"  {n:,} contacts: sandbox started in {startup:.1f} s, warm-up walk of {seen:,} in {warm_seconds:.1f} s",
            flush=True,
        )
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        for i in range(args.repeat):
            for kind in KINDS:
                out = work / f"{kind}-{n}-{i}" if kind != "baseline" else None
                result = run_child(kind, args, sandbox, out, env)
                if out is not None:
                    result["lines"], result["distinct_ids"] = count_exported(out)
                    shutil.rmtree(out, ignore_errors=True)
                runs[kind].append(result)
                print(
                    f"    {kind:<8} run {i + 1}: {result['records']:,} records in {result['wall']:.2f} s, "
                    f"CPU {result['cpu']:.2f} s, peak RSS {result['peak_kib'] / 1024:.0f} MiB",
                    flush=True,
                )
    return {"contacts": n, "sandbox_startup_s": startup, "warmup_s": warm_seconds, "runs": runs}


#: The children: the bare loop, the JSON Lines export, the Parquet export, the CSV export with formula cells
#: neutralised (the default) and kept.
KINDS = ("baseline", "export", "parquet", "csv", "csv_kept")


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the least CPU (the least disturbed by the noisy machine); peak RSS is the worst seen."""
    chosen = dict(min(runs, key=lambda r: r["cpu"]))
    chosen["peak_kib"] = max(r["peak_kib"] for r in runs)
    return chosen


def row(label: str, n: int, r: dict[str, Any], base_cpu: float | None) -> list[str]:
    mib = 1024
    return [
        label,
        f"{n:,}",
        f"{r['records']:,}",
        f"{r['requests']:,}",
        f"{r['wall']:.2f}",
        f"{r['records'] / r['wall']:,.0f}",
        f"{r['cpu']:.2f}",
        f"{r['cpu'] / max(r['records'], 1) * 1e6:.1f}",
        f"{r['cpu'] / base_cpu:.2f}" if base_cpu else "1.00",
        f"{r['server_cpu']:.2f}",
        f"{r['rss_before_kib'] / mib:.0f}",
        f"{r['peak_kib'] / mib:.0f}",
        f"{(r['peak_kib'] - r['rss_before_kib']) / mib:.0f}",
    ]


HEADER = [
    "run",
    "contacts",
    "records",
    "requests",
    "wall s",
    "contacts/s",
    "cli CPU s",
    "CPU us/contact",
    "CPU x bare",
    "srv CPU s",
    "RSS before MiB",
    "peak RSS MiB",
    "peak growth MiB",
]


def table(rows: list[list[str]]) -> str:
    cells = [HEADER, *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = []
    for n, line in enumerate(cells):
        lines.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--contacts", type=int, default=100_000, help="contacts of the large export (default 100000)")
    p.add_argument("--small", type=int, help="contacts of the small export (default: --contacts / 10)")
    p.add_argument("--page-limit", type=int, default=500, help="contacts per search page (default 500, the max)")
    p.add_argument("--records-per-file", type=int, default=10_000, help="records per part file (default 10000)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each child per size; the least CPU counts (1)")
    p.add_argument("--rss-target", type=float, default=1.2, help="max peak RSS large / small (default 1.2)")
    p.add_argument("--cpu-target", type=float, default=1.5, help="max client CPU export / bare loop (default 1.5)")
    p.add_argument("--child-timeout", type=float, default=600, help="seconds allowed per child (default 600)")
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "export_full.json", help="results file")
    # Internal: the measured child processes.
    p.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    for name in ("--base-url", "--token", "--location", "--out"):
        p.add_argument(name, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.small is None:
        args.small = args.contacts // 10
    if not 0 < args.small < args.contacts or args.repeat < 1 or not 1 <= args.page_limit <= 500:
        p.error("need 0 < --small < --contacts, --repeat >= 1 and 1 <= --page-limit <= 500")

    work, env = isolated_airflow_home("ghl-bench-export-")
    print(
        f"full export: {args.small:,} and {args.contacts:,} contacts x 1 location, pageLimit={args.page_limit}, "
        f"jsonl (and parquet), {args.records_per_file:,} records per file, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        flush=True,
    )
    try:
        sizes = [measure_size(n, args, env, work) for n in (args.small, args.contacts)]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows, summary_sizes = [], []
    for size in sizes:
        n = size["contacts"]
        base, export = best(size["runs"]["baseline"]), best(size["runs"]["export"])
        parquet = best(size["runs"]["parquet"])
        csv_, csv_kept = best(size["runs"]["csv"]), best(size["runs"]["csv_kept"])
        rows.append(row("bare requests+json", n, base, None))
        rows.append(row("GHLExportContactsOperator", n, export, base["cpu"]))
        rows.append(row("  ... file_format=parquet", n, parquet, base["cpu"]))
        rows.append(row("  ... file_format=csv", n, csv_, base["cpu"]))
        rows.append(row("  ... csv, formulas kept", n, csv_kept, base["cpu"]))
        summary_sizes.append(
            {**size, "baseline": base, "export": export, "parquet": parquet, "csv": csv_, "csv_kept": csv_kept}
        )
    small, large = summary_sizes
    rss_ratio = large["export"]["peak_kib"] / small["export"]["peak_kib"]
    cpu_ratio = large["export"]["cpu"] / large["baseline"]["cpu"]
    parquet_ratio = large["parquet"]["cpu"] / large["baseline"]["cpu"]
    rate = large["export"]["records"] / large["export"]["wall"]
    growth = [(s["export"]["peak_kib"] - s["export"]["rss_before_kib"]) / 1024 for s in summary_sizes]
    exact = all(
        r["records"] == s["contacts"] and r["lines"] == s["contacts"] and r["distinct_ids"] == s["contacts"]
        for s in summary_sizes
        for kind in ("export", "parquet", "csv", "csv_kept")
        for r in s["runs"][kind]
    )
    clean = all(
        r["server_429"] == 0 and r["server_errors"] == 0 and r["responses_429"] == 0
        for s in summary_sizes
        for kind in KINDS
        for r in s["runs"][kind]
    )
    ok = rss_ratio <= args.rss_target and cpu_ratio <= args.cpu_target and exact and clean

    print()
    print(table(rows))
    print()
    print(
        f"sandbox start-up: {small['sandbox_startup_s']:.1f} s for {small['contacts']:,} contacts, "
        f"{large['sandbox_startup_s']:.1f} s for {large['contacts']:,}; warm-up walks "
        f"{small['warmup_s']:.1f} s / {large['warmup_s']:.1f} s"
    )
    print(
        f"throughput: {rate:,.0f} contacts/s exported ({large['contacts']:,}); the bare loop fetched "
        f"{large['baseline']['records'] / large['baseline']['wall']:,.0f} contacts/s"
    )
    print(
        f"memory: peak RSS {large['export']['peak_kib'] / 1024:.0f} MiB ({large['contacts']:,}) vs "
        f"{small['export']['peak_kib'] / 1024:.0f} MiB ({small['contacts']:,}) = {rss_ratio:.3f} x "
        f"(target <= {args.rss_target}); growth over the RSS before the export {growth[0]:.0f} -> {growth[1]:.0f} MiB"
    )
    print(
        f"client CPU: export {large['export']['cpu']:.2f} s vs bare loop {large['baseline']['cpu']:.2f} s = "
        f"{cpu_ratio:.2f} x (target <= {args.cpu_target}; {large['export']['cpu'] / large['contacts'] * 1e6:.1f} vs "
        f"{large['baseline']['cpu'] / large['contacts'] * 1e6:.1f} us per contact)"
    )
    print(
        f"parquet: export {large['parquet']['cpu']:.2f} s client CPU = {parquet_ratio:.2f} x the bare loop "
        f"({large['parquet']['cpu'] / large['contacts'] * 1e6:.1f} us per contact), "
        f"{large['parquet']['records'] / large['parquet']['wall']:,.0f} contacts/s, "
        f"peak RSS {large['parquet']['peak_kib'] / 1024:.0f} MiB (reported)"
    )
    neutralise_ratio = large["csv"]["cpu"] / large["csv_kept"]["cpu"]
    print(
        f"csv: {large['csv']['cpu']:.2f} s client CPU with formula cells neutralised vs "
        f"{large['csv_kept']['cpu']:.2f} s kept = {neutralise_ratio:.2f} x (reported)"
    )
    if not exact:
        print("export output is wrong: records, lines or distinct ids differ from the contacts")
    if not clean:
        print("the server answered with 429s or errors")

    summary = {
        "args": {k: str(v) for k, v in vars(args).items() if v is not None},
        "sizes": summary_sizes,
        "export_contacts_per_s": rate,
        "peak_rss_ratio": rss_ratio,
        "peak_growth_mib": growth,
        "cpu_ratio_vs_bare": cpu_ratio,
        "parquet_cpu_ratio_vs_bare": parquet_ratio,
        "csv_neutralised_cpu_ratio_vs_kept": neutralise_ratio,
        "exact": exact,
        "clean": clean,
        "passed": ok,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2))
    verdict = "PASS" if ok else "FAIL"
    print(
        f"{verdict}: {rate:,.0f} contacts/s; peak RSS {large['contacts']:,} / {small['contacts']:,} = "
        f"{rss_ratio:.3f} x (target <= {args.rss_target}); client CPU {cpu_ratio:.2f} x the bare loop "
        f"(target <= {args.cpu_target}); "
        f"every contact exactly once: {exact}"
    )
    print(f"results written to {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
