"""``/_sandbox/*``: statistics, reset, and the seeded, deterministic data behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests

from ghl_sandbox.testing import SandboxError, SandboxServer
from tests.sandbox.conftest import Api


# -- stats --------------------------------------------------------------------------------------------------
def test_stats_count_requests_by_route_and_status(api: Api) -> None:
    cid = api.first_contact()["id"]
    api.server.clear_stats()
    api.get(f"/contacts/{cid}")
    api.get(f"/contacts/{cid}/")
    api.get("/contacts/nope")
    api.get(f"/contacts/{cid}", token="nope")
    api.post(f"/contacts/{cid}/notes", json={"body": "hi"})
    api.search()
    stats = api.server.stats()
    assert stats["requests_by_route"] == {
        "GET /contacts/{contactId}": 4,
        "POST /contacts/{contactId}/notes": 1,
        "POST /contacts/search": 1,
    }
    assert stats["requests_total"] == 6
    assert stats["responses_by_status"] == {"200": 3, "201": 1, "400": 1, "401": 1}
    assert stats["writes"] == 1
    assert (stats["responses_429"], stats["faults"], stats["in_flight"]) == (0, {}, 0)


def test_stats_count_429s_faults_and_refresh_reuse(api: Api) -> None:
    api.server.set_limits(max_requests=1, interval_ms=60_000)
    assert [api.search().status_code for _ in range(3)] == [200, 429, 429]
    api.server.set_limits(max_requests=100)
    api.server.set_faults(error_rate=1)
    api.get("/contacts/nope")
    api.server.set_faults()
    refresh = api.server.info["locations"][0]["refresh_token"]
    api.oauth_token(grant_type="refresh_token", refresh_token=refresh)
    api.oauth_token(grant_type="refresh_token", refresh_token=refresh)
    api.oauth_token(grant_type="refresh_token", refresh_token=refresh)
    stats = api.server.stats()
    assert stats["responses_429"] == 2
    assert stats["faults"] == {"error": 1}
    assert (stats["tokens_refreshed"], stats["refresh_tokens_reused"]) == (1, 2)
    cleared = api.server.clear_stats()
    assert (cleared["requests_total"], cleared["responses_429"], cleared["refresh_tokens_reused"]) == (0, 0, 0)


def test_peak_concurrency(api: Api) -> None:
    api.server.set_faults(latency_ms=300)
    url = f"{api.base_url}/locations/{api.location_id}/customFields"
    headers = api.server.headers(0)
    barrier = threading.Barrier(8)

    def call(_: int) -> int:
        barrier.wait()
        return requests.get(url, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(call, range(8))) == [200] * 8
    stats = api.server.stats()
    assert stats["peak_concurrency"] >= 4
    assert stats["in_flight"] == 0


# -- reset --------------------------------------------------------------------------------------------------
def test_reset_restores_the_seeded_state(api: Api, api2: Api) -> None:
    server = api.server
    ids_before = server.contact_ids(api.location_id)
    victim = api.get(f"/contacts/{ids_before[0]}").json()["contact"]
    changed = api.get(f"/contacts/{ids_before[1]}").json()["contact"]
    notes_before = api.get(f"/contacts/{changed['id']}/notes").json()

    api.delete(f"/contacts/{victim['id']}")
    api.put(f"/contacts/{changed['id']}", json={"city": "Elsewhere", "tags": []})
    api.post(f"/contacts/{changed['id']}/notes", json={"body": "temporary"})
    api.new_contact(email="temp@example.org")
    api2.new_contact(email="temp2@example.org")
    server.set_faults(latency_ms=1)
    server.set_limits(max_requests=3)

    info = server.reset()
    assert info["limits"]["max_requests"] == 100
    assert server.contact_ids(api.location_id) == ids_before
    assert len(server.contact_ids(api2.location_id)) == 200
    assert api.get(f"/contacts/{victim['id']}").json()["contact"] == victim  # dates included
    assert api.get(f"/contacts/{changed['id']}").json()["contact"] == changed
    assert api.get(f"/contacts/{changed['id']}/notes").json() == notes_before
    assert server.admin("GET", "faults")["latency_ms"] == 0
    assert server.stats()["requests_total"] == 3


def test_reset_with_settings_lasts_until_the_next_reset(api: Api) -> None:
    info = api.server.reset(contacts=10, token_ttl=60)
    assert [loc["contacts"] for loc in info["locations"]] == [10, 10]
    assert info["limits"]["token_ttl"] == 60
    assert api.search().json()["total"] == 10
    info = api.server.reset()
    assert [loc["contacts"] for loc in info["locations"]] == [200, 200]
    assert info["limits"]["token_ttl"] == 86_399


def test_reset_refuses_unknown_settings(api: Api) -> None:
    with pytest.raises(SandboxError, match="unknown sandbox setting"):
        api.server.reset(colour="blue")


def test_admin_routes_skip_the_gate(api: Api) -> None:
    api.server.set_faults(storm_rate=1, error_rate=1)
    # No token, no Version header, faults on: admin still answers.
    assert requests.get(f"{api.base_url}/_sandbox/stats", timeout=10).status_code == 200
    assert requests.get(f"{api.base_url}/_sandbox/info", timeout=10).json()["seed"] == 1


# -- seeded data --------------------------------------------------------------------------------------------
def _dt(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _snapshot(server: SandboxServer) -> dict[str, Any]:
    info = server.info
    return {
        "company": info["company_id"],
        "oauth": info["oauth"],
        "locations": [{k: v for k, v in loc.items()} for loc in info["locations"]],
        "contacts": {loc: server.contact_ids(loc) for loc in server.location_ids},
    }


@contextmanager
def _started(*servers: SandboxServer) -> Iterator[tuple[SandboxServer, ...]]:
    """Start several sandboxes at once (each takes about a second, mostly imports) and stop them after."""
    with ExitStack() as stack, ThreadPoolExecutor(len(servers)) as pool:
        for server in servers:
            stack.callback(server.stop)
        list(pool.map(SandboxServer.start, servers))
        yield servers


def test_same_seed_same_ids_and_credentials_different_seed_different() -> None:
    settings = {"contacts": 30, "locations": 2}
    servers = (SandboxServer(seed=7, **settings), SandboxServer(seed=7, **settings), SandboxServer(seed=8, **settings))
    with _started(*servers) as (one, two, other):
        first, second, third = _snapshot(one), _snapshot(two), _snapshot(other)
        assert first == second
        assert one.base_url != two.base_url
        for key in ("company", "oauth", "locations", "contacts"):
            assert first[key] != third[key], key
        pits = {loc["private_token"] for loc in first["locations"]} & {
            loc["private_token"] for loc in third["locations"]
        }
        assert not pits


def test_same_seed_and_anchor_same_data() -> None:
    settings = {"contacts": 20, "locations": 1, "seed": 4, "anchor": "2026-01-15T12:00:00Z"}
    bodies = []
    with _started(SandboxServer(**settings), SandboxServer(**settings)) as servers:
        for server in servers:
            api = Api(server)
            contacts = api.search(pageLimit=500).json()["contacts"]
            cid = contacts[0]["id"]
            children = {k: api.get(f"/contacts/{cid}/{k}").json() for k in ("tasks", "notes", "appointments")}
            bodies.append((contacts, children, server.info["anchor"]))
    assert bodies[0] == bodies[1]
    assert bodies[0][2] == "2026-01-15T12:00:00.000Z"


def test_seeded_data_is_realistic(api: Api) -> None:
    contacts = api.search(pageLimit=500).json()["contacts"]
    anchor = api.server.info["anchor"]
    assert all(c["dateAdded"] <= c["dateUpdated"] <= anchor for c in contacts)
    added = sorted(_dt(c["dateAdded"]) for c in contacts)
    assert (added[-1] - added[0]).days > 365  # spread over about two years
    day_before = (_dt(anchor) - timedelta(days=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert any(c["dateUpdated"] >= day_before for c in contacts)  # some changed recently, for incremental windows
    assert len({c["email"] for c in contacts}) == len({c["phone"] for c in contacts}) == 200
    assert sum(bool(c["tags"]) for c in contacts) > 100
    assert sum(bool(c["customFields"]) for c in contacts) > 100
    assert sum(bool(c["businessId"]) for c in contacts) > 20
    assert any(c["dnd"] for c in contacts)
    assert len(api.server.info["locations"][0]["businesses"]) >= 2
    # Both locations have their own contacts.
    assert set(api.server.contact_ids(api.server.location_ids[0])).isdisjoint(
        api.server.contact_ids(api.server.location_ids[1])
    )
