"""The webhook receiver: one FastAPI app that takes GHL's signed deliveries and stores them in the inbox.

Served two ways, both at ``/ghl``: mounted on Airflow's api-server by the plugin
(:mod:`~airflow_provider_ghl.webhooks.plugin`), or on its own by ``ghl-webhooks serve``
(:mod:`~airflow_provider_ghl.webhooks.cli`). Airflow does not authenticate plugin apps: the signature is the
authentication, so nothing reaches the inbox before it verifies.

``POST /webhooks`` judges a delivery in this order, cheapest refusal first: a usable signature header (before a
byte of the body is read), size (the body is read in chunks and abandoned past ``max_body_bytes``;
``Content-Length`` alone is not trusted), the whole body within ``body_timeout_seconds``, the signature over the
raw bytes, JSON, the required fields, the ``timestamp`` window, a served location (the ``[ghl_webhooks]
locations`` and those that installed the app; the app's own ``INSTALL``/``UNINSTALL``, checked by ``app_id``, add
and remove them; anything else is a 403, logged once per location). A body that arrives slowly is held on disk
past :data:`BODY_SPOOL_BYTES` (a private temp file), and only :data:`VERIFY_SLOTS` whole bodies are in memory at
once, so connections that trickle bodies cannot exhaust the memory of the process (the api-server's, when
mounted). A refusal is a 4xx, stores nothing, counts in ``GET /stats`` and logs one line without the payload. A
valid event is stored durably (in a worker thread, so the event loop keeps answering during a burst) before the
200; a ``webhookId`` already stored is a 200 ``{"duplicate": true}`` (GHL may redeliver) and is stored once.

When the inbox cannot store (disk full, Redis down), the answer is 429 with ``Retry-After``: GHL retries a
429 and nothing else (a 5xx is a permanent failure to it), so the event is not lost.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from airflow_provider_ghl import metrics
from airflow_provider_ghl.webhooks.inbox import LIFECYCLE_EVENTS, Inbox, event_instant, open_inbox
from airflow_provider_ghl.webhooks.settings import WebhookSettings
from airflow_provider_ghl.webhooks.signatures import SignatureRefused

log = logging.getLogger(__name__)

#: The fields every delivery must carry (strings), in the order they are checked.
REQUIRED_FIELDS = ("type", "locationId", "webhookId", "timestamp")
#: How far ahead of this machine's clock a ``timestamp`` may be (clock skew), in seconds.
FUTURE_SKEW_SECONDS = 60
#: Longest accepted id or type; GHL's are about 20-40 characters.
MAX_FIELD_LENGTH = 256
#: Threads storing at once: enough to overlap Redis round trips and SQLite fsyncs, few enough not to thrash.
STORE_THREADS = 8
#: Seconds GHL is asked to wait before retrying a delivery the inbox could not store.
RETRY_AFTER_SECONDS = 60
#: Seconds the served locations are taken as known before the inbox's installs are read again.
SERVED_TTL_SECONDS = 2.0
#: Locations refused as not served that are each logged once; past this many, every refusal is (memory is bounded).
NOT_SERVED_LOGGED = 10_000
#: Body bytes a request holds in memory while it arrives; the rest waits in a private temp file.
BODY_SPOOL_BYTES = 64 * 1024
#: Whole bodies read back and verified at once (each up to ``max_body_bytes`` in memory).
VERIFY_SLOTS = 8


class Refused(Exception):
    """A delivery the receiver will not store.

    :param status: the HTTP status to answer.
    :param reason: the counter it goes to (``too_large``, ``signature_missing``, ``stale``, ...).
    :param detail: the one-line explanation, sent back and logged.
    """

    def __init__(self, status: int, reason: str, detail: str) -> None:
        self.status = status
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


class ReceiverStats:
    """What one receiver process has answered since it started (thread-safe counters)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._refused: Counter[str] = Counter()

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1
        metrics.count("webhooks.deliveries", outcome=name)

    def refuse(self, reason: str) -> None:
        with self._lock:
            self._refused[reason] += 1
        metrics.count("webhooks.deliveries", outcome="refused")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "stored": self._counts["stored"],
                "duplicates": self._counts["duplicates"],
                "store_failures": self._counts["store_failures"],
                "agency_lifecycle": self._counts["agency_lifecycle"],
                "refused": dict(sorted(self._refused.items())),
            }


class _Served:
    """The locations the receiver stores events for: the configured ones and those that installed the app (read
    from the inbox, at most every :data:`SERVED_TTL_SECONDS`, so every receiver process sees an install soon)."""

    def __init__(self, configured: Sequence[str], inbox: _LazyInbox) -> None:
        self.configured = frozenset(configured)
        self.inbox = inbox
        self._lock = threading.Lock()
        self._installed: frozenset[str] = frozenset()
        self._read_at = -SERVED_TTL_SECONDS
        self._announced: set[str] = set()

    def __contains__(self, location_id: object) -> bool:
        if location_id in self.configured:
            return True
        with self._lock:
            if time.monotonic() - self._read_at >= SERVED_TTL_SECONDS:
                self._installed = frozenset(self.inbox.get().installed())
                self._read_at = time.monotonic()
            return location_id in self._installed

    def forget(self) -> None:
        """Read the installs again at the next check (after this process recorded one)."""
        with self._lock:
            self._read_at = -SERVED_TTL_SECONDS

    def first_refusal(self, location_id: str) -> bool:
        """Whether this is the first refusal of ``location_id`` as not served (it is logged then, not after)."""
        with self._lock:
            if location_id in self._announced:
                return False
            if len(self._announced) < NOT_SERVED_LOGGED:
                self._announced.add(location_id)
            return True


class _LazyInbox:
    """The inbox, opened by the first request that needs it (in a worker thread), not at import."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._inbox: Inbox | None = None

    def get(self) -> Inbox:
        with self._lock:
            if self._inbox is None:
                self._inbox = open_inbox(self.url)
            return self._inbox


async def receive_body(request: Request, limit: int, timeout: float) -> tempfile.SpooledTemporaryFile[bytes]:
    """The request body, spooled (memory up to :data:`BODY_SPOOL_BYTES`, then a private temp file) and rewound.

    :raises Refused: 413 as soon as more than ``limit`` bytes were declared or sent; 408 when the whole body has
        not arrived within ``timeout`` seconds; 400 when the sender left.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"body of {declared} bytes is over the {limit}-byte limit")
    # Handed to the caller open (its ``with`` closes it); closed here when the body is refused.
    spool: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(max_size=BODY_SPOOL_BYTES)  # noqa: SIM115
    size = 0
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refused(413, "too_large", f"body is over the {limit}-byte limit")
                spool.write(chunk)
    except TimeoutError:
        spool.close()
        raise Refused(408, "too_slow", f"the body did not arrive within {timeout:g} s") from None
    except ClientDisconnect:
        spool.close()
        raise Refused(400, "disconnected", "the sender left before the whole body arrived") from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def is_agency_lifecycle(payload: dict[str, Any]) -> bool:
    """An agency-level ``INSTALL``/``UNINSTALL`` of the app: it names the ``companyId`` and no location."""
    return payload.get("type") in LIFECYCLE_EVENTS and "locationId" not in payload and "companyId" in payload


def _check_fields(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise Refused(400, "malformed", "body is not a JSON object")
    # An agency's install names its company instead of a location (GHL's AppInstall: locationId | companyId).
    required = (
        [f if f != "locationId" else "companyId" for f in REQUIRED_FIELDS]
        if is_agency_lifecycle(payload)
        else REQUIRED_FIELDS
    )
    for field in required:
        value = payload.get(field)
        if not isinstance(value, str) or not value.strip():
            raise Refused(400, "missing_field", f"{field}: missing or not a non-empty string")
        if len(value) > MAX_FIELD_LENGTH or not value.isprintable() or any(c in value for c in "{} "):
            raise Refused(400, "malformed", f"{field}: not a plausible GHL value")
        if field in ("locationId", "companyId", "webhookId") and (
            value in (".", "..") or any(c in value for c in "/\\")
        ):
            # They name keys, and a location names directories: never a path of its own.
            raise Refused(400, "malformed", f"{field}: not a GHL id")
    return payload


def _check_timestamp(value: str, max_age: int, now: datetime) -> None:
    try:
        sent = event_instant(value)  # the apply reads it the same way
    except ValueError:
        raise Refused(400, "malformed", "timestamp: not an ISO-8601 date-time") from None
    age = (now - sent).total_seconds()
    if age > max_age:
        raise Refused(400, "stale", f"timestamp is {age:.0f} s old, over max_age_seconds={max_age}")
    if age < -FUTURE_SKEW_SECONDS:
        raise Refused(400, "stale", f"timestamp is {-age:.0f} s in the future")


def build_receiver_app(
    settings: WebhookSettings,
    *,
    stats_dependencies: Sequence[Any] | None = None,
    install_dependencies: Sequence[Any] = (),
) -> FastAPI:
    """The receiver app: ``POST /webhooks``, ``GET /health`` (ok or not, nothing more), when asked for
    ``GET /stats``, and with ``settings.install_flow`` the app's install flow (``GET /oauth/start``,
    ``GET /oauth/callback``); mount it at ``/ghl``.

    :param settings: keys, limits and the inbox URL (``WebhookSettings.load()`` reads Airflow's config).
    :param stats_dependencies: FastAPI dependencies that guard ``GET /stats`` (the api-server's: an authenticated
        Airflow user); an empty list serves it to anyone; None: no ``/stats`` route.
    :param install_dependencies: FastAPI dependencies that guard the install flow's routes (the api-server's: a
        user allowed to edit connections).
    """
    verifier = settings.verifier()
    inbox = _LazyInbox(settings.inbox)
    stats = ReceiverStats()
    store_threads = anyio.CapacityLimiter(STORE_THREADS)
    verify_slots = anyio.CapacityLimiter(VERIFY_SLOTS)
    app = FastAPI(title="GHL webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.stats = stats
    app.state.settings = settings
    if settings.install_flow:
        from airflow_provider_ghl.webhooks.install_routes import install_router

        app.include_router(install_router(redirect_uri=settings.oauth_redirect_uri, dependencies=install_dependencies))

    served = _Served(settings.locations, inbox)

    def ours(payload: dict[str, Any]) -> None:
        """A lifecycle event must be our app's: GHL signs every app's deliveries with one key."""
        if not settings.app_id or payload.get("appId") != settings.app_id:
            raise Refused(403, "foreign_app", "an install event of another app (or [ghl_webhooks] app_id unset)")

    def admit(payload: dict[str, Any]) -> None:
        """Only the app's own lifecycle events, and events of served locations, are stored (blocking: a thread)."""
        location = payload["locationId"]
        if payload["type"] in LIFECYCLE_EVENTS:
            ours(payload)
            # Before the event is stored: a retry after a failed store records it again, idempotently.
            inbox.get().set_installed(location, payload["type"] == "INSTALL")
            served.forget()
        elif location not in served:
            raise Refused(403, "not_served", f"location {location!r} is not served: add it to [ghl_webhooks] locations")

    def agency_lifecycle(payload: dict[str, Any]) -> None:
        """An agency installed or uninstalled the app: nothing to store (no location's events change), but only
        for our app; the DAGs' discovery finds the agency's locations at their next run."""
        ours(payload)
        log.info(
            "GHL app %s by agency %s: the DAGs' discovery lists its locations at their next run.",
            "installed" if payload["type"] == "INSTALL" else "uninstalled",
            payload["companyId"],
        )

    def store(payload: dict[str, Any]) -> bool:
        admit(payload)
        return inbox.get().store(
            payload["locationId"], payload["webhookId"], payload["type"], payload["timestamp"], payload
        )

    def refuse(refusal: Refused, request: Request, size: int, payload: dict[str, Any] | None) -> JSONResponse:
        stats.refuse(refusal.reason)
        if refusal.reason == "not_served" and payload and not served.first_refusal(str(payload["locationId"])):
            return JSONResponse({"error": refusal.reason, "detail": refusal.detail}, status_code=refusal.status)
        who = request.client.host if request.client else "?"
        ids = f" webhookId={payload.get('webhookId')!r} type={payload.get('type')!r}" if payload else ""
        log.warning("GHL webhook refused (%s): %s; from %s, %d bytes%s", refusal.reason, refusal.detail, who, size, ids)
        return JSONResponse({"error": refusal.reason, "detail": refusal.detail}, status_code=refusal.status)

    @app.post("/webhooks")
    async def receive(request: Request) -> JSONResponse:
        size, logged = 0, None
        try:
            try:
                verifier.presented(request.headers)  # no usable signature: not a byte of the body is read
            except SignatureRefused as err:
                raise Refused(401, f"signature_{err.reason}", str(err)) from None
            with await receive_body(request, settings.max_body_bytes, settings.body_timeout_seconds) as spool:
                async with verify_slots:
                    body = spool.read()
                    size = len(body)
                    try:
                        verifier.verify(body, request.headers)
                    except SignatureRefused as err:
                        raise Refused(401, f"signature_{err.reason}", str(err)) from None
                    try:
                        parsed = orjson.loads(body)
                    except orjson.JSONDecodeError:
                        raise Refused(400, "malformed", "body is not JSON") from None
            logged = parsed if isinstance(parsed, dict) else None
            payload = _check_fields(parsed)
            _check_timestamp(payload["timestamp"], settings.max_age_seconds, datetime.now(UTC))
        except Refused as refusal:
            return refuse(refusal, request, size, logged)
        if is_agency_lifecycle(payload):
            try:
                agency_lifecycle(payload)
            except Refused as refusal:
                return refuse(refusal, request, size, logged)
            stats.count("agency_lifecycle")
            return JSONResponse({"stored": False, "agency": payload["companyId"]})
        try:
            stored = await anyio.to_thread.run_sync(store, payload, limiter=store_threads)
        except Refused as refusal:
            return refuse(refusal, request, size, logged)
        except Exception as err:  # the inbox failed: GHL retries a 429, and the event is not lost
            stats.count("store_failures")
            log.error("GHL webhook webhookId=%r not stored: %s", payload["webhookId"], err)
            return JSONResponse(
                {"error": "inbox_unavailable", "detail": "the event could not be stored; retry later"},
                status_code=429,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if not stored:
            stats.count("duplicates")
            log.info("GHL webhook webhookId=%r already stored: answered as a duplicate", payload["webhookId"])
            return JSONResponse({"duplicate": True})
        stats.count("stored")
        return JSONResponse({"stored": True})

    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            await anyio.to_thread.run_sync(inbox.get, limiter=store_threads)
        except Exception as err:  # the route is public: the detail goes to the log, not the answer
            log.error("GHL webhook inbox %s cannot be opened: %s", settings.inbox, err)
            return JSONResponse({"status": "error"}, status_code=503)
        return JSONResponse({"status": "ok"})

    if stats_dependencies is not None:

        @app.get("/stats", dependencies=list(stats_dependencies))
        async def get_stats() -> JSONResponse:
            return JSONResponse(stats.snapshot())

    return app
