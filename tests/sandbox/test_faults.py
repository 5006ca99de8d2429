"""Injected faults: 5xx, dropped connections, 429 storms, latency, contacts changing under a pager; writes once."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import requests

from ghl_sandbox.testing import SandboxError
from tests.sandbox.conftest import Api

BROKEN = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)


def _ping(api: Api) -> requests.Response:
    return api.get(f"/locations/{api.location_id}/customFields")


def test_error_rate_gives_5xx(api: Api) -> None:
    api.server.set_faults(error_rate=1)
    statuses = [_ping(api).status_code for _ in range(12)]
    assert set(statuses) <= {500, 502, 503}
    assert len(set(statuses)) > 1  # the default mix, not one status
    api.server.set_faults(error_rate=1, error_statuses=[502])
    resp = _ping(api)
    assert (resp.status_code, resp.json()) == (502, {"statusCode": 502, "message": "Bad Gateway"})
    assert api.server.stats()["faults"]["error"] == 13
    api.server.set_faults()
    assert _ping(api).status_code == 200


def test_drop_rate_breaks_the_connection(api: Api) -> None:
    api.server.set_faults(drop_rate=1)
    for _ in range(3):
        with pytest.raises(BROKEN):
            _ping(api)
    assert api.server.stats()["faults"]["drop"] == 3
    api.server.set_faults()
    assert _ping(api).status_code == 200  # the client's session recovers on a new connection


def test_storm_rate_gives_429(api: Api) -> None:
    api.server.set_faults(storm_rate=1)
    resp = _ping(api)
    assert (resp.status_code, resp.json()) == (429, {"statusCode": 429, "message": "Too Many Requests"})
    assert "Retry-After" not in resp.headers
    assert api.server.stats()["faults"]["storm_429"] == 1


def test_storm_seconds_then_calm(api: Api, api2: Api) -> None:
    api.server.set_faults(storm_seconds=1)
    started = time.monotonic()
    assert _ping(api).status_code == 429
    assert _ping(api2).status_code == 429  # a storm hits every token
    time.sleep(max(0.0, started + 1.1 - time.monotonic()))
    assert _ping(api).status_code == 200


def test_latency_delays_responses(api: Api) -> None:
    api.server.set_faults(latency_ms=300)
    started = time.perf_counter()
    assert _ping(api).status_code == 200
    assert time.perf_counter() - started >= 0.29
    api.server.set_faults(latency_ms=100, jitter_ms=100)
    started = time.perf_counter()
    _ping(api)
    assert time.perf_counter() - started >= 0.09


def test_faults_can_be_read_and_are_validated(api: Api) -> None:
    assert api.server.admin("GET", "faults")["error_rate"] == 0
    api.server.set_faults(error_rate=0.25, latency_ms=5)
    faults = api.server.admin("GET", "faults")
    assert (faults["error_rate"], faults["latency_ms"], faults["drop_rate"]) == (0.25, 5, 0)
    for bad in ({"error_rate": 2}, {"latency_ms": -1}, {"thunder": 1}):
        with pytest.raises(SandboxError, match="422"):
            api.server.set_faults(**bad)


def test_reads_are_not_tagged_before_or_after_write(api: Api) -> None:
    api.server.set_faults(error_rate=1)
    _ping(api)
    api.search()  # a POST that only reads
    faults = api.server.stats()["faults"]
    assert faults == {"error": 2}


@pytest.mark.parametrize("fault", ["error_rate", "drop_rate"])
def test_failed_writes_happen_exactly_once_or_not_at_all(api: Api, fault: str) -> None:
    """A write hit by a fault was either applied or not; the stats ledger says which, and a retry tells."""
    existing = api.first_contact()
    emails = [f"once{i}@example.org" for i in range(20)]
    api.server.clear_stats()
    api.server.set_faults(**{fault: 1})
    for email in [*emails, existing["email"], existing["email"]]:  # two writes the route itself refuses
        try:
            resp = api.post("/contacts/", json={"locationId": api.location_id, "email": email})
        except BROKEN:
            assert fault == "drop_rate"
        else:
            assert fault == "error_rate"
            assert resp.status_code in (500, 502, 503)
    api.server.set_faults()

    created = {}
    for email in emails:
        hits = api.search(filters=[{"field": "email", "operator": "eq", "value": email}]).json()["contacts"]
        assert len(hits) <= 1  # never half-applied, never twice
        if hits:
            created[email] = hits[0]["id"]
    assert len(api.server.contact_ids(api.location_id)) == 200 + len(created)
    assert 0 < len(created) < len(emails)  # both outcomes happen

    faults = api.server.stats()["faults"]
    kind = "error" if fault == "error_rate" else "drop"
    assert faults[kind] == len(emails) + 2
    assert faults["before_write"] + faults["after_write"] == len(emails) + 2
    assert faults["after_write"] == len(created) == api.server.stats()["writes"]

    # A client that retries learns which: an applied create now reports the duplicate, with its id.
    for email in emails:
        resp = api.post("/contacts/", json={"locationId": api.location_id, "email": email})
        if email in created:
            assert (resp.status_code, resp.json()["meta"]["contactId"]) == (400, created[email])
        else:
            assert resp.status_code == 201
    assert len(api.server.contact_ids(api.location_id)) == 200 + len(emails)


def test_failed_deletes_happen_exactly_once_or_not_at_all(api: Api) -> None:
    ids = [c["id"] for c in api.search(pageLimit=10).json()["contacts"]]
    api.server.set_faults(error_rate=1)
    assert {api.delete(f"/contacts/{cid}").status_code for cid in ids} <= {500, 502, 503}
    api.server.set_faults()
    gone = [cid for cid in ids if api.get(f"/contacts/{cid}").status_code == 400]
    faults = api.server.stats()["faults"]
    assert faults["after_write"] == len(gone)
    assert faults["before_write"] == len(ids) - len(gone)


def test_mutate_on_search_moves_contacts_while_paging(api: Api) -> None:
    started = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    api.server.set_faults(mutate_on_search=5)
    walked = api.search_all(page_limit=50, sort=[{"field": "dateUpdated", "direction": "asc"}])
    api.server.set_faults()
    ids = [c["id"] for c in walked]
    # Touched contacts move to the end of a dateUpdated sort: none is lost, some are read twice.
    assert set(ids) == set(api.server.contact_ids(api.location_id))
    assert len(ids) > 200
    assert any(c["dateUpdated"] >= started for c in walked)
    recent = api.search(
        pageLimit=500, filters=[{"field": "dateUpdated", "operator": "range", "value": {"gte": started}}]
    )
    pages_served = -(-len(ids) // 50)
    assert 5 <= recent.json()["total"] <= 5 * pages_served


def test_touch_contacts_between_pages(api: Api) -> None:
    first = api.search(pageLimit=50, sort=[{"field": "dateUpdated", "direction": "asc"}]).json()["contacts"]
    touched = api.server.touch_contacts(api.location_id, ids=[first[0]["id"]])
    assert touched == [first[0]["id"]]
    again = api.get(f"/contacts/{first[0]['id']}").json()["contact"]
    assert again["dateUpdated"] > first[0]["dateUpdated"]
    assert len(api.server.touch_contacts(api.location_id, count=3)) == 3
