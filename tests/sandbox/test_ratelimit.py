"""Rate budgets: X-RateLimit-* headers everywhere, the sliding burst window, the daily budget, 429s."""

from __future__ import annotations

import time

import pytest
import requests

from ghl_sandbox.testing import SandboxError
from tests.sandbox.conftest import RATE_HEADERS, Api

TOO_MANY = {"statusCode": 429, "message": "Too Many Requests"}


def _ping(api: Api, token: str | None = "") -> requests.Response:
    return api.get(f"/locations/{api.location_id}/customFields", token=token)


def _oauth_access(api: Api) -> str:
    code = api.server.authorize(location_id=api.location_id)
    return api.oauth_token(grant_type="authorization_code", code=code).json()["access_token"]


def test_defaults_in_headers(api: Api) -> None:
    resp = _ping(api)
    assert resp.headers["X-RateLimit-Max"] == "100"
    assert resp.headers["X-RateLimit-Interval-Milliseconds"] == "10000"
    assert resp.headers["X-RateLimit-Limit-Daily"] == "200000"
    assert resp.headers["X-RateLimit-Remaining"] == "99"
    assert resp.headers["X-RateLimit-Daily-Remaining"] == "199999"


def test_headers_on_every_response(api: Api) -> None:
    cid = api.first_contact()["id"]
    responses = [
        (200, _ping(api)),
        (201, api.post(f"/contacts/{cid}/notes", json={"body": "x"})),
        (400, api.get(f"/contacts/{cid}", version=None)),
        (400, api.get("/contacts/nope")),
        (401, api.get(f"/contacts/{cid}", token="nope")),
        (403, api.search(locationId="elsewhere")),
        (404, api.get("/nothing/here")),
        (422, api.search(pageLimit=501)),
        (401, api.oauth_token(grant_type="refresh_token", client_secret="wrong")),
    ]
    api.server.set_faults(error_rate=1, error_statuses=[503])
    responses.append((503, _ping(api)))
    api.server.set_faults(storm_rate=1)
    responses.append((429, _ping(api)))
    api.server.set_faults()
    api.server.set_limits(max_requests=1)
    _ping(api)
    responses.append((429, _ping(api)))
    for status, resp in responses:
        assert resp.status_code == status, (resp.request.method, resp.request.url, resp.text)
        missing = [h for h in RATE_HEADERS if h not in resp.headers]
        assert not missing, (status, resp.request.url, missing)


def test_storm_429s_spend_no_budget(api: Api) -> None:
    api.server.set_faults(storm_rate=1)
    storm = [_ping(api) for _ in range(3)]
    assert [r.status_code for r in storm] == [429] * 3
    assert {r.headers["X-RateLimit-Remaining"] for r in storm} == {"100"}
    api.server.set_faults()
    assert _ping(api).headers["X-RateLimit-Remaining"] == "99"


def test_burst_window(api: Api) -> None:
    api.server.set_limits(max_requests=5, interval_ms=1000)
    started = time.monotonic()
    remaining = [_ping(api).headers["X-RateLimit-Remaining"] for _ in range(5)]
    assert remaining == ["4", "3", "2", "1", "0"]
    refused = _ping(api)
    assert refused.status_code == 429
    assert refused.json() == TOO_MANY
    assert "Retry-After" not in refused.headers
    assert refused.headers["X-RateLimit-Max"] == "5"
    assert refused.headers["X-RateLimit-Interval-Milliseconds"] == "1000"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    # The window slides: a second after those five, the budget is back (refused requests used none of it).
    time.sleep(max(0.0, started + 1.1 - time.monotonic()))
    back = _ping(api)
    assert back.status_code == 200
    assert back.headers["X-RateLimit-Remaining"] == "4"


def test_budgets_are_per_token_and_location(api: Api, api2: Api) -> None:
    api.server.set_limits(max_requests=3, interval_ms=60_000)
    oauth = _oauth_access(api)
    assert [_ping(api).status_code for _ in range(4)] == [200, 200, 200, 429]
    # Another location's token, and the app's OAuth token for the same location, have budgets of their own.
    other = _ping(api2)
    assert (other.status_code, other.headers["X-RateLimit-Remaining"]) == (200, "2")
    assert _ping(api, token=oauth).status_code == 200


def test_app_tokens_share_the_location_budget(api: Api) -> None:
    # GHL budgets per app and location: every access token the app holds for the location draws on one budget.
    api.server.set_limits(max_requests=3, interval_ms=60_000)
    first, second = _oauth_access(api), _oauth_access(api)
    assert [_ping(api, token=first).status_code for _ in range(2)] == [200, 200]
    assert _ping(api, token=second).status_code == 200
    assert _ping(api, token=second).status_code == 429
    assert _ping(api, token=first).status_code == 429


def test_daily_budget(api: Api, api2: Api) -> None:
    api.server.set_limits(daily_limit=3)
    daily = [_ping(api).headers["X-RateLimit-Daily-Remaining"] for _ in range(3)]
    assert daily == ["2", "1", "0"]
    refused = _ping(api)
    assert (refused.status_code, refused.json()) == (429, TOO_MANY)
    assert refused.headers["X-RateLimit-Limit-Daily"] == "3"
    assert refused.headers["X-RateLimit-Daily-Remaining"] == "0"
    assert "Retry-After" not in refused.headers
    assert _ping(api2).status_code == 200


def test_429s_are_counted(api: Api) -> None:
    api.server.set_limits(max_requests=2, interval_ms=60_000)
    statuses = [_ping(api).status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    assert api.server.stats()["responses_429"] == 3


def test_limits_are_validated(api: Api) -> None:
    with pytest.raises(SandboxError, match="422"):
        api.server.set_limits(max_requests=0)
    with pytest.raises(SandboxError, match="422"):
        api.server.admin("PUT", "limits", {"burst": 5})


def test_limits_from_start_up(api: Api) -> None:
    api.server.reset(max_requests=7, interval_ms=500, daily_limit=50)
    resp = _ping(api)
    assert [resp.headers[h] for h in ("X-RateLimit-Max", "X-RateLimit-Interval-Milliseconds")] == ["7", "500"]
    assert resp.headers["X-RateLimit-Daily-Remaining"] == "49"
    # A plain reset returns to the start-up limits.
    api.server.reset()
    assert _ping(api).headers["X-RateLimit-Max"] == "100"
