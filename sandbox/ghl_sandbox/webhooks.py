"""The sandbox's webhooks: every change of its data POSTed, signed, to the subscribed URLs, as GHL does.

:class:`WebhookDelivery` is the sink of every location's changes (``Location.sink``): ``publish`` builds the
event (:mod:`.events`) and queues one delivery per URL; it never waits, so API requests are not slowed. A
background task per (URL, location) stream delivers its queue in order, one at a time (all streams together at
most ``max_in_flight``), with ``httpx.AsyncClient``: a non-2xx answer, a timeout or a refused connection is
retried with exponential backoff and the same body (so the same ``webhookId``), and later events of the stream
wait behind it, so a receiver that is down gets everything, in order, once it is back. The faults of
:class:`~ghl_sandbox.settings.WebhookSubscription` (duplicates, reordering, delays, corrupted
signatures) are rolled from a seeded stream. :class:`Signer` holds the keys: Ed25519 derived from the seed
(``X-GHL-Signature``) and, for the legacy ``X-WH-Signature``, an RSA key made once per process.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import hashlib
import random
import time
import uuid
from collections import Counter, deque
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ghl_sandbox.data import iso
from ghl_sandbox.events import payload
from ghl_sandbox.settings import WebhookSubscription

# Events remembered for GET /_sandbox/webhooks/events (id, type, record): enough for a test's burst.
RECENT_EVENTS = 20_000


@functools.cache
def _rsa_key() -> rsa.RSAPrivateKey:
    # Made once per process: 2048 bits keeps start-up quick (GHL's own key is 4096; receivers take either).
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _corrupt(signature: bytes) -> bytes:
    """The same length, wrong in its first byte: well-formed base64, never valid."""
    return bytes([signature[0] ^ 0xFF]) + signature[1:]


class Signer:
    """The sandbox's webhook keys and signatures.

    :param seed: the sandbox's seed; the same seed gives the same Ed25519 key pair.
    """

    def __init__(self, seed: int) -> None:
        self._ed25519 = Ed25519PrivateKey.from_private_bytes(
            hashlib.sha256(f"ghl-sandbox:webhooks:ed25519:{seed}".encode()).digest()
        )

    @property
    def public_key(self) -> str:
        """The Ed25519 public key, base64 of its SubjectPublicKeyInfo (DER), as GHL publishes its own."""
        der = self._ed25519.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    @property
    def legacy_public_key(self) -> str:
        """The RSA public key of ``X-WH-Signature``, PEM."""
        pem = (
            _rsa_key()
            .public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return pem.decode()

    def headers(self, body: bytes, *, legacy: bool, corrupt: bool = False) -> dict[str, str]:
        """The signature headers of a delivery of ``body``.

        :param body: the raw body bytes, exactly as sent.
        :param legacy: also sign with RSA-SHA256 (PKCS#1 v1.5) in ``X-WH-Signature``.
        :param corrupt: send signatures that do not verify (the ``bad_signature_rate`` fault).
        """
        signatures = {"X-GHL-Signature": self._ed25519.sign(body)}
        if legacy:
            signatures["X-WH-Signature"] = _rsa_key().sign(body, padding.PKCS1v15(), hashes.SHA256())
        return {name: base64.b64encode(_corrupt(sig) if corrupt else sig).decode() for name, sig in signatures.items()}


@dataclasses.dataclass(eq=False)
class Delivery:
    """One event on its way to one URL (a duplicate copy is a delivery of its own)."""

    url: str
    location_id: str
    webhook_id: str
    event_type: str
    body: bytes
    attempts: int = 0
    duplicate: bool = False
    reordered: bool = False


class WebhookDelivery:
    """Queues, signs, delivers, retries and counts the sandbox's webhooks.

    :param settings: the start-up settings.
    :param seed: seeds the key pair and the fault rolls.
    """

    def __init__(self, settings: WebhookSubscription, seed: int) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Not zeroed by a reset: deliveries cancelled by it still leave the count on their way out.
        self.in_flight = 0
        # The last event time per location, kept across resets: event times only go forward.
        self._last_ms: dict[str, int] = {}
        self.reset(settings, seed)

    # -- settings and state -----------------------------------------------------------------------------------
    def reset(self, settings: WebhookSubscription, seed: int) -> None:
        """Drop every queued delivery and counter and start over with ``settings`` (``POST /_sandbox/reset``).

        :param settings: the settings from now on.
        :param seed: the sandbox's seed.
        """
        for task in self._tasks.values():
            task.cancel()
        self._tasks = {}
        self._streams: dict[tuple[str, str], deque[Delivery]] = {}
        self.signer = Signer(seed)
        self.rng = random.Random(f"webhooks:{seed}")
        self.recent: deque[dict[str, str]] = deque(maxlen=RECENT_EVENTS)
        self.counts: Counter[str] = Counter()
        self.by_type: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.last_error = ""
        self.configure(settings)

    def configure(self, settings: WebhookSubscription) -> None:
        """Replace the settings. Queued deliveries to URLs still subscribed go on under the new faults and timings;
        those to URLs no longer subscribed are dropped (counted in ``unsubscribed``), as GHL stops sending.

        :param settings: the new settings (faults not named are off).
        """
        self.settings = settings
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        for key in [key for key in self._streams if key[0] not in settings.urls]:
            self.counts["unsubscribed"] += len(self._streams.pop(key))
            if (task := self._tasks.pop(key, None)) is not None:
                task.cancel()

    def view(self) -> dict[str, Any]:
        """``GET /_sandbox/webhooks``: the settings, the public keys and the counters."""
        return {
            "settings": self.settings.model_dump(),
            "public_key": self.signer.public_key,
            "legacy_public_key": self.signer.legacy_public_key,
            "stats": self.stats(),
        }

    def stats(self) -> dict[str, Any]:
        """Counters since start or reset; ``queued`` counts deliveries not yet accepted or given up."""
        names = (
            "events", "deliveries", "delivered", "attempts", "failed_attempts", "redelivered", "given_up",
            "duplicates_sent", "reordered", "delayed", "bad_signatures_sent", "bad_signatures_accepted", "unsubscribed",
        )  # fmt: skip
        return {
            **{name: self.counts[name] for name in names},
            "queued": self.queued,
            "in_flight": self.in_flight,
            "events_by_type": dict(self.by_type),
            "responses": dict(self.by_status),
            "last_error": self.last_error,
        }

    @property
    def queued(self) -> int:
        return sum(len(queue) for queue in self._streams.values())

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued delivery is accepted or given up; False if ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        while self.queued:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # -- lifecycle --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the HTTP client and start delivering what is queued (the app's lifespan calls it)."""
        self._loop = asyncio.get_running_loop()
        if self._client is None:
            # trust_env off: a proxy from the environment must not stand between the sandbox and a receiver.
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        for key in self._streams:
            self._kick(key)

    async def stop(self) -> None:
        """Stop delivering and close the client; what is queued stays queued."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks = {}
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- publishing -------------------------------------------------------------------------------------------
    def publish(self, location_id: str, event_type: str, record: dict[str, Any], at_ms: int) -> None:
        """Queue the event of one change for every subscribed URL (``Location.sink``); returns at once.

        :param location_id: the location whose data changed.
        :param event_type: GHL's event type.
        :param record: the record after the change (before it, for a delete).
        :param at_ms: when the change happened.
        """
        webhook_id = str(uuid.uuid4())
        # Strictly increasing per location: changes in the same millisecond (a burst, or the two events of one
        # write) are stamped 1 ms apart, so the last writer by timestamp is always well defined.
        at_ms = max(at_ms, self._last_ms.get(location_id, 0) + 1)
        self._last_ms[location_id] = at_ms
        self.counts["events"] += 1
        self.by_type[event_type] += 1
        self.recent.append(
            {
                "webhookId": webhook_id,
                "type": event_type,
                "locationId": location_id,
                "id": str(record.get("id", "")),
                "timestamp": iso(at_ms),
            }
        )
        if not self.settings.urls:
            return
        body = orjson.dumps(payload(event_type, location_id, record, at_ms, webhook_id))
        for url in self.settings.urls:
            key = (url, location_id)
            self._streams.setdefault(key, deque()).append(Delivery(url, location_id, webhook_id, event_type, body))
            self.counts["deliveries"] += 1
            self._kick(key)

    def _kick(self, key: tuple[str, str]) -> None:
        """Make sure the stream ``key`` has its delivery task (none before the loop runs: ``start`` kicks it)."""
        if key in self._tasks:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._tasks[key] = loop.create_task(self._drain(key), name=f"ghl-sandbox-webhooks {key[0]} {key[1]}")

    # -- delivering -------------------------------------------------------------------------------------------
    async def _drain(self, key: tuple[str, str]) -> None:
        """Deliver the queue of one (URL, location) stream in order until it is empty."""
        queue = self._streams[key]
        try:
            while queue:
                delivery = self._next(queue)
                settings = self.settings
                if settings.delay_ms:
                    self.counts["delayed"] += 1
                    await asyncio.sleep(self.rng.uniform(0, settings.delay_ms) / 1000)
                accepted = await self._attempt(delivery)
                if accepted or delivery.attempts >= settings.max_attempts:
                    queue.remove(delivery)
                    if not accepted:
                        self.counts["given_up"] += 1
                    elif not delivery.duplicate and self.rng.random() < settings.duplicate_rate:
                        # Delivered again a little later (GHL's at-least-once delivery): same body, same webhookId.
                        spot = min(self.rng.randrange(settings.reorder_window), len(queue))
                        queue.insert(spot, dataclasses.replace(delivery, attempts=0, duplicate=True))
                        self.counts["deliveries"] += 1
                else:
                    backoff = settings.backoff_base_s * 2 ** (delivery.attempts - 1)
                    await asyncio.sleep(min(backoff, settings.backoff_cap_s))
        finally:
            if self._tasks.get(key) is asyncio.current_task():
                del self._tasks[key]

    def _next(self, queue: deque[Delivery]) -> Delivery:
        """The delivery to send next: the head, or (``reorder_rate``) one a few places behind it."""
        head = queue[0]
        settings = self.settings
        if head.attempts == 0 and not head.reordered and len(queue) > 1 and self.rng.random() < settings.reorder_rate:
            later = self.rng.randint(1, min(settings.reorder_window, len(queue) - 1))
            queue[0], queue[later] = queue[later], head
            queue[0].reordered = head.reordered = True
            self.counts["reordered"] += 1
        return queue[0]

    async def _attempt(self, delivery: Delivery) -> bool:
        """POST one delivery once; whether the receiver accepted it (2xx)."""
        settings = self.settings
        # The first attempt only: the retry a refusing receiver causes is signed right.
        corrupt = delivery.attempts == 0 and not delivery.duplicate and self.rng.random() < settings.bad_signature_rate
        if settings.legacy_signature:
            # An RSA signature takes a millisecond or two: off the loop, so API requests do not wait for it.
            signatures = await asyncio.to_thread(self.signer.headers, delivery.body, legacy=True, corrupt=corrupt)
        else:
            signatures = self.signer.headers(delivery.body, legacy=False, corrupt=corrupt)
        headers = {"Content-Type": "application/json", **signatures}
        delivery.attempts += 1
        self.counts["attempts"] += 1
        if delivery.attempts > 1:
            self.counts["redelivered"] += 1
        if corrupt:
            self.counts["bad_signatures_sent"] += 1
        if self._client is None:
            await self.start()
        assert self._client is not None
        outcome, error = "", ""
        async with self._slots:
            self.in_flight += 1
            try:
                response = await self._client.post(
                    delivery.url, content=delivery.body, headers=headers, timeout=settings.timeout_s
                )
                outcome = str(response.status_code)
                error = f"{delivery.url}: HTTP {response.status_code}"
            except httpx.TimeoutException:
                outcome, error = "timeout", f"{delivery.url}: no answer within {settings.timeout_s} s"
            except httpx.HTTPError as exc:
                outcome, error = "error", f"{delivery.url}: {type(exc).__name__}: {exc}"
            finally:
                self.in_flight -= 1
        self.by_status[outcome] += 1
        accepted = outcome.isdigit() and 200 <= int(outcome) < 300
        if not accepted:
            self.counts["failed_attempts"] += 1
            self.last_error = error
        elif delivery.duplicate:
            self.counts["duplicates_sent"] += 1
        else:
            self.counts["delivered"] += 1
            if corrupt:
                self.counts["bad_signatures_accepted"] += 1
        return accepted
