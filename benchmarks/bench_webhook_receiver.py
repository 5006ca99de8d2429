"""Events per second the webhook receiver accepts, each stored durably before its 200 (issue #13).

``ghl-webhooks serve`` runs as its own process (as deployed) with each inbox engine in turn:

* ``sqlite``: the default single-host inbox (WAL, ``synchronous=FULL``: an fsync per event);
* ``redis``: the shared inbox on a ``redis-server`` started here with ``appendfsync always`` (an fsync per
  write, the same guarantee); skipped without Debian's ``redis-server``, a failure when ``CI=true``.

``--senders`` concurrent closed-loop senders (httpx, keep-alive) post distinct GHL-shaped events, signed with
Ed25519 beforehand (signing is the sender's cost, not the receiver's), for ``--seconds`` after a warm-up.
Reported per engine: events/s stored (200 ``{"stored": true}``), latency p50/p95/max, the receiver's CPU per
event, and a check that the inbox holds exactly the events answered 200.

Target: >= 100 events/s on each engine with p95 under 1 s (GHL waits seconds for an answer), every accepted
event in the inbox once, no answer but 200. Exit status 0 when met.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from _measure import isolated_airflow_home, proc_cpu_seconds
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from airflow_provider_ghl.webhooks.inbox import open_inbox
from ghl_sandbox.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATE = 100.0
TARGET_P95_S = 1.0


def _deliveries(key: ed25519.Ed25519PrivateKey, count: int, locations: int) -> list[tuple[bytes, dict[str, str]]]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    out = []
    for n in range(count):
        payload = {
            "type": "ContactUpdate",
            "locationId": f"loc{n % locations}",
            "webhookId": str(uuid.uuid4()),
            "timestamp": now,
            "id": f"c{n}",
            "email": f"person{n}@example.com",
            "firstName": "Bench",
            "tags": ["a", "b"],
            "customFields": [{"id": "f1", "value": n}],
        }
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json", "X-GHL-Signature": base64.b64encode(key.sign(body)).decode()}
        out.append((body, headers))
    return out


async def _send(url: str, deliveries: list[tuple[bytes, dict[str, str]]], senders: int, seconds: float,
                warmup: float) -> dict[str, Any]:  # fmt: skip
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted_ids: list[bytes] = []
    queue = iter(deliveries)
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + seconds
    counted = 0

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal counted
        for body, headers in queue:
            if time.perf_counter() >= stop_at:
                return
            started = time.perf_counter()
            answer = await client.post(url, content=body, headers=headers)
            finished = time.perf_counter()
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            if answer.status_code == 200 and answer.json() == {"stored": True}:
                accepted_ids.append(body)
                if started >= measure_from and finished <= stop_at:
                    counted += 1
                    latencies.append(finished - started)

    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(sender(client) for _ in range(senders)))
    latencies.sort()
    return {
        "counted": counted,
        "accepted": len(accepted_ids),
        "statuses": statuses,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p95": latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
    }


def run_engine(engine: str, inbox_url: str, env: dict[str, str], args: argparse.Namespace,
               key: ed25519.Ed25519PrivateKey) -> dict[str, Any]:  # fmt: skip
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    child_env = {
        **env,
        "AIRFLOW__GHL_WEBHOOKS__INBOX": inbox_url,
        "AIRFLOW__GHL_WEBHOOKS__PUBLIC_KEY": base64.b64encode(public).decode(),
        "AIRFLOW__GHL_WEBHOOKS__MAX_AGE_SECONDS": "3600",
        "AIRFLOW__GHL_WEBHOOKS__LOCATIONS": ",".join(f"loc{n}" for n in range(args.locations)),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}",
    }
    cmd = [sys.executable, "-m", "airflow_provider_ghl.webhooks.cli", "serve", "--port", "0", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, env=child_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        url = banner.split("POST ", 1)[1].split(" ", 1)[0]
        health = url.rsplit("/", 1)[0] + "/health"
        while httpx.get(health, timeout=30).status_code != 200:
            time.sleep(0.05)
        # Enough pre-signed events for the whole run at several times the target rate.
        deliveries = _deliveries(key, int((args.seconds + args.warmup) * 1500) + 500, args.locations)
        cpu_before = proc_cpu_seconds(proc.pid)
        result = asyncio.run(_send(url, deliveries, args.senders, args.seconds, args.warmup))
        cpu = proc_cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.terminate()
        proc.wait(10)
    inbox = open_inbox(inbox_url)
    stored = sum(inbox.pending().values())
    inbox.close()
    return {
        "engine": engine,
        "rate": result["counted"] / args.seconds,
        "p50_ms": result["p50"] * 1000,
        "p95_ms": result["p95"] * 1000,
        "max_ms": result["max"] * 1000,
        "cpu_ms_per_event": 1000 * cpu / max(result["accepted"], 1),
        "accepted": result["accepted"],
        "stored": stored,
        "statuses": result["statuses"],
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per engine (default 8)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first (default 1)")
    p.add_argument("--senders", type=int, default=16, help="concurrent senders (default 16)")
    p.add_argument("--locations", type=int, default=4, help="locations the events are spread over (default 4)")
    args = p.parse_args()

    work, env = isolated_airflow_home("ghl-bench-webhooks-")
    key = ed25519.Ed25519PrivateKey.generate()
    rows = [run_engine("sqlite", f"sqlite:///{work}/ghl_webhooks.db", env, args, key)]
    failures: list[str] = []
    if RedisServer.available():
        with RedisServer(persist=True) as server:
            conn = json.dumps(server.airflow_connection())
            os.environ["AIRFLOW_CONN_GHL_BENCH_REDIS"] = conn
            rows.append(run_engine("redis", "redis://ghl_bench_redis", {**env, "AIRFLOW_CONN_GHL_BENCH_REDIS": conn},
                                   args, key))  # fmt: skip
    elif os.environ.get("CI") == "true":
        failures.append("redis: redis-server not installed")
    else:
        print("redis: skipped (no redis-server; Debian's package provides it)")

    print(f"\n{args.senders} senders, {args.locations} locations, {args.seconds:g} s measured per engine\n")
    print(f"{'inbox':<8} {'events/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'cpu ms/ev':>10} "
          f"{'200s':>6} {'in inbox':>9}  answers")  # fmt: skip
    for r in rows:
        print(f"{r['engine']:<8} {r['rate']:>9.0f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['max_ms']:>8.1f} "
              f"{r['cpu_ms_per_event']:>10.2f} {r['accepted']:>6} {r['stored']:>9}  {r['statuses']}")  # fmt: skip
        if r["rate"] < TARGET_RATE:
            failures.append(f"{r['engine']}: {r['rate']:.0f} events/s < {TARGET_RATE:g}")
        if not r["p95_ms"] < TARGET_P95_S * 1000:
            failures.append(f"{r['engine']}: p95 {r['p95_ms']:.0f} ms >= {TARGET_P95_S * 1000:g} ms")
        if r["stored"] != r["accepted"]:
            failures.append(f"{r['engine']}: {r['accepted']} answered 200 but {r['stored']} in the inbox")
        if set(r["statuses"]) != {200}:
            failures.append(f"{r['engine']}: answers other than 200: {r['statuses']}")
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print(f"PASS: every engine >= {TARGET_RATE:g} events/s with p95 < {TARGET_P95_S:g} s, each 200 stored once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
