"""How a request reaches GHL: the retry policy, one attempt shared by the sync and async senders, the senders.

One attempt is written once, as the coroutine :func:`attempt`: read the token, wait for the rate limiter, send,
observe the limit headers, recover a rotated token once, map GHL's answer to a result or an exception. What
differs between ``requests`` (workers) and ``httpx`` (the triggerer) is only how each of those steps is done,
so a :class:`Sender` does them: :class:`RequestsSender` with plain calls (its steps never suspend, so
:func:`run_sync` finishes the coroutine without an event loop) and :class:`HttpxSender` with awaits.

:class:`RetryPolicy` decides which failures are repeated: a 401 answered with a fresh token, and a 429, always
(GHL did nothing); a dropped connection that never reached GHL, always; a 5xx or a connection lost after
sending only where the endpoint row says a repeat cannot duplicate a write.

What an answer may do is bounded the same way on both paths: a redirect is never followed (a
:class:`~airflow_provider_ghl.exceptions.GHLRedirectError`), the whole answer must arrive before the attempt's
deadline (``connect_timeout + timeout``, and never past the call's retry bound), it is read in chunks up to
:data:`MAX_RESPONSE_BYTES`, and a 2xx must have the shape its endpoint row documents.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import ssl
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NamedTuple, Protocol, TypeVar

import httpx
import requests
import urllib3
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
    GHLRedirectError,
    GHLScopeError,
)
from airflow_provider_ghl.hooks.auth import TokenProvider
from airflow_provider_ghl.hooks.calls import Resolved
from airflow_provider_ghl.hooks.config import GHLConnectionConfig
from airflow_provider_ghl.hooks.endpoints import WHOLE_BODY, Endpoint
from airflow_provider_ghl.hooks.ratelimit import RateLimiter
from airflow_provider_ghl.hooks.responses import (
    DeadlineExceeded,
    ResponseTooLarge,
    as_auth_error,
    check_shape,
    parse_response,
    refuses_scope,
    transport_error,
)
from airflow_provider_ghl.hooks.scopes import operation_scope
from airflow_provider_ghl.hooks.watchdog import headers_deadline

T = TypeVar("T")

#: Largest answer the hook reads (decoded bytes). GHL's largest page, 500 search hits, is a few MB.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Bytes asked for per read; a read returns what has arrived, so the deadline is checked between reads.
CHUNK_BYTES = 64 * 1024
#: An attempt started near the end of the retry bound still gets this long (else it could not even connect).
MIN_ATTEMPT_SECONDS = 1.0


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


class BodyBuffer:
    """The body of one answer, collected chunk by chunk: over the cap or past the deadline, it stops at once
    (memory stays bounded by the cap, the time by the deadline).

    :param status: the answer's HTTP status.
    :param headers: its headers (a declared ``Content-Length`` over the cap fails before reading).
    :param deadline: ``time.monotonic()`` by which the whole body must be in.
    :param seconds: the time the attempt was given (for the error).
    :param limit: the cap in bytes; default :data:`MAX_RESPONSE_BYTES` (read when the buffer is made).
    """

    def __init__(
        self,
        status: int,
        headers: Mapping[str, str],
        deadline: float,
        seconds: float,
        limit: int | None = None,
    ) -> None:
        self.status = status
        self.deadline = deadline
        self.seconds = seconds
        self.limit = MAX_RESPONSE_BYTES if limit is None else limit
        self.size = 0
        self.chunks: list[bytes] = []
        declared = headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.limit:
            raise ResponseTooLarge(status, self.limit)

    def remaining(self) -> float:
        """Seconds left before the deadline (raises once it has passed)."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded(self.seconds)
        return left

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise ResponseTooLarge(self.status, self.limit)
        self.chunks.append(chunk)
        self.remaining()

    def content(self) -> bytes:
        return self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)


def request_reply(
    session: requests.Session,
    config: GHLConnectionConfig,
    method: str,
    url: str,
    deadline: float,
    **kwargs: Any,
) -> Reply:
    """One ``requests`` exchange that follows no redirect, reads the body in chunks up to the cap and is cut
    at ``deadline``; raises what failed (``requests``/``urllib3`` errors, the internal cut-offs)."""
    seconds = deadline - time.monotonic()
    try:
        with headers_deadline(deadline):  # a DeadlineAdapter session cuts the wait for headers at the deadline
            response = session.request(
                method,
                url,
                stream=True,
                allow_redirects=False,
                timeout=(min(config.connect_timeout, seconds), min(config.timeout, seconds)),
                **kwargs,
            )
    except requests.RequestException as err:
        if time.monotonic() >= deadline:
            raise DeadlineExceeded(seconds) from err
        raise
    with response:  # released to the pool when read whole, else closed
        body = BodyBuffer(response.status_code, response.headers, deadline, seconds)
        raw = response.raw
        sock = getattr(raw.connection, "sock", None)
        while True:
            wait = min(config.timeout, body.remaining())
            if sock is not None and wait < config.timeout:
                # Each read may wait only until the deadline, so a drip cannot outlast it by a read timeout.
                sock.settimeout(wait)
            try:
                chunk = raw.read1(CHUNK_BYTES, decode_content=True)
            except urllib3.exceptions.ReadTimeoutError:
                if wait < config.timeout:  # the deadline cut this read, not the read timeout
                    raise DeadlineExceeded(seconds) from None
                raise
            if not chunk:
                break
            body.add(chunk)
    return Reply(response.status_code, response.headers, body.content())


class Sender(Protocol):
    """The steps of one attempt, done by one HTTP library (awaitable, so one attempt function serves both)."""

    limiter: RateLimiter
    config: GHLConnectionConfig

    async def access_token(self, location_id: str | None, *, allow_refresh: bool) -> str: ...

    async def acquire(self) -> float: ...

    async def send(self, exchange: Exchange, token: str, deadline: float) -> Reply | Exception: ...

    async def recover(self, token: str, location_id: str | None, *, allow_refresh: bool) -> bool: ...


async def attempt(sender: Sender, exchange: Exchange, stats: RequestStats, *, is_oauth: bool) -> Any:
    """One try of ``exchange``: throttle, send, observe, recover a token, map errors. Raises what failed."""
    limiter = sender.limiter
    token = await sender.access_token(exchange.location_id, allow_refresh=exchange.allow_refresh)
    sent_at = await sender.acquire()
    reply = await sender.send(exchange, token, attempt_deadline(sender.config, exchange.call_deadline))
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
        exchange.failed_before = exchange.failed_before or err.transient
        raise


def _parsed(exchange: Exchange, reply: Reply, limiter: RateLimiter, secrets: tuple[str, ...], *, is_oauth: bool) -> Any:
    method, path = exchange.method, exchange.path
    try:
        return parse_response(
            method, path, reply.status, reply.headers, reply.content, interval=limiter.interval, secrets=secrets
        )
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

    async def send(self, exchange: Exchange, token: str, deadline: float) -> Reply | Exception:
        try:
            return request_reply(
                self.session,
                self.config,
                exchange.method,
                self.config.base_url + exchange.path,
                deadline,
                params=exchange.params,
                json=exchange.json,
                headers={"Authorization": f"Bearer {token}"},
            )
        except (requests.RequestException, urllib3.exceptions.HTTPError, DeadlineExceeded, ResponseTooLarge) as err:
            return err

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

    async def send(self, exchange: Exchange, token: str, deadline: float) -> Reply | Exception:
        seconds = deadline - time.monotonic()
        request = self.client.build_request(
            exchange.method,
            exchange.path,
            params=exchange.params,
            json=exchange.json,
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            # One timeout around connect, headers and body; redirects are not followed (httpx's default).
            async with asyncio.timeout(seconds):
                response = await self.client.send(request, stream=True, follow_redirects=False)
                try:
                    body = BodyBuffer(response.status_code, response.headers, deadline, seconds)
                    async for chunk in response.aiter_bytes(CHUNK_BYTES):
                        body.add(chunk)
                finally:
                    await response.aclose()
        except TimeoutError:
            return DeadlineExceeded(seconds)
        except (httpx.HTTPError, DeadlineExceeded, ResponseTooLarge) as err:
            return err
        return Reply(response.status_code, response.headers, body.content())

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


#: The OAuth form fields that are secrets (never into a message).
_FORM_SECRETS = ("client_secret", "refresh_token", "code")


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
    secrets = (*(form.get(key, "") for key in _FORM_SECRETS), bearer or "", config.secret, config.refresh_token or "")
    call_deadline = time.monotonic() + policy.max_seconds

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
                reply = request_reply(
                    session,
                    config,
                    "POST",
                    config.base_url + path,
                    attempt_deadline(config, call_deadline),
                    data=form,
                    headers=headers,
                )
            except (requests.RequestException, urllib3.exceptions.HTTPError, DeadlineExceeded, ResponseTooLarge) as err:
                raise transport_error("POST", path, err) from err
            try:
                body: dict[str, Any] = parse_response(
                    "POST", path, reply.status, reply.headers, reply.content, interval=1.0, secrets=secrets
                )
            except (GHLAuthError, GHLRedirectError):
                raise
            except GHLApiError as err:
                # Token-endpoint refusals (400 invalid_grant, 401 invalid_client, ...) are auth problems.
                raise as_auth_error(err) from None
            check_shape(Endpoint("POST", path, WHOLE_BODY), body, "POST", path, reply.status)
            return body
    raise AssertionError("unreachable")  # pragma: no cover - Retrying re-raises
