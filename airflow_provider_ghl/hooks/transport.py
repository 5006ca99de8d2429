"""One attempt of a request, shared by the sync and async senders, and what it works with.

The attempt is written once, as the coroutine :func:`attempt`: read the token, wait for the rate limiter, send,
observe the limit headers, recover a rotated token once (never for a scope refusal), map GHL's answer to a
result or an exception and check its shape. What differs between ``requests`` (workers) and ``httpx`` (the
triggerer) is only how each step is done, so a :class:`Sender` does them
(:mod:`~airflow_provider_ghl.hooks.senders`): the sync sender's steps never suspend, so :func:`run_without_loop`
finishes the coroutine without an event loop. Which failures are repeated is
:mod:`~airflow_provider_ghl.hooks.retry`'s to decide.

What an answer may do is bounded the same way on both paths: a redirect is never followed (a
:class:`~airflow_provider_ghl.exceptions.GHLRedirectError`), the whole answer must arrive before the attempt's
deadline (``connect_timeout + timeout``, and never past the call's retry bound), it is read in chunks up to
:data:`~airflow_provider_ghl.hooks.senders.MAX_RESPONSE_BYTES`, and a 2xx must have the shape its endpoint
row documents.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Coroutine, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

from airflow_provider_ghl import metrics
from airflow_provider_ghl.exceptions import (
    GHLApiError,
    GHLAuthError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLRateLimitError,
    GHLScopeError,
)
from airflow_provider_ghl.hooks.budget import split_budget_warning
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.endpoints import Endpoint
from airflow_provider_ghl.hooks.ratelimit import RateLimiter, header_int
from airflow_provider_ghl.hooks.request import Resolved
from airflow_provider_ghl.hooks.responses import (
    as_auth_error,
    check_shape,
    parse_response,
    refuses_scope,
    transport_error,
)
from airflow_provider_ghl.hooks.scopes import operation_scope

T = TypeVar("T")

log = logging.getLogger(__name__)

#: An attempt started near the end of the retry bound still gets this long (else it could not even connect).
MIN_ATTEMPT_SECONDS = 1.0


#: Answers that must have shown requests from outside the budget's sharers, and the share of our own requests
#: those must reach, before a hook warns that the budget is split (see :meth:`RequestStats.record_foreign`).
SPLIT_BUDGET_ANSWERS = 3
SPLIT_BUDGET_PART = 10


class RequestStats:
    """Counts of the API requests a hook sent (every attempt, retries included); safe across threads.

    ``foreign_requests`` counts the requests GHL reported on the hook's budgets that none of the budget's
    sharers sent, in ``foreign_answers`` answers.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.rate_limited = 0
        self.server_errors = 0
        self.transport_errors = 0
        self.foreign_requests = 0
        self.foreign_answers = 0
        #: The daily budget as the answers gave it: the fewest requests left, and the day's allowance.
        self.daily_remaining: int | None = None
        self.daily_limit: int | None = None
        self._split_warned = False

    def record_foreign(self, count: int) -> bool:
        """Count ``count`` requests another spender made; True once, when they first matter: in at least
        :data:`SPLIT_BUDGET_ANSWERS` answers and at least a 1/:data:`SPLIT_BUDGET_PART` of our requests (at
        least 5). A task starting just after another one ended sees that one's last requests once: no warning.
        """
        with self._lock:
            self.foreign_requests += count
            self.foreign_answers += 1
            matters = self.foreign_answers >= SPLIT_BUDGET_ANSWERS and self.foreign_requests >= max(
                5, self.requests // SPLIT_BUDGET_PART
            )
            if matters and not self._split_warned:
                self._split_warned = True
                return True
            return False

    def record(self, status: int | None, headers: Mapping[str, str] | None = None) -> None:
        """One attempt: its HTTP status, or None when no response arrived, and the answer's headers (the daily
        budget figures)."""
        remaining = header_int(headers, "X-RateLimit-Daily-Remaining") if headers else None
        limit = header_int(headers, "X-RateLimit-Limit-Daily") if headers else None
        with self._lock:
            if remaining is not None:
                # Concurrent answers arrive out of order: the lowest figure is the newest (within a day).
                self.daily_remaining = (
                    remaining if self.daily_remaining is None else min(self.daily_remaining, remaining)
                )
            if limit is not None:
                self.daily_limit = limit
            self.requests += 1
            if status is None:
                self.transport_errors += 1
            elif status == 429:
                self.rate_limited += 1
            elif status >= 500:
                self.server_errors += 1

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "responses_429": self.rate_limited,
                "server_errors": self.server_errors,
                "transport_errors": self.transport_errors,
            }


class TokenRecovered(GHLAuthError):
    """Internal: a 401 was answered with a fresh token; repeat the request at once."""


class Reply(NamedTuple):
    """What came back, whichever HTTP library carried it."""

    status: int
    headers: Mapping[str, str]
    content: bytes


@dataclasses.dataclass
class Exchange:
    """One call's request, and what its attempts have learnt so far.

    :param method: HTTP method.
    :param path: resolved path (no query string).
    :param params: query parameters.
    :param json: JSON body.
    :param location_id: location whose token and rate budget the request uses.
    :param retry_safe: whether repeating it after a 5xx or a lost connection cannot duplicate a write.
    :param allow_refresh: whether a 401 may spend the OAuth refresh token (never in the triggerer).
    :param endpoint: the row whose documented shape a 2xx must have (None: not checked).
    :param call_deadline: ``time.monotonic()`` after which no attempt of the call may still run (the retry
        bound as a whole).
    """

    method: str
    path: str
    params: Mapping[str, Any] | None
    json: Any
    location_id: str | None
    retry_safe: bool
    allow_refresh: bool = True
    endpoint: Endpoint | None = None
    call_deadline: float = float("inf")
    #: A token was already recovered: a second 401 is a real refusal.
    recovered: bool = False
    #: An earlier attempt may have reached GHL (its answer was lost or was a 5xx).
    failed_before: bool = False
    #: The OAuth scope the call needs (for the message of a scope refusal).
    scope: str | None = None
    #: The operation's name in the endpoint table (the ``operation`` tag of the metrics).
    operation: str | None = None

    @classmethod
    def of(cls, resolved: Resolved, *, retry_safe: bool, allow_refresh: bool, max_seconds: float) -> Exchange:
        """The exchange of a resolved call whose attempts all end within ``max_seconds`` from now."""
        return cls(
            resolved.endpoint.method,
            resolved.path,
            resolved.query,
            resolved.body,
            resolved.location_id,
            retry_safe=retry_safe,
            allow_refresh=allow_refresh,
            scope=operation_scope(resolved.operation, resolved.endpoint) if resolved.operation else None,
            operation=resolved.operation or None,
            endpoint=resolved.endpoint,
            call_deadline=time.monotonic() + max_seconds,
        )


def attempt_deadline(config: GHLConnectionConfig, call_deadline: float) -> float:
    """When the attempt starting now must have its whole answer: ``connect_timeout + timeout`` from now, cut
    to the call's retry bound ``call_deadline`` (but never below :data:`MIN_ATTEMPT_SECONDS`).

    :param config: the connection (its timeouts).
    :param call_deadline: ``time.monotonic()`` after which no attempt of the call may still run.
    """
    now = time.monotonic()
    own = now + config.connect_timeout + config.timeout
    return min(own, max(call_deadline, now + MIN_ATTEMPT_SECONDS))


class Sender(Protocol):
    """The steps of one attempt, done by one HTTP library (awaitable, so one attempt function serves both)."""

    limiter: RateLimiter
    config: GHLConnectionConfig

    async def access_token(self, location_id: str | None, *, allow_refresh: bool) -> str: ...

    async def acquire(self) -> float: ...

    async def observe(self, headers: Mapping[str, str], sent_at: float) -> int: ...

    async def release(self, sent_at: float) -> None: ...

    async def pause(self, seconds: float) -> None: ...

    async def send(self, exchange: Exchange, token: str, deadline: float) -> Reply | Exception: ...

    async def recover(self, token: str, location_id: str | None, *, allow_refresh: bool) -> bool: ...


async def attempt(sender: Sender, exchange: Exchange, stats: RequestStats, *, is_oauth: bool) -> Any:
    """One try of ``exchange``: throttle, send, observe, recover a token, map errors. Raises what failed."""
    limiter = sender.limiter
    token = await sender.access_token(exchange.location_id, allow_refresh=exchange.allow_refresh)
    sent_at = await sender.acquire()
    reply = await sender.send(exchange, token, attempt_deadline(sender.config, exchange.call_deadline))
    if isinstance(reply, Exception):
        await sender.release(sent_at)
        stats.record(None)
        metrics.count("transport_errors", location_id=exchange.location_id, operation=exchange.operation)
        exchange.failed_before = True
        raise transport_error(exchange.method, exchange.path, reply) from reply
    foreign = await sender.observe(reply.headers, sent_at)
    stats.record(reply.status, reply.headers)
    answer_metrics(reply, time.monotonic() - sent_at, foreign, exchange.location_id, exchange.operation)
    if foreign and stats.record_foreign(foreign):
        log.warning("%s", split_budget_warning(sender.config, exchange.location_id, stats.foreign_requests))
    # A 401 may only mean the token rotated or expired: recover once, then let it count. A scope refusal is
    # not cured by a fresh token (and must not spend a single-use refresh token).
    if (
        reply.status == 401
        and not exchange.recovered
        and not refuses_scope(reply.status, reply.headers, reply.content)
        and await sender.recover(token, exchange.location_id, allow_refresh=exchange.allow_refresh)
    ):
        exchange.recovered = True
        raise TokenRecovered(method=exchange.method, path=exchange.path, status=401)
    secrets = (token, sender.config.secret, sender.config.refresh_token or "")
    try:
        body = _parsed(exchange, reply, limiter, secrets, is_oauth=is_oauth)
        if exchange.endpoint is not None:
            check_shape(exchange.endpoint, body, exchange.method, exchange.path, reply.status)
        return body
    except GHLNotFoundError:
        if exchange.method == "DELETE" and exchange.failed_before:
            # An earlier attempt deleted it before its answer was lost: the goal is reached.
            return None
        raise
    except GHLApiError as err:
        if isinstance(err, GHLRateLimitError) and err.retry_after is not None:
            await sender.pause(err.retry_after)  # every thread on this budget waits for the window
        exchange.failed_before = exchange.failed_before or err.transient
        raise


#: Budget headers sent as gauges, and their names after ``ghl.budget.``.
BUDGET_GAUGES = (("X-RateLimit-Remaining", "burst_remaining"), ("X-RateLimit-Daily-Remaining", "daily_remaining"))


def answer_metrics(reply: Reply, seconds: float, foreign: int, location_id: str | None, operation: str | None) -> None:
    """The metrics of one answered attempt: the request by status class, its round trip, the budget figures its
    headers gave, and the requests of other spenders it revealed (see :mod:`airflow_provider_ghl.metrics`).

    :param reply: the answer.
    :param seconds: from the slot's stamp to the answer.
    :param foreign: requests of other spenders the answer revealed.
    :param location_id: the budget's location.
    :param operation: the endpoint table's operation name.
    """
    status = "429" if reply.status == 429 else f"{reply.status // 100}xx"
    metrics.count("requests", location_id=location_id, operation=operation, status=status)
    metrics.timing("request_latency", seconds * 1000, location_id=location_id, operation=operation)
    for header, name in BUDGET_GAUGES:
        value = header_int(reply.headers, header)
        if value is not None:
            metrics.gauge(f"budget.{name}", value, location_id=location_id)
    metrics.count("budget.foreign_requests", foreign, location_id=location_id)


def _parsed(exchange: Exchange, reply: Reply, limiter: RateLimiter, secrets: tuple[str, ...], *, is_oauth: bool) -> Any:
    method, path = exchange.method, exchange.path
    try:
        return parse_response(
            method, path, reply.status, reply.headers, reply.content, interval=limiter.interval, secrets=secrets
        )
    except GHLScopeError as err:
        scope = exchange.scope or "a scope"
        message = (
            f"{method} {path} needs the scope {scope}, which the token does not have (HTTP 401: {err.ghl_message}). "
            f"Make the Private Integration Token (or authorize the app) with {scope}."
        )
        raise as_auth_error(err, message, scope_refused=True, scope=exchange.scope) from None
    except GHLAuthError as err:
        if isinstance(err, GHLForbiddenError):
            raise
        hint = (
            "The OAuth token was refreshed once and still refused: check the app's scopes."
            if is_oauth
            else "Check that the Private Integration Token is current and has the needed scopes."
        )
        raise as_auth_error(
            err, f"{method} {path}: GHL refused the token (HTTP {reply.status}: {err.ghl_message}). {hint}"
        ) from None


def run_without_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Finish a coroutine whose awaits never suspend (a :class:`RequestsSender` attempt), without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a synchronous sender step suspended")  # pragma: no cover - a programming error
