"""Narrow parsing tests of GHL answers (no network): status and body -> result or typed exception."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from airflow_provider_ghl.exceptions import (
    GHLApiError,
    GHLAuthError,
    GHLConnectionError,
    GHLDailyBudgetExhausted,
    GHLDuplicateContactError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLRateLimitError,
    GHLServerError,
    GHLValidationError,
)
from airflow_provider_ghl.hooks.endpoints import CONTACT_OPERATIONS, ENDPOINTS
from airflow_provider_ghl.hooks.responses import extract_result, parse_response, transport_error


def _parse(status: int, body: Any, **headers: str) -> Any:
    content = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return parse_response("GET", "/contacts/x", status, headers, content, interval=10.0)


def test_success_returns_the_body() -> None:
    assert _parse(200, {"contact": {"id": "c1"}}) == {"contact": {"id": "c1"}}
    assert _parse(201, b"") is None


def test_json_the_fast_parser_refuses_is_still_read() -> None:
    # orjson parses answers; what it refuses and the standard library reads must come out the same.
    body = _parse(200, b'{"contact": {"id": "c1", "score": NaN, "big": 123456789012345678901234567890}}')
    assert body["contact"]["big"] == 123456789012345678901234567890
    assert body["contact"]["score"] != body["contact"]["score"]  # NaN


def test_truncated_success_body_is_transient() -> None:
    with pytest.raises(GHLServerError) as info:
        _parse(200, b'{"contacts": [')
    assert info.value.transient


@pytest.mark.parametrize(
    ("status", "body", "exc"),
    [
        (401, {"statusCode": 401, "message": "Invalid JWT"}, GHLAuthError),
        (403, {"statusCode": 403, "message": "The token does not have access to this location."}, GHLForbiddenError),
        (400, {"statusCode": 400, "message": "Contact with id x not found"}, GHLNotFoundError),
        (404, {"statusCode": 404, "message": "Cannot GET /x"}, GHLNotFoundError),
        (400, {"statusCode": 400, "message": "Bad Request"}, GHLApiError),
        (502, {"statusCode": 502, "message": "Bad Gateway"}, GHLServerError),
    ],
)
def test_error_mapping(status: int, body: dict[str, Any], exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        _parse(status, {**body, "traceId": "t-1"})
    err = info.value
    assert type(err) is exc
    assert (err.method, err.path, err.status, err.ghl_message, err.trace_id) == (
        "GET", "/contacts/x", status, body["message"], "t-1"
    )  # fmt: skip
    assert "GET /contacts/x" in str(err) and "t-1" in str(err)


def test_validation_messages_are_kept() -> None:
    body = {
        "statusCode": 422,
        "message": ["email must be an email", "x should not exist"],
        "error": "Unprocessable Entity",
    }
    with pytest.raises(GHLValidationError) as info:
        _parse(422, body)
    assert info.value.errors == ["email must be an email", "x should not exist"]
    assert info.value.ghl_error == "Unprocessable Entity"


def test_duplicate_contact_carries_the_existing_id() -> None:
    body = {"statusCode": 400, "message": "This location does not allow duplicated contacts.",
            "meta": {"contactId": "c9", "matchingField": "email"}}  # fmt: skip
    with pytest.raises(GHLDuplicateContactError) as info:
        _parse(400, body)
    assert (info.value.contact_id, info.value.matching_field) == ("c9", "email")


def test_rate_limit_wait_comes_from_the_headers() -> None:
    too_many = {"statusCode": 429, "message": "Too Many Requests"}
    with pytest.raises(GHLRateLimitError) as info:
        _parse(429, too_many, **{"X-RateLimit-Remaining": "0"})
    assert info.value.retry_after == 10.0  # the window, as no Retry-After came
    with pytest.raises(GHLRateLimitError) as info:
        _parse(429, too_many, **{"Retry-After": "3"})
    assert info.value.retry_after == 3.0
    with pytest.raises(GHLRateLimitError) as info:
        _parse(429, too_many, **{"X-RateLimit-Remaining": "40"})
    assert info.value.retry_after is None  # room in the window: plain backoff
    with pytest.raises(GHLDailyBudgetExhausted):
        _parse(429, too_many, **{"X-RateLimit-Remaining": "0", "X-RateLimit-Daily-Remaining": "0"})


def test_extract_result_and_success_flags() -> None:
    assert extract_result(ENDPOINTS["get_contact"], {"contact": {"id": "c"}}, "GET", "/p") == {"id": "c"}
    assert extract_result(ENDPOINTS["delete_contact"], {"succeded": True}, "DELETE", "/p") is None
    assert extract_result(ENDPOINTS["upsert_contact"], {"new": True, "contact": {}}, "POST", "/p") == {
        "new": True, "contact": {}
    }  # fmt: skip
    with pytest.raises(GHLApiError, match="succeded=false"):
        extract_result(ENDPOINTS["delete_task"], {"succeded": False}, "DELETE", "/p")


def test_transport_errors_know_whether_the_request_left() -> None:
    refused = requests.ConnectionError(
        requests.urllib3.exceptions.MaxRetryError(
            None, "/", requests.urllib3.exceptions.NewConnectionError(None, "refused")
        )
    )
    assert transport_error("POST", "/contacts/", refused).sent is False
    assert transport_error("POST", "/contacts/", requests.ConnectTimeout()).sent is False
    dropped = transport_error("GET", "/contacts/x", requests.exceptions.ChunkedEncodingError("cut"))
    assert isinstance(dropped, GHLConnectionError) and dropped.sent and dropped.transient


def test_endpoint_table_covers_every_contacts_operation() -> None:
    spec = json.loads((__import__("pathlib").Path(__file__).parents[1] / "openapi" / "contacts.json").read_text())
    operations = {
        (method.upper(), path.rstrip("/") or "/")
        for path, ops in spec["paths"].items()
        for method in ops
        if method in ("get", "post", "put", "delete")
    }
    table = {(ENDPOINTS[name].method, ENDPOINTS[name].path.rstrip("/")) for name in CONTACT_OPERATIONS}
    assert table == operations
    # Writes that could be duplicated are never repeated after a 5xx or a dropped connection.
    unsafe = {name for name in ENDPOINTS if not ENDPOINTS[name].is_retry_safe}
    assert all(ENDPOINTS[n].method == "POST" for n in unsafe)
    assert "search_contacts" not in unsafe and "create_contact" in unsafe
