"""#21 item 4: slow bodies. 200 connections trickle bodies of just under 1 MiB with a made-up signature, as the
review did; the receiver's memory stays bounded, a signed delivery is stored at once meanwhile, and the slow ones
are cut at ``body_timeout_seconds``. A request without a signature header is refused before its body is read."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx

from airflow_provider_ghl.webhooks.inbox import open_inbox
from airflow_provider_ghl.webhooks.settings import WebhookSettings
from tests.webhooks.serving import ReceiverProcess, free_port
from tests.webhooks.signing import Signer, event

SLOW = 200
BODY = 1_000_000  # just under the default max_body_bytes (1 MiB)
CHUNK = 50_000
#: Seconds between a slow sender's chunks: the whole body would take 20 x 0.6 = 12 s, over the deadline.
PAUSE = 0.6
DEADLINE = 8


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _trickle(port: int, answers: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        f"POST /ghl/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY}\r\nX-GHL-Signature: {'A' * 88}\r\n\r\n"
    )
    writer.write(head.encode())
    try:
        for _ in range(BODY // CHUNK):
            writer.write(b"x" * CHUNK)
            await writer.drain()
            await asyncio.sleep(PAUSE)
    except (ConnectionError, OSError):
        pass  # cut off by the receiver
    try:
        answers.append(await asyncio.wait_for(reader.readline(), 15))
    except (TimeoutError, ConnectionError, OSError):
        answers.append(b"")
    writer.close()


async def _attack(port: int, answers: list[bytes]) -> None:
    await asyncio.gather(*(_trickle(port, answers) for _ in range(SLOW)))


def test_slow_bodies_neither_exhaust_memory_nor_delay_a_signed_delivery(signer: Signer, tmp_path: Path) -> None:
    settings = WebhookSettings(
        inbox=f"sqlite:///{tmp_path}/ghl_webhooks.db",
        public_key=signer.public_key,
        legacy_public_key=signer.legacy_public_key,
        body_timeout_seconds=DEADLINE,
        locations=("loc-served",),
    )
    server = ReceiverProcess(settings, free_port()).start()
    try:
        assert server.process is not None
        pid = server.process.pid
        httpx.post(f"{server.base_url}/webhooks", content=b"{}", headers={})  # warm: the first request's imports
        idle = _rss_kib(pid)
        answers: list[bytes] = []
        attack = threading.Thread(target=lambda: asyncio.run(_attack(server.port, answers)))
        attack.start()
        time.sleep(3)  # every slow connection is open and has sent part of its body
        peak = _rss_kib(pid)
        body, headers = signer.delivery(event("loc-served"))
        started = time.monotonic()
        answer = httpx.post(f"{server.base_url}/webhooks", content=body, headers=headers, timeout=10)
        took = time.monotonic() - started
        assert (answer.status_code, answer.json()) == (200, {"stored": True})
        assert took < 2.0, f"the signed delivery waited {took:.1f} s behind the slow ones"
        while attack.is_alive():
            peak = max(peak, _rss_kib(pid))
            attack.join(0.2)
        assert (peak - idle) / 1024 < 50, f"RSS grew from {idle} KiB to {peak} KiB"
        # Every slow body was cut at the deadline (408), none reached the inbox.
        assert len(answers) == SLOW
        assert sum(a.startswith(b"HTTP/1.1 408") for a in answers) == SLOW, {a[:20] for a in answers}
        stats = httpx.get(f"{server.base_url}/stats").json()
        assert stats["stored"] == 1 and stats["refused"]["too_slow"] == SLOW
    finally:
        server.stop()
    inbox = open_inbox(settings.inbox)
    assert inbox.pending() == {"loc-served": 1}
    inbox.close()


def test_without_a_signature_header_the_body_is_never_read(signer: Signer, tmp_path: Path) -> None:
    """The refusal comes with the headers: a sender that then never sends its body is answered at once."""
    settings = WebhookSettings(inbox=f"sqlite:///{tmp_path}/i.db", public_key=signer.public_key, locations=("loc1",))
    server = ReceiverProcess(settings, free_port()).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /ghl/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n")
            started = time.monotonic()
            status = sock.recv(64)
            assert status.startswith(b"HTTP/1.1 401") and time.monotonic() - started < 2
        assert httpx.get(f"{server.base_url}/stats").json()["refused"] == {"signature_missing": 1}
    finally:
        server.stop()
