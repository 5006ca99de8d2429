"""How fast the GHL sandbox delivers its webhooks, and what delivering costs its API requests.

The sandbox runs as its own process (``SandboxServer``, 2 locations, a budget that never throttles); a receiver
in this process (``http.server`` threads, HTTP/1.1 keep-alive, answers 200 and records nothing but a count)
listens on loopback.

* ``delivery``: ``--events`` contact creates through ``POST /_sandbox/changes`` (half per location, no API
  budget spent), then the time until every delivery is accepted: events/s delivered and the server's CPU per
  delivery (signing, JSON, ``httpx``), read from ``/proc``. Target: ``--target`` events/s.
* ``API writes``: ``--writes`` contact updates (``PUT /contacts/{id}``) one after the other, with no webhook
  URL, then delivering meanwhile to the fast receiver and to one that takes 100 ms per answer: writes/s and
  median latency. A write never waits for its delivery, so the slow receiver costs the writes next to nothing
  (target ``--slow-ratio``); with the fast one the deliveries (about as much server CPU as a write) share the
  server's one process with the writes (``--fast-ratio``).

Exit status: 0 when both targets are met and every event arrived exactly once; 1 if not. Compare numbers within
one run only (2 shared cores).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests
from _measure import proc_cpu_seconds

from ghl_sandbox.testing import SandboxServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A sender that hangs up mid-answer (a reset, a timeout) is expected here, not an error to print.
        pass


class CountingReceiver:
    def __init__(self, delay: float = 0.0) -> None:
        self.count = 0
        self.ids: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if delay:
                    time.sleep(delay)
                at = body.index(b'"webhookId":"') + 13
                with receiver.lock:
                    receiver.count += 1
                    receiver.ids.add(body[at : body.index(b'"', at)].decode())
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ghl/webhooks"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def delivery(sb: SandboxServer, receiver: CountingReceiver, events: int) -> dict[str, float]:
    sb.reset()
    sb.set_webhooks([receiver.url])
    assert sb.process is not None
    per_location = events // len(sb.location_ids)
    cpu0 = proc_cpu_seconds(sb.process.pid)
    t0 = time.perf_counter()
    for n, loc in enumerate(sb.location_ids):
        changes = [{"op": "contact.create", "fields": {"email": f"w{n}.{i}@example.org"}} for i in range(per_location)]
        sb.changes(loc, changes)
    stats = sb.wait_webhooks_delivered(600)
    seconds = time.perf_counter() - t0
    cpu = proc_cpu_seconds(sb.process.pid) - cpu0
    made = per_location * len(sb.location_ids)
    ok = stats["delivered"] == made == receiver.count == len(receiver.ids) and stats["failed_attempts"] == 0
    return {"events": made, "seconds": seconds, "rate": made / seconds, "cpu_ms": 1000 * cpu / made, "ok": ok}


def writes(sb: SandboxServer, receiver: CountingReceiver | None, count: int) -> dict[str, float]:
    sb.reset()
    sb.set_webhooks([receiver.url] if receiver else [])
    ids = sb.contact_ids(sb.location_ids[0])
    session = requests.Session()
    session.headers.update(sb.headers(0))
    latencies = []
    t0 = time.perf_counter()
    for n in range(count):
        start = time.perf_counter()
        resp = session.put(f"{sb.base_url}/contacts/{ids[n % len(ids)]}", json={"city": f"C{n}"}, timeout=30)
        latencies.append(time.perf_counter() - start)
        resp.raise_for_status()
    seconds = time.perf_counter() - t0
    sb.set_webhooks([])  # what a slow receiver still has queued is not this scenario's business
    return {"rate": count / seconds, "p50_ms": 1000 * statistics.median(latencies)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2000, help="events of the delivery scenario (default 2000)")
    p.add_argument("--writes", type=int, default=500, help="API writes per write scenario (default 500)")
    p.add_argument("--target", type=float, default=300.0, help="events/s to deliver (default 300)")
    p.add_argument("--slow-ratio", type=float, default=0.8, help="min writes/s, slow receiver / no webhooks")
    p.add_argument("--fast-ratio", type=float, default=0.4, help="min writes/s, fast receiver / no webhooks")
    args = p.parse_args(argv)
    receiver, slow = CountingReceiver(), CountingReceiver(delay=0.1)
    with SandboxServer(contacts=500, locations=2, max_requests=1_000_000, daily_limit=100_000_000) as sb:
        d = delivery(sb, receiver, args.events)
        plain = writes(sb, None, args.writes)
        fast = writes(sb, receiver, args.writes)
        slowed = writes(sb, slow, args.writes)
    receiver.stop()
    slow.stop()
    fast_ratio, slow_ratio = fast["rate"] / plain["rate"], slowed["rate"] / plain["rate"]
    print(f"{'scenario':<34}{'result':>16}{'detail':>40}")
    print(
        f"{'delivery (2 locations, in order)':<34}{d['rate']:>10.0f} ev/s"
        f"{d['events']:>12.0f} events in {d['seconds']:.2f} s, server {d['cpu_ms']:.2f} ms CPU/ev"
    )
    rows = (
        ("API writes, no webhooks", plain),
        ("  delivering (fast receiver)", fast),
        ("  delivering (100 ms receiver)", slowed),
    )
    for name, row in rows:
        print(f"{name:<34}{row['rate']:>10.0f} wr/s{'p50 ' + format(row['p50_ms'], '.2f') + ' ms':>39}")
    print(
        f"writes/s vs no webhooks: slow receiver {slow_ratio:.2f} (target >= {args.slow_ratio}), "
        f"fast receiver {fast_ratio:.2f} (target >= {args.fast_ratio})"
    )
    passed = bool(d["ok"]) and d["rate"] >= args.target and slow_ratio >= args.slow_ratio
    passed = passed and fast_ratio >= args.fast_ratio
    print("PASS" if passed else f"FAIL (all delivered once: {bool(d['ok'])})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
