"""Throughput of the GHL sandbox server on loopback: can it keep up with the provider's benchmarks?

Target (from the issue): >= 300 responses/s for ``POST /contacts/search`` with 100-contact pages on loopback,
on a 2-core machine. The sandbox must never be the bottleneck of the other benchmarks.

The sandbox runs as its own process (``SandboxServer``: 10,000 contacts in 1 location, a budget that never
throttles). A pool of client threads in this process keeps ``--threads`` keep-alive connections busy:

* ``search (searchAfter walk)``: each thread walks ``searchAfter`` cursors page after page (starting at a
  different page per thread) and starts over at the end of the data;
* ``search (page=N)``: each thread cycles through ``page`` numbers 1..100 (the 10,000-record paging cap);
* ``GET /contacts/{id}``: single-contact reads (small responses), for reference; no target.

The client and the server share the machine's cores, so the table also shows the CPU each side used, read
from ``/proc`` (the server's ``/proc/<pid>/stat`` and this process's ``os.times()``). "Server CPU/resp" is what
one response costs the server; ``1 / that`` is the ceiling of one uvicorn process, whatever the client.

Exit status: 0 when every search scenario reaches ``--target`` responses/s with no error responses, 1 if not.
Timings are compared within one run only; never compare absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _measure import machine_busy_seconds, own_cpu_seconds, proc_cpu_seconds, status_kib

from ghl_sandbox.testing import SandboxServer

PAGE_LIMIT = 100
MAX_PAGED = 10_000
CURSOR_MARK = b'"searchAfter":'
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _rss_mib(pid: int) -> float:
    return status_kib("VmRSS", pid) / 1024


# -- clients ------------------------------------------------------------------------------------------------
class Client:
    """One keep-alive connection. ``call`` returns (status, body bytes)."""

    def call(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class RawClient(Client):
    """``http.client``: about the least CPU a Python client can spend per request."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.headers = {**headers, "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection(host, port, timeout=30)

    def call(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        try:
            self.conn.request(method, path, body=body, headers=self.headers)
            resp = self.conn.getresponse()
            return resp.status, resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            raise

    def close(self) -> None:
        self.conn.close()


class RequestsClient(Client):
    """``requests.Session``: what the provider's hook uses; costs the client noticeably more CPU."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        import requests

        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update({**headers, "Content-Type": "application/json"})

    def call(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        resp = self.session.request(method, self.base_url + path, data=body, timeout=30)
        return resp.status_code, resp.content

    def close(self) -> None:
        self.session.close()


# -- workloads ----------------------------------------------------------------------------------------------
def last_cursor(body: bytes) -> list[Any] | None:
    """The ``searchAfter`` of the page's last contact, without parsing the whole ~115 kB page."""
    at = body.rfind(CURSOR_MARK)
    if at < 0:
        return None
    start = at + len(CURSOR_MARK)
    return json.loads(body[start : body.index(b"]", start) + 1])


class Workload:
    """Produces the next request of one thread and checks its answer; raises ``ValueError`` on a bad one."""

    method = "POST"
    path = "/contacts/search"

    def next_request(self) -> tuple[str, bytes | None]:
        raise NotImplementedError

    def check(self, body: bytes) -> None:
        pass


class SearchAfterWalk(Workload):
    def __init__(self, location_id: str, total: int, thread: int, threads: int) -> None:
        self.location_id = location_id
        self.pages = max(1, -(-min(total, MAX_PAGED) // PAGE_LIMIT))
        self.total = total
        # Threads start spread over the data: the first page is by number, then cursors take over.
        self.first_page = 1 + (thread * self.pages // max(threads, 1)) % self.pages
        self.cursor: list[Any] | None = None
        self.seen = 0  # contacts before the cursor
        self.restart = True

    def next_request(self) -> tuple[str, bytes | None]:
        body: dict[str, Any] = {"locationId": self.location_id, "pageLimit": PAGE_LIMIT}
        if self.restart:
            body["page"] = self.first_page
            self.seen = (self.first_page - 1) * PAGE_LIMIT
            self.first_page = 1
        else:
            body["searchAfter"] = self.cursor
        return self.path, json.dumps(body).encode()

    def check(self, body: bytes) -> None:
        hits = body.count(CURSOR_MARK)
        if hits == 0 or hits > PAGE_LIMIT or not body.startswith(b'{"contacts":['):
            self.restart = True
            raise ValueError(f"unexpected search page ({hits} hits): {body[:120]!r}")
        self.cursor = last_cursor(body)
        self.seen += hits
        # At the end of the data start over from the first page (never ask for the empty page after it).
        self.restart = self.seen >= self.total


class PageNumbers(Workload):
    def __init__(self, location_id: str, total: int, thread: int, threads: int) -> None:
        self.location_id = location_id
        self.pages = max(1, -(-min(total, MAX_PAGED) // PAGE_LIMIT))
        self.page = thread * self.pages // max(threads, 1)
        self.expected = PAGE_LIMIT

    def next_request(self) -> tuple[str, bytes | None]:
        self.page = self.page % self.pages + 1
        body = {"locationId": self.location_id, "pageLimit": PAGE_LIMIT, "page": self.page}
        return self.path, json.dumps(body).encode()

    def check(self, body: bytes) -> None:
        hits = body.count(CURSOR_MARK)
        if hits == 0 or hits > PAGE_LIMIT or not body.startswith(b'{"contacts":['):
            raise ValueError(f"unexpected search page ({hits} hits): {body[:120]!r}")


class GetContact(Workload):
    method = "GET"

    def __init__(self, ids: list[str], thread: int) -> None:
        self.ids = ids
        self.rng = random.Random(thread)

    def next_request(self) -> tuple[str, bytes | None]:
        return f"/contacts/{self.rng.choice(self.ids)}", None

    def check(self, body: bytes) -> None:
        if not body.startswith(b'{"contact":'):
            raise ValueError(f"unexpected contact: {body[:120]!r}")


# -- driving ------------------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    target: float | None
    responses: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    first_error: str = ""
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    body_bytes: int = 0
    server_cpu: float = 0.0
    client_cpu: float = 0.0
    machine_busy: float = 0.0
    machine_total: float = 0.0

    @property
    def rate(self) -> float:
        return self.responses / self.elapsed if self.elapsed else 0.0

    @property
    def passed(self) -> bool:
        return self.errors == 0 and (self.target is None or self.rate >= self.target)

    def row(self) -> dict[str, Any]:
        lat = sorted(self.latencies) or [0.0]
        n = max(self.responses, 1)
        return {
            "scenario": self.name,
            "responses": self.responses,
            "errors": self.errors,
            "seconds": round(self.elapsed, 3),
            "responses_per_s": round(self.rate, 1),
            "latency_mean_ms": round(statistics.fmean(lat) * 1000, 3),
            "latency_p50_ms": round(lat[len(lat) // 2] * 1000, 3),
            "latency_p95_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))] * 1000, 3),
            "bytes_per_response": round(self.body_bytes / n),
            "server_cpu_ms_per_response": round(self.server_cpu / n * 1000, 3),
            "responses_per_server_cpu_s": round(self.responses / self.server_cpu, 1) if self.server_cpu else None,
            "server_cpu_util": round(self.server_cpu / self.elapsed, 3) if self.elapsed else None,
            "client_cpu_ms_per_response": round(self.client_cpu / n * 1000, 3),
            "machine_cpu_util": round(self.machine_busy / self.machine_total, 3) if self.machine_total else None,
            "target_responses_per_s": self.target,
            "passed": self.passed,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "first_error": self.first_error,
        }


def drive(
    name: str,
    make_client: Callable[[], Client],
    make_workload: Callable[[int], Workload],
    *,
    threads: int,
    seconds: float,
    server_pid: int,
    target: float | None,
) -> Result:
    """Run ``threads`` closed-loop clients for ``seconds``; count only responses completed inside the window."""
    result = Result(name, target)
    lock = threading.Lock()
    start_gate = threading.Barrier(threads + 1)
    window: dict[str, float] = {}

    def worker(index: int) -> None:
        client, workload = make_client(), make_workload(index)
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        nbytes = errors = 0
        first_error = ""
        start_gate.wait()
        deadline = window["end"]
        try:
            while True:
                path, body = workload.next_request()
                t0 = time.perf_counter()
                if t0 >= deadline:
                    break
                try:
                    status, data = client.call(workload.method, path, body)
                except Exception as exc:  # a broken connection counts as an error, then reconnect
                    errors += 1
                    first_error = first_error or f"{type(exc).__name__}: {exc}"
                    continue
                t1 = time.perf_counter()
                if t1 > deadline:
                    break
                statuses[status] = statuses.get(status, 0) + 1
                if status != 200:
                    errors += 1
                    first_error = first_error or f"HTTP {status}: {data[:200]!r}"
                    continue
                try:
                    workload.check(data)
                except ValueError as exc:
                    errors += 1
                    first_error = first_error or str(exc)
                    continue
                latencies.append(t1 - t0)
                nbytes += len(data)
        finally:
            client.close()
        with lock:
            result.responses += len(latencies)
            result.errors += errors
            result.body_bytes += nbytes
            result.latencies += latencies
            for k, v in statuses.items():
                result.statuses[k] = result.statuses.get(k, 0) + v
            result.first_error = result.first_error or first_error

    pool = [threading.Thread(target=worker, args=(i,), name=f"bench-{i}") for i in range(threads)]
    for t in pool:
        t.start()
    cpu0, own0, (busy0, total0) = proc_cpu_seconds(server_pid), own_cpu_seconds(), machine_busy_seconds()
    t0 = time.perf_counter()
    window["end"] = t0 + seconds
    start_gate.wait()
    for t in pool:
        t.join()
    # Responses finishing after the deadline were dropped, so the window is exactly ``seconds`` long.
    result.elapsed = seconds
    result.server_cpu = proc_cpu_seconds(server_pid) - cpu0
    result.client_cpu = own_cpu_seconds() - own0
    busy1, total1 = machine_busy_seconds()
    result.machine_busy, result.machine_total = busy1 - busy0, total1 - total0
    return result


def warm_up(client: Client, location_id: str, total: int, seconds: float) -> None:
    """Build the search cache and every contact's cached JSON once (one full walk), then run a little load."""
    walk = SearchAfterWalk(location_id, total, 0, 1)
    for _ in range(max(1, -(-total // PAGE_LIMIT)) + 1):
        path, body = walk.next_request()
        status, data = client.call("POST", path, body)
        if status != 200:
            raise SystemExit(f"warm-up search failed: HTTP {status} {data[:300]!r}")
        walk.check(data)
        if walk.restart:
            break
    deadline = time.perf_counter() + seconds
    pages = PageNumbers(location_id, total, 0, 1)
    while time.perf_counter() < deadline:
        path, body = pages.next_request()
        client.call("POST", path, body)


# -- report -------------------------------------------------------------------------------------------------
COLUMNS = [
    ("scenario", "scenario", "{}"),
    ("resp/s", "responses_per_s", "{:.0f}"),
    ("mean ms", "latency_mean_ms", "{:.2f}"),
    ("p50 ms", "latency_p50_ms", "{:.2f}"),
    ("p95 ms", "latency_p95_ms", "{:.2f}"),
    ("bytes/resp", "bytes_per_response", "{:,}"),
    ("srv CPU ms/resp", "server_cpu_ms_per_response", "{:.3f}"),
    ("resp/srv-CPU-s", "responses_per_server_cpu_s", "{:.0f}"),
    ("srv CPU %", "server_cpu_util", "{:.0%}"),
    ("cli CPU ms/resp", "client_cpu_ms_per_response", "{:.3f}"),
    ("machine CPU %", "machine_cpu_util", "{:.0%}"),
    ("errors", "errors", "{}"),
    ("target", "target_responses_per_s", "{:.0f}"),
    ("result", "passed", "{}"),
]


def fmt(row: dict[str, Any], key: str, spec: str) -> str:
    value = row[key]
    if key == "passed":
        return "PASS" if value else "FAIL"
    if value is None:
        return "-"
    return spec.format(value)


def table(rows: list[dict[str, Any]]) -> str:
    cells = [[title for title, _, _ in COLUMNS]] + [[fmt(r, k, s) for _, k, s in COLUMNS] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = []
    for n, line in enumerate(cells):
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True))]
        lines.append("  ".join(padded))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=6.0, help="measured seconds per scenario (default 6)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load after the warm-up walk (default 1)")
    p.add_argument("--threads", type=int, default=4, help="concurrent client connections (default 4)")
    p.add_argument("--contacts", type=int, default=10_000, help="contacts in the location (default 10000)")
    p.add_argument("--target", type=float, default=300.0, help="search responses/s to pass (default 300)")
    p.add_argument(
        "--client",
        choices=["http.client", "requests"],
        default="http.client",
        help="client library; http.client spends the least client CPU (default), requests is what the hook uses",
    )
    p.add_argument("--json", type=Path, help=f"write the results here (default {RESULTS_DIR}/sandbox_throughput.json)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.seconds <= 0 or args.contacts < PAGE_LIMIT:
        p.error("--threads must be >= 1, --seconds > 0 and --contacts >= 100")

    print(
        f"sandbox throughput: {args.contacts:,} contacts x 1 location, pageLimit={PAGE_LIMIT}, "
        f"{args.threads} client threads ({args.client}), {args.seconds:g} s per scenario, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
        flush=True,
    )
    started = time.perf_counter()
    sandbox = SandboxServer(
        contacts=args.contacts, locations=1, seed=1, max_requests=10**9, interval_ms=1000, daily_limit=10**9
    )
    with sandbox:
        assert sandbox.process is not None
        pid = sandbox.process.pid
        location_id = sandbox.location_ids[0]
        total = sandbox.info["locations"][0]["contacts"]
        host, port = sandbox.base_url.removeprefix("http://").rsplit(":", 1)
        headers = sandbox.headers(0)
        print(f"server pid {pid} at {sandbox.base_url}, started in {time.perf_counter() - started:.1f} s", flush=True)

        def make_client() -> Client:
            if args.client == "requests":
                return RequestsClient(sandbox.base_url, headers)
            return RawClient(host, int(port), headers)

        warm = make_client()
        warm_up(warm, location_id, total, args.warmup)
        ids = sandbox.contact_ids(location_id)
        warm.close()
        sandbox.clear_stats()

        common = {"threads": args.threads, "seconds": args.seconds, "server_pid": pid}
        results = [
            drive(
                "search (searchAfter walk)",
                make_client,
                lambda i: SearchAfterWalk(location_id, total, i, args.threads),
                target=args.target,
                **common,
            ),
            drive(
                "search (page=N)",
                make_client,
                lambda i: PageNumbers(location_id, total, i, args.threads),
                target=args.target,
                **common,
            ),
            drive("GET /contacts/{id}", make_client, lambda i: GetContact(ids, i), target=None, **common),
        ]
        stats = sandbox.stats()
        rss = _rss_mib(pid)

    rows = [r.row() for r in results]
    print()
    print(table(rows))
    print()
    throttled = stats.get("responses_429", 0)
    print(
        f"server saw {stats['requests_total']:,} API requests, statuses {stats['responses_by_status']}, "
        f"peak concurrency {stats['peak_concurrency']}, server RSS {rss:.0f} MiB"
    )
    for r in results:
        if r.first_error:
            print(f"{r.name}: first error: {r.first_error}")
    search_rows = [r for r in rows if r["target_responses_per_s"] is not None]
    worst = min(search_rows, key=lambda r: r["responses_per_s"])
    ok = all(r.passed for r in results) and not throttled
    bottleneck = (
        "the server (one uvicorn process is CPU-bound)"
        if (worst["server_cpu_util"] or 0) > 0.9
        else "not the server (it had idle CPU): the client or the machine"
    )
    print(
        f"{'PASS' if ok else 'FAIL'}: slowest search scenario {worst['responses_per_s']:.0f} responses/s "
        f"(target >= {args.target:.0f}); server CPU ceiling {worst['responses_per_server_cpu_s'] or 0:.0f} "
        f"responses per server-CPU-second; limiting factor: {bottleneck}"
    )
    out = args.json or RESULTS_DIR / "sandbox_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"args": {k: str(v) for k, v in vars(args).items()}, "server_rss_mib": round(rss), "results": rows}
    out.write_text(json.dumps(summary, indent=2))
    print(f"results written to {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
