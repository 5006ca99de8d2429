"""The two senders of the attempt's steps, and the OAuth form post: how bytes reach GHL and come back.

:class:`RequestsSender` (workers: ``requests`` on the hook's pooled session, blocking waits) and
:class:`HttpxSender` (the triggerer: ``httpx.AsyncClient``, awaits) do the steps of
:func:`~airflow_provider_ghl.hooks.transport.attempt`. Both read an answer the same way: no redirect followed,
the body in chunks into a :class:`BodyBuffer` that stops at :data:`MAX_RESPONSE_BYTES` or the attempt's
deadline. :func:`post_form` sends the OAuth forms with the same reading, never repeated once sent.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import requests
import urllib3
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
)

from airflow_provider_ghl.exceptions import (
    GHLApiError,
    GHLAuthError,
    GHLConnectionError,
    GHLRedirectError,
)
from airflow_provider_ghl.hooks.auth import TokenProvider
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.endpoints import WHOLE_BODY, Endpoint
from airflow_provider_ghl.hooks.ratelimit import RateLimiter
from airflow_provider_ghl.hooks.responses import (
    DeadlineExceeded,
    ResponseTooLarge,
    as_auth_error,
    check_shape,
    parse_response,
    transport_error,
)
from airflow_provider_ghl.hooks.retry import RetryPolicy
from airflow_provider_ghl.hooks.transport import Exchange, Reply, attempt_deadline
from airflow_provider_ghl.hooks.watchdog import headers_deadline

#: Largest answer the hook reads (decoded bytes). GHL's largest page, 500 search hits, is a few MB.
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Bytes asked for per read; a read returns what has arrived, so the deadline is checked between reads.
CHUNK_BYTES = 64 * 1024


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

    async def observe(self, headers: Mapping[str, str], sent_at: float) -> int:
        return self.limiter.observe(headers, sent_at)

    async def release(self, sent_at: float) -> None:
        self.limiter.release(sent_at)

    async def pause(self, seconds: float) -> None:
        self.limiter.pause(seconds)

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
    """The async steps: ``httpx.AsyncClient``, the limiter's async wait; token reads, and the limiter's steps
    when they block (a shared budget's file lock or Redis round trip), off the event loop."""

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

    async def observe(self, headers: Mapping[str, str], sent_at: float) -> int:
        foreign: int = await self._limiter_step(self.limiter.observe, headers, sent_at)
        return foreign

    async def release(self, sent_at: float) -> None:
        await self._limiter_step(self.limiter.release, sent_at)

    async def pause(self, seconds: float) -> None:
        await self._limiter_step(self.limiter.pause, seconds)

    async def _limiter_step(self, step: Callable[..., Any], *args: Any) -> Any:
        # The process limiter's steps take microseconds: a thread hop would cost more than it saves.
        if self.limiter.blocking_steps:
            return await asyncio.to_thread(step, *args)
        return step(*args)

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
    limiter: RateLimiter | None = None,
) -> dict[str, Any]:
    """POST a form to an OAuth endpoint. Never repeated once sent: a refresh token works only once.

    :param limiter: the rate budget the request spends (an agency's location-token mint: the company's); None
        for the token endpoint, which needs no bearer and counts against no location.
    """
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
            sent_at = limiter.acquire(config.daily_reserve) if limiter is not None else 0.0
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
                if limiter is not None:
                    limiter.release(sent_at)
                raise transport_error("POST", path, err) from err
            if limiter is not None:
                limiter.observe(reply.headers, sent_at)
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
