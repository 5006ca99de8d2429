"""Turning GHL answers into results or typed exceptions; shared by the ``requests`` and ``httpx`` paths."""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
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
    GHLScopeError,
    GHLServerError,
    GHLValidationError,
)
from airflow_provider_ghl.hooks.endpoints import WHOLE_BODY, Endpoint
from airflow_provider_ghl.hooks.scopes import is_scope_refusal

_TRACE_HEADERS = ("traceId", "X-Trace-Id", "X-Request-Id")


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


def _error_fields(body: Any, headers: Mapping[str, str]) -> dict[str, Any]:
    message: str | None = None
    errors: list[str] = []
    ghl_error: str | None = None
    meta: dict[str, Any] = {}
    trace_id = next((headers[h] for h in _TRACE_HEADERS if headers.get(h)), None)
    if isinstance(body, dict):
        raw = body.get("message")
        if isinstance(raw, list):  # 422: one message per failed validator
            errors = [str(m) for m in raw]
            message = "; ".join(errors)
        elif raw is not None:
            message = str(raw)
        description = body.get("error_description")
        if description and not message:
            message = str(description)
        ghl_error = str(body["error"]) if body.get("error") else None
        trace_id = body.get("traceId") or trace_id
        raw_meta = body.get("meta")
        meta = raw_meta if isinstance(raw_meta, dict) else {}
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:300]
    return {"ghl_message": message, "errors": errors, "ghl_error": ghl_error, "trace_id": trace_id, "meta": meta}


def _decode(content: bytes) -> Any:
    if not content or not content.strip():
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


def parse_response(
    method: str, path: str, status: int, headers: Mapping[str, str], content: bytes, *, interval: float
) -> Any:
    """Return the decoded JSON body of a 2xx answer or raise the matching :class:`GHLApiError`.

    :param interval: the rate-limit window in seconds, used as the wait after a 429 without hints.
    """
    body = _decode(content)
    if 200 <= status < 300:
        if isinstance(body, str):  # a 2xx that is not JSON was cut off or mangled on the way
            raise GHLServerError(method=method, path=path, status=status, ghl_message="response is not valid JSON")
        return body
    fields = _error_fields(body, headers)
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


def as_auth_error(err: GHLApiError, message: str | None = None) -> GHLAuthError:
    """``err`` as a :class:`GHLAuthError` with the same request facts (and ``message`` instead of its own)."""
    return GHLAuthError(
        message,
        method=err.method,
        path=err.path,
        status=err.status,
        ghl_message=err.ghl_message,
        ghl_error=err.ghl_error,
        trace_id=err.trace_id,
    )


def refuses_scope(status: int, headers: Mapping[str, str], content: bytes) -> bool:
    """Whether an answer is GHL's scope refusal: a 401 that a fresh token cannot cure."""
    return status == 401 and is_scope_refusal(status, _error_fields(_decode(content), headers)["ghl_message"])


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


def _never_connected_requests(err: requests.RequestException) -> bool:
    if isinstance(err, requests.ConnectTimeout):
        return True
    reason = err.args[0] if err.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the cause
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def transport_error(method: str, path: str, err: Exception) -> GHLConnectionError:
    """Wrap a ``requests`` or ``httpx`` failure that produced no response."""
    if isinstance(err, requests.RequestException):
        sent = not _never_connected_requests(err)
    else:
        sent = not isinstance(err, httpx.ConnectError | httpx.ConnectTimeout)
    return GHLConnectionError(
        f"{method} {path}: no usable response from GHL ({type(err).__name__})", method=method, path=path, sent=sent
    )
