"""How a request reaches GHL: the retry policy, one attempt shared by the sync and async senders, the senders.

One attempt is written once, as the coroutine :func:`attempt`: read the token, wait for the rate limiter, send,
observe the limit headers, recover a rotated token once, map GHL's answer to a result or an exception. What
differs between ``requests`` (workers) and ``httpx`` (the triggerer) is only how each of those steps is done,
so a :class:`Sender` does them: :class:`RequestsSender` with plain calls (its steps never suspend, so
:func:`run_sync` finishes the coroutine without an event loop) and :class:`HttpxSender` with awaits.

:class:`RetryPolicy` decides which failures are repeated: a 401 answered with a fresh token, and a 429, always
(GHL did nothing); a dropped connection that never reached GHL, always; a 5xx or a connection lost after
sending only where the endpoint row says a repeat cannot duplicate a write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import ssl
import threading
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

import httpx
import requests
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from airflow_provider_ghl.exceptions import (
    GHLApiError,
    GHLAuthError,
    GHLConnectionError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLRateLimitError,
    GHLScopeError,
)
from airflow_provider_ghl.hooks.auth import TokenProvider
from airflow_provider_ghl.hooks.calls import Resolved
from airflow_provider_ghl.hooks.config import GHLConnectionConfig
from airflow_provider_ghl.hooks.ratelimit import RateLimiter
from airflow_provider_ghl.hooks.responses import as_auth_error, parse_response, refuses_scope, transport_error
from airflow_provider_ghl.hooks.scopes import operation_scope

T = TypeVar("T")


class RequestStats:
    """Counts of the API requests a hook sent (every attempt, retries included); safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.rate_limited = 0
        self.server_errors = 0
        self.transport_errors = 0

    def record(self, status: int | None) -> None:
        """One attempt: its HTTP status, or None when no response arrived."""
        with self._lock:
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
    """

    method: str
    path: str
    params: Mapping[str, Any] | None
    json: Any
    location_id: str | None
    retry_safe: bool
    allow_refresh: bool = True
    #: A token was already recovered: a second 401 is a real refusal.
    recovered: bool = False
    #: An earlier attempt may have reached GHL (its answer was lost or was a 5xx).
    failed_before: bool = False
    #: The OAuth scope the call needs (for the message of a scope refusal).
    scope: str | None = None

    @classmethod
    def of(cls, resolved: Resolved, *, retry_safe: bool, allow_refresh: bool) -> Exchange:
        """The exchange of a resolved call."""
        return cls(
            resolved.endpoint.method,
            resolved.path,
            resolved.query,
            resolved.body,
            resolved.location_id,
            retry_safe=retry_safe,
            allow_refresh=allow_refresh,
            scope=operation_scope(resolved.operation, resolved.endpoint) if resolved.operation else None,
        )


class Sender(Protocol):
    """The steps of one attempt, done by one HTTP library (awaitable, so one attempt function serves both)."""

    limiter: RateLimiter

    async def access_token(self, location_id: str | None, *, allow_refresh: bool) -> str: ...

    async def acquire(self) -> float: ...

    async def send(self, exchange: Exchange, token: str) -> Reply | Exception: ...

    async def recover(self, token: str, location_id: str | None, *, allow_refresh: bool) -> bool: ...


async def attempt(sender: Sender, exchange: Exchange, stats: RequestStats, *, is_oauth: bool) -> Any:
    """One try of ``exchange``: throttle, send, observe, recover a token, map errors. Raises what failed."""
    limiter = sender.limiter
    token = await sender.access_token(exchange.location_id, allow_refresh=exchange.allow_refresh)
    sent_at = await sender.acquire()
    reply = await sender.send(exchange, token)
    if isinstance(reply, Exception):
        limiter.release(sent_at)
        stats.record(None)
        exchange.failed_before = True
        raise transport_error(exchange.method, exchange.path, reply) from reply
    limiter.observe(reply.headers, sent_at)
    stats.record(reply.status)
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
    try:
        return _parsed(exchange, reply, limiter, is_oauth=is_oauth)
    except GHLNotFoundError:
        if exchange.method == "DELETE" and exchange.failed_before:
            # An earlier attempt deleted it before its answer was lost: the goal is reached.
            return None
        raise
    except GHLApiError as err:
        exchange.failed_before = exchange.failed_before or err.transient
        raise


def _parsed(exchange: Exchange, reply: Reply, limiter: RateLimiter, *, is_oauth: bool) -> Any:
    method, path = exchange.method, exchange.path
    try:
        return parse_response(method, path, reply.status, reply.headers, reply.content, interval=limiter.interval)
    except GHLRateLimitError as err:
        if err.retry_after is not None:
            limiter.pause(err.retry_after)  # every thread on this budget waits for the window
        raise
    except GHLScopeError as err:
        scope = exchange.scope or "a scope"
        raise GHLScopeError(
            f"{method} {path} needs the scope {scope}, which the token does not have (HTTP 401: {err.ghl_message}). "
            f"Make the Private Integration Token (or authorize the app) with {scope}.",
            scope=exchange.scope,
            method=method,
            path=path,
            status=reply.status,
            ghl_message=err.ghl_message,
            trace_id=err.trace_id,
        ) from None
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


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Finish a coroutine whose awaits never suspend (a :class:`RequestsSender` attempt), without a loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("a synchronous sender step suspended")  # pragma: no cover - a programming error


class RequestsSender:
    """The sync steps: ``requests`` on the hook's pooled session, the limiter's blocking wait."""

    def __init__(
        self, session: requests.Session, config: GHLConnectionConfig, auth: TokenProvider, limiter: RateLimiter
    ) -> None:
        self.session = session
        self.config = config
        self.auth = auth
        self.limiter = limiter

    async def access_token(self, location_id: str | None, *, allow_refresh: bool) -> str:
        return self.auth.access_token(location_id, allow_refresh=allow_refresh)

    async def acquire(self) -> float:
        return self.limiter.acquire(self.config.daily_reserve)

    async def send(self, exchange: Exchange, token: str) -> Reply | Exception:
        try:
            response = self.session.request(
                exchange.method,
                self.config.base_url + exchange.path,
                params=exchange.params,
                json=exchange.json,
                headers={"Authorization": f"Bearer {token}"},
                timeout=(self.config.connect_timeout, self.config.timeout),
            )
        except requests.RequestException as err:
            return err
        return Reply(response.status_code, response.headers, response.content)

    async def recover(self, token: str, location_id: str | None, *, allow_refresh: bool) -> bool:
        return self.auth.recover(token, location_id, allow_refresh=allow_refresh)


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context, made once per process: building one loads the CA bundle (about 30 ms of
    CPU), which an ``httpx.AsyncClient`` per trigger poll would otherwise pay every time."""
    return httpx.create_ssl_context()


class HttpxSender:
    """The async steps: ``httpx.AsyncClient``, the limiter's async wait, token reads off the event loop."""

    def __init__(
        self, client: httpx.AsyncClient, config: GHLConnectionConfig, auth: TokenProvider, limiter: RateLimiter
    ) -> None:
        self.client = client
        self.config = config
        self.auth = auth
        self.limiter = limiter

    async def access_token(self, location_id: str | None, *, allow_refresh: bool) -> str:
        # Token stores read Variables synchronously: keep that off the event loop.
        return await asyncio.to_thread(self.auth.access_token, location_id, allow_refresh=allow_refresh)

    async def acquire(self) -> float:
        return await self.limiter.acquire_async(self.config.daily_reserve)

    async def send(self, exchange: Exchange, token: str) -> Reply | Exception:
        try:
            response = await self.client.request(
                exchange.method,
                exchange.path,
                params=exchange.params,
                json=exchange.json,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as err:
            return err
        return Reply(response.status_code, response.headers, response.content)

    async def recover(self, token: str, location_id: str | None, *, allow_refresh: bool) -> bool:
        return await asyncio.to_thread(self.auth.recover, token, location_id, allow_refresh=allow_refresh)


class WarningLogger(Protocol):
    """The one logging method the policy uses (stdlib loggers and Airflow's structlog loggers both have it)."""

    def warning(self, event: Any, *args: Any, **kwargs: Any) -> Any: ...


class RetryPolicy:
    """Which failed attempts to repeat, how long to wait, when to stop; tenacity arguments for one call.

    :param backoff: scale of the exponential backoff with jitter, in seconds.
    :param max_seconds: give up retrying a call after this much time.
    :param log: where retries are logged.
    """

    def __init__(self, *, backoff: float, max_seconds: float, log: WarningLogger) -> None:
        self.backoff = wait_random_exponential(multiplier=backoff, max=30)
        self.max_seconds = max_seconds
        self.log = log

    @staticmethod
    def _should_retry(retry_safe: bool) -> retry_if_exception:
        def predicate(exc: BaseException) -> bool:
            if isinstance(exc, TokenRecovered | GHLRateLimitError):
                return True  # a 401 or 429 means GHL did nothing: always safe to repeat
            if isinstance(exc, GHLConnectionError) and not exc.sent:
                return True
            return isinstance(exc, GHLApiError) and exc.transient and retry_safe

        return retry_if_exception(predicate)

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TokenRecovered):
            return 0.0
        if isinstance(exc, GHLRateLimitError) and exc.retry_after is not None:
            # The shared limiter is paused for the window; just avoid every thread waking at the same instant.
            return random.uniform(0, 0.1)
        return float(self.backoff(retry_state))

    def _log_retry(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TokenRecovered):
            return
        self.log.warning(
            "GHL request failed (attempt %d): %s; retrying in %.2f s",
            retry_state.attempt_number,
            exc,
            retry_state.upcoming_sleep,
        )

    def _stop(self, attempts: int) -> Callable[[RetryCallState], bool]:
        """Stop after ``attempts`` failed attempts or ``max_seconds``. A 429 or a token recovery does not use up
        an attempt: GHL did nothing, and the limiter already waits the window; only time bounds them."""
        failures = 0
        out_of_time = stop_after_delay(self.max_seconds)

        def stop(retry_state: RetryCallState) -> bool:
            nonlocal failures
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if not isinstance(exc, GHLRateLimitError | TokenRecovered):
                failures += 1
            return failures >= attempts or out_of_time(retry_state)

        return stop

    def tenacity_kwargs(self, *, retry_safe: bool, attempts: int) -> dict[str, Any]:
        """Arguments of ``Retrying`` / ``AsyncRetrying`` for one call of at most ``attempts`` failed attempts."""
        return {
            "retry": self._should_retry(retry_safe),
            "wait": self._wait,
            "stop": self._stop(attempts),
            "before_sleep": self._log_retry,
            "reraise": True,
        }


def post_form(
    session: requests.Session,
    config: GHLConnectionConfig,
    policy: RetryPolicy,
    path: str,
    form: dict[str, str],
    bearer: str | None,
    version: str | None,
) -> dict[str, Any]:
    """POST a form to an OAuth endpoint. Never repeated once sent: a refresh token works only once."""
    headers: dict[str, str | None] = {"Version": version, "Content-Type": "application/x-www-form-urlencoded"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    retrying = Retrying(
        retry=retry_if_exception(lambda e: isinstance(e, GHLConnectionError) and not e.sent),
        stop=stop_after_attempt(3),
        wait=policy.backoff,
        reraise=True,
    )
    for try_ in retrying:
        with try_:
            try:
                # A None header value drops the session's Version header (POST /oauth/token declares none).
                response = session.post(
                    config.base_url + path,
                    data=form,
                    headers=headers,
                    timeout=(config.connect_timeout, config.timeout),
                )
            except requests.RequestException as err:
                raise transport_error("POST", path, err) from err
            try:
                body: dict[str, Any] = parse_response(
                    "POST", path, response.status_code, response.headers, response.content, interval=1.0
                )
            except GHLAuthError:
                raise
            except GHLApiError as err:
                # Token-endpoint refusals (400 invalid_grant, 401 invalid_client, ...) are auth problems.
                raise as_auth_error(err) from None
            return body
    raise AssertionError("unreachable")  # pragma: no cover - Retrying re-raises
