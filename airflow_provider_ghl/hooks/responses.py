"""Turning GHL answers into results or typed exceptions; shared by the ``requests`` and ``httpx`` paths."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import requests
import urllib3

from airflow_provider_ghl.exceptions import (
    GHLApiError,
    GHLAuthError,
    GHLConnectionError,
    GHLDailyBudgetExhausted,
    GHLDuplicateContactError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLRateLimitError,
    GHLRedirectError,
    GHLResponseTooLargeError,
    GHLScopeError,
    GHLServerError,
    GHLUnexpectedResponseError,
    GHLValidationError,
)
from airflow_provider_ghl.hooks.endpoints import WHOLE_BODY, Endpoint
from airflow_provider_ghl.hooks.scopes import is_scope_refusal

_TRACE_HEADERS = ("traceId", "X-Trace-Id", "X-Request-Id")
#: Longest error text taken from a body into a message or a log line.
ERROR_TEXT_LIMIT = 200
_TAGS = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
# Whatever follows "Bearer" is a token, even one the hook does not know (an agency's, another app's).
_BEARER = re.compile(r"(?i)\bbearer\s+[^\s\"'<>,;]+")
REDACTED = "[redacted]"
_SHORTEST_SECRET = 8


class DeadlineExceeded(Exception):
    """Internal: the attempt's deadline passed before the whole answer had arrived.

    :param seconds: the time the attempt was given.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"no complete answer within {seconds:.1f} s")


class ResponseTooLarge(Exception):
    """Internal: the answer is larger than the cap (said by ``Content-Length`` or counted while reading).

    :param status: the HTTP status of the answer.
    :param limit: the cap in bytes.
    """

    def __init__(self, status: int, limit: int) -> None:
        self.status = status
        self.limit = limit
        super().__init__(f"answer larger than {limit} bytes")


def redact(text: str, secrets: Collection[str]) -> str:
    """``text`` with every known secret, and anything after ``Bearer``, replaced by ``[redacted]``."""
    for secret in secrets:
        if len(secret) >= _SHORTEST_SECRET:  # a shorter one would be a word of the message, not a secret
            text = text.replace(secret, REDACTED)
    return _BEARER.sub(f"Bearer {REDACTED}", text)


def error_text(text: str, secrets: Collection[str], limit: int = ERROR_TEXT_LIMIT) -> str:
    """A body's text fit for a message: secrets replaced first (so a cut can never leave half of one), markup
    dropped, one line, at most ``limit`` characters."""
    line = _SPACE.sub(" ", _TAGS.sub(" ", redact(text, secrets))).strip()
    return line if len(line) <= limit else line[: limit - 3] + "..."


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (delta or HTTP date); GHL is not known to send it, but honour it if it does."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max((parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def _error_fields(body: Any, headers: Mapping[str, str], secrets: Collection[str]) -> dict[str, Any]:
    message: str | None = None
    errors: list[str] = []
    ghl_error: str | None = None
    meta: dict[str, Any] = {}
    trace_id = next((headers[h] for h in _TRACE_HEADERS if headers.get(h)), None)
    if isinstance(body, dict):
        raw = body.get("message")
        if isinstance(raw, list):  # 422: one message per failed validator
            errors = [error_text(str(m), secrets) for m in raw]
            message = "; ".join(errors)
        elif raw is not None:
            message = error_text(str(raw), secrets)
        description = body.get("error_description")
        if description and not message:
            message = error_text(str(description), secrets)
        ghl_error = error_text(str(body["error"]), secrets) if body.get("error") else None
        trace_id = body.get("traceId") or trace_id
        raw_meta = body.get("meta")
        meta = raw_meta if isinstance(raw_meta, dict) else {}
    elif isinstance(body, str) and body.strip():
        message = error_text(body, secrets)
    return {"ghl_message": message, "errors": errors, "ghl_error": ghl_error, "trace_id": trace_id, "meta": meta}


def _decode(content: bytes) -> Any:
    if not content or not content.strip():
        return None
    try:
        # orjson: parsing the answer is most of a search page's client CPU, and orjson does it 2-3 x faster.
        return orjson.loads(content)
    except ValueError:
        pass
    try:
        # What orjson refuses and the standard library reads (NaN, integers over 64 bits).
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


def parse_response(
    method: str,
    path: str,
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    interval: float,
    secrets: Collection[str] = (),
) -> Any:
    """Return the decoded JSON body of a 2xx answer or raise the matching :class:`GHLApiError`.

    :param interval: the rate-limit window in seconds, used as the wait after a 429 without hints.
    :param secrets: what the request carried (token, client secret, refresh token): never into a message.
    """
    if 300 <= status < 400:
        # Never followed (sync or async): the target may be another host, and a repeat would carry secrets.
        target = urlsplit(headers.get("Location") or "").hostname
        raise GHLRedirectError(
            f"{method} {path}: GHL answered HTTP {status}, a redirect to "
            f"{target or 'a relative location'}; redirects are never followed.",
            method=method,
            path=path,
            status=status,
            target_host=target,
        )
    body = _decode(content)
    if 200 <= status < 300:
        if isinstance(body, str):  # a 2xx that is not JSON was cut off or mangled on the way
            raise GHLServerError(method=method, path=path, status=status, ghl_message="response is not valid JSON")
        return body
    fields = _error_fields(body, headers, secrets)
    where: dict[str, Any] = {"method": method, "path": path, "status": status, **fields}
    message = (fields["ghl_message"] or "").lower()
    if status == 429:
        daily_left = headers.get("X-RateLimit-Daily-Remaining")
        if daily_left is not None and daily_left.strip() == "0":
            raise GHLDailyBudgetExhausted(
                f"{method} {path}: GHL's daily request budget is spent (429 with X-RateLimit-Daily-Remaining 0).",
                remaining=0,
                reserve=0,
            )
        retry_after = retry_after_seconds(headers)
        if retry_after is None:
            remaining = headers.get("X-RateLimit-Remaining")
            # A 429 with room left in the window is not about our budget (a burst on GHL's side): back off
            # normally. Otherwise the window is full and the headers say how long it lasts.
            if remaining is None or remaining.strip() in ("", "0"):
                retry_after = interval
        raise GHLRateLimitError(retry_after=retry_after, **where)
    if status == 401:
        if is_scope_refusal(status, fields["ghl_message"]):
            raise GHLScopeError(**where)
        raise GHLAuthError(**where)
    if status == 403:
        raise GHLForbiddenError(**where)
    if status == 404:
        raise GHLNotFoundError(**where)
    if status == 422:
        raise GHLValidationError(**where)
    if status == 400:
        if fields["meta"].get("contactId") and "duplicate" in message:
            raise GHLDuplicateContactError(**where)
        if "not found" in message or "does not exist" in message:
            raise GHLNotFoundError(**where)
        raise GHLApiError(**where)
    if status >= 500:
        raise GHLServerError(**where)
    raise GHLApiError(**where)


def as_auth_error(
    err: GHLApiError, message: str | None = None, *, scope_refused: bool = False, scope: str | None = None
) -> GHLAuthError:
    """``err`` as a :class:`GHLAuthError` with the same request facts (and ``message`` instead of its own), or
    with ``scope_refused`` as a :class:`GHLScopeError` naming ``scope``, the scope the call needed."""
    facts: dict[str, Any] = {
        "method": err.method,
        "path": err.path,
        "status": err.status,
        "ghl_message": err.ghl_message,
        "ghl_error": err.ghl_error,
        "trace_id": err.trace_id,
    }
    return GHLScopeError(message, scope=scope, **facts) if scope_refused else GHLAuthError(message, **facts)


#: What GHL says when the app is gone from a location: the refresh's "Location is not active" (GoHighLevel/
#: highlevel-api-docs#249), or a location-token mint for a location without the app.
NOT_INSTALLED_MESSAGES = ("location is not active", "not installed")


def reports_not_installed(err: GHLApiError) -> bool:
    """Whether an OAuth endpoint's refusal says the app is no longer installed in (or active at) the location."""
    message = (err.ghl_message or "").lower()
    return err.status == 400 and any(phrase in message for phrase in NOT_INSTALLED_MESSAGES)


def refuses_scope(status: int, headers: Mapping[str, str], content: bytes) -> bool:
    """Whether an answer is GHL's scope refusal: a 401 that a fresh token cannot cure."""
    return is_scope_refusal(status, _error_fields(_decode(content), headers, ())["ghl_message"])


def _found(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"a {type(value).__name__}"


def check_shape(endpoint: Endpoint, body: Any, method: str, path: str, status: int) -> None:
    """Raise :class:`GHLUnexpectedResponseError` unless the 2xx ``body`` has the shape the endpoint documents:
    a JSON object (empty only where the call returns nothing) with each key of :attr:`Endpoint.shape`."""
    problem: str | None = None
    if body is None:
        if endpoint.result is not None:
            problem = "an empty body"
    elif not isinstance(body, dict):
        problem = f"{_found(body)} instead of an object"
    else:
        for key, expect in endpoint.shape.items():
            value = body.get(key)
            if value is None and expect.nullable and key in body:
                continue
            if not isinstance(value, expect.kind):
                wanted = "an object" if expect.kind is dict else "an array"
                problem = f"{key!r} is {'missing' if key not in body else _found(value)}, expected {wanted}"
                break
    if problem is not None:
        raise GHLUnexpectedResponseError(
            f"{method} {path}: unexpected response shape (HTTP {status}): {problem}.",
            method=method,
            path=path,
            status=status,
            ghl_message=f"unexpected response shape: {problem}",
        )


def extract_result(endpoint: Endpoint, body: Any, method: str, path: str) -> Any:
    """Pick the resource the endpoint row names out of a successful body."""
    if not isinstance(body, dict) or endpoint.result == WHOLE_BODY:
        return body
    # v2 says "succeded" (sic), v3 "succeeded", bulk business "success": a false flag is a failure.
    for flag in ("succeded", "succeeded", "success"):
        if body.get(flag) is False:
            raise GHLApiError(method=method, path=path, status=200, ghl_message=f"GHL answered {flag}=false")
    if endpoint.result is None:
        return None
    return body.get(endpoint.result)


def _never_connected_requests(err: Exception) -> bool:
    if isinstance(err, requests.ConnectTimeout):
        return True
    reason = err.args[0] if err.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _is_read_timeout(err: Exception) -> bool:
    if isinstance(err, requests.ReadTimeout | httpx.ReadTimeout | urllib3.exceptions.ReadTimeoutError):
        return True
    # requests reports a read timeout met while streaming the body as a ConnectionError around urllib3's.
    return isinstance(err, requests.ConnectionError) and any(
        isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in err.args
    )


def transport_error(method: str, path: str, err: Exception) -> GHLApiError:
    """Wrap a ``requests``, ``urllib3`` or ``httpx`` failure that produced no usable response (or one cut at
    the attempt's deadline or at the size cap)."""
    if isinstance(err, ResponseTooLarge):
        return GHLResponseTooLargeError(
            f"{method} {path}: the answer (HTTP {err.status}) is larger than the {err.limit} bytes the hook reads.",
            method=method,
            path=path,
            status=err.status,
            limit=err.limit,
        )
    if isinstance(err, requests.RequestException | urllib3.exceptions.HTTPError):
        sent = not _never_connected_requests(err)
    else:
        sent = not isinstance(err, httpx.ConnectError | httpx.ConnectTimeout)
    if isinstance(err, DeadlineExceeded):
        what = f"{err}: the attempt's deadline passed"
    elif _is_read_timeout(err):
        what = "read timeout: GHL sent nothing for longer than the timeout"
    elif isinstance(err, requests.ConnectTimeout | httpx.ConnectTimeout):
        what = "connect timeout"
    else:
        what = type(err).__name__
    return GHLConnectionError(
        f"{method} {path}: no usable response from GHL ({what})", method=method, path=path, sent=sent
    )
