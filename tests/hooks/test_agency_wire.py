"""An agency install over the wire: discovery of the locations where the app is installed (v2 and v3 paging),
location tokens minted once and shared by every process of the budget backend, and uninstalled or inactive
locations reported as such."""

from __future__ import annotations

import json
import math
import os
import stat
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from airflow_provider_ghl.exceptions import GHLApiError, GHLConfigError, GHLLocationNotInstalledError
from airflow_provider_ghl.hooks import auth as auth_module
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer
from tests.hooks._oauth_worker import run_at_barrier
from tests.hooks.conftest import remember_secret
from tests.hooks.shared_budget import REDIS_CONN_ID

WORKER = [sys.executable, "-m", "tests.hooks._agency_worker"]
ROOT = Path(__file__).resolve().parents[2]
LOCATIONS = 12


@pytest.fixture(scope="module")
def agency_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(contacts=20, locations=LOCATIONS, seed=5, max_requests=5000, interval_ms=1000) as server:
        remember_secret(server.info["oauth"]["client_secret"], server.info["oauth"]["company_refresh_token"])
        yield server


@pytest.fixture
def agency(
    agency_sandbox: SandboxServer, conn_factory: Callable[..., str], airflow_db: Path, tmp_path: Path
) -> Callable[..., str]:
    """Makes an agency connection (no location of its own) to the reset module sandbox; returns its id."""
    agency_sandbox.reset()
    auth_module.reset_shared_state()

    def make(**extra: Any) -> str:
        conn = agency_sandbox.airflow_connection(0, agency=True)
        extras = {**conn["extra"], "token_variable": f"ghl_agency_{uuid.uuid4().hex[:8]}"}
        extras.pop("location_id")
        extras.setdefault("budget_dir", str(tmp_path / "budgets"))
        return conn_factory(host=conn["host"], login=conn["login"], password=conn["password"], **{**extras, **extra})

    return make


# -- discovery ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("api_version", ["2021-07-28", "v3"])
def test_discovery_walks_every_page_of_the_installed_locations(
    agency: Callable[..., str], agency_sandbox: SandboxServer, api_version: str
) -> None:
    gone = agency_sandbox.location_ids[4]
    agency_sandbox.uninstall(gone)
    hook = GHLHook(agency(api_version=api_version, budget_backend="process"))
    agency_sandbox.clear_stats()

    installed = [record["_id"] for record in hook.iter_installed_locations(page_size=5)]

    assert sorted(installed) == sorted(loc for loc in agency_sandbox.location_ids if loc != gone)
    everything = {r["_id"]: r["isInstalled"] for r in hook.iter_installed_locations(is_installed=None, page_size=5)}
    assert everything == {loc: loc != gone for loc in agency_sandbox.location_ids}
    assert [r["_id"] for r in hook.iter_installed_locations(is_installed=False)] == [gone]
    route = "GET /oauth/installed-locations" if api_version == "v3" else "GET /oauth/installedLocations"
    pages = math.ceil((LOCATIONS - 1) / 5) + math.ceil(LOCATIONS / 5) + 1
    assert agency_sandbox.stats()["requests_by_route"] == {"POST /oauth/token": 1, route: pages}


def test_discovery_needs_an_agency_install_and_the_app_id(
    agency: Callable[..., str], agency_sandbox: SandboxServer, conn_factory: Callable[..., str]
) -> None:
    with pytest.raises(GHLConfigError, match="app_id"):
        list(GHLHook(agency(app_id="")).iter_installed_locations())
    loc = agency_sandbox.info["locations"][0]
    pit = conn_factory(host=agency_sandbox.base_url, password=loc["private_token"], location_id=loc["id"])
    with pytest.raises(GHLConfigError, match="not an agency install"):
        list(GHLHook(pit).iter_installed_locations())
    with pytest.raises(GHLApiError, match="App not found"):
        list(GHLHook(agency(app_id="0" * 24)).iter_installed_locations())
    with pytest.raises(GHLConfigError, match="page_size"):
        list(GHLHook(agency()).iter_installed_locations(page_size=101))


def test_async_discovery_lists_the_same_locations(agency: Callable[..., str], agency_sandbox: SandboxServer) -> None:
    import asyncio

    hook = GHLHook(agency(api_version="v3"))
    hook.refresh_oauth_token()  # the async funnel never refreshes: a worker stored the set first

    async def walk() -> list[str]:
        return [record["_id"] async for record in hook.aiter_installed_locations(page_size=7)]

    assert sorted(asyncio.run(walk())) == sorted(agency_sandbox.location_ids)


# -- location tokens shared between processes -----------------------------------------------------------------
@pytest.mark.parametrize("backend", ["process", "host", "redis"])
def test_each_location_token_is_minted_once_for_every_process_of_the_backend(
    backend: str,
    agency: Callable[..., str],
    agency_sandbox: SandboxServer,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    extra: dict[str, Any] = {"budget_backend": backend}
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        redis.Redis(port=server.port).flushall()
        monkeypatch.setenv(f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}", json.dumps(server.airflow_connection()))
        extra["budget_redis_conn_id"] = REDIS_CONN_ID
    conn_id = agency(**extra)
    GHLHook(conn_id).refresh_oauth_token()  # the agency's token set, stored for the workers
    agency_sandbox.clear_stats()
    locations = agency_sandbox.location_ids[:5]

    worker = lambda ready, go: [*WORKER, conn_id, ready, go, *locations]  # noqa: E731
    for returncode, out, err in run_at_barrier([worker] * 3, tmp_path, cwd=ROOT, env=os.environ.copy()):
        assert returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"totals": [20] * len(locations)}

    routes = agency_sandbox.stats()["requests_by_route"]
    # Shared: the three processes together mint each location's token once. Per process: each mints its own.
    mints = len(locations) * (3 if backend == "process" else 1)
    assert routes.get("POST /oauth/locationToken") == mints
    assert routes.get("POST /oauth/token") is None  # the stored agency set served every process
    assert routes["POST /contacts/search"] == 3 * len(locations)


def test_minting_and_discovery_spend_the_companys_budget_not_the_locations(
    agency: Callable[..., str], agency_sandbox: SandboxServer
) -> None:
    from airflow_provider_ghl.hooks.budget import budget_limiter
    from airflow_provider_ghl.hooks.endpoints import ENDPOINTS
    from airflow_provider_ghl.hooks.ratelimit import reset_limiters

    reset_limiters()  # the windows of this test's requests alone
    hook = GHLHook(agency(budget_backend="process", interval_ms=60_000))
    locations = agency_sandbox.location_ids[:3]
    for location in locations:
        assert hook.search_contacts(page_limit=1, location_id=location)["total"] == 20
    assert len(list(hook.iter_installed_locations(page_size=100))) == LOCATIONS

    def spent(key: object) -> int:
        return budget_limiter(hook.config, key)._in_window(time.monotonic())

    company = hook.provider_for(ENDPOINTS["get_installed_locations"]).rate_key(None)
    assert spent(company) == len(locations) + 1  # three mints and one listing page
    assert [spent(hook.auth.rate_key(location)) for location in locations] == [1, 1, 1]  # its search alone


def test_a_refused_shared_token_is_minted_again_once(
    agency: Callable[..., str], agency_sandbox: SandboxServer, tmp_path: Path
) -> None:
    conn_id = agency(budget_backend="host")
    location = agency_sandbox.location_ids[2]
    first = GHLHook(conn_id)
    assert first.search_contacts(page_limit=1, location_id=location)["total"] == 20
    token_files = [p for p in (tmp_path / "budgets").iterdir() if p.name.startswith("token-")]
    assert len(token_files) == 1
    assert stat.S_IMODE(token_files[0].stat().st_mode) == 0o600
    assert token_files[0].read_bytes().startswith(b"gAAAAA")  # a Fernet token: encrypted with Airflow's key

    agency_sandbox.expire_tokens()  # GHL takes neither the location token nor the agency's any more
    agency_sandbox.clear_stats()
    assert first.search_contacts(page_limit=1, location_id=location)["total"] == 20
    auth_module.reset_shared_state()  # another process: the stored agency set, the new shared token, no mint
    assert GHLHook(conn_id).search_contacts(page_limit=1, location_id=location)["total"] == 20
    routes = agency_sandbox.stats()["requests_by_route"]
    # The refused search; a mint with the expired agency token (refused), its refresh, the mint; the search
    # again; then the other process's search alone.
    assert routes == {"POST /contacts/search": 3, "POST /oauth/locationToken": 2, "POST /oauth/token": 1}


def test_uninstalled_and_inactive_locations_say_so(
    agency: Callable[..., str], agency_sandbox: SandboxServer, conn_factory: Callable[..., str], tmp_path: Path
) -> None:
    conn_id = agency(budget_backend="host")
    gone, paused = agency_sandbox.location_ids[1], agency_sandbox.location_ids[3]
    hook = GHLHook(conn_id)
    assert hook.search_contacts(page_limit=1, location_id=gone)["total"] == 20

    agency_sandbox.uninstall(gone)  # GHL drops the app's tokens of the location
    with pytest.raises(GHLLocationNotInstalledError, match="no longer installed") as caught:
        hook.search_contacts(page_limit=1, location_id=gone)
    assert caught.value.location_id == gone

    hook.forget_location_token(gone)  # what an UNINSTALL event does: nothing of it is left to share
    token_files = [p for p in (tmp_path / "budgets").iterdir() if p.name.startswith("token-")]
    assert [p.stat().st_size for p in token_files] == [0]

    # A location-level install whose location GHL deactivated: its refresh answers "Location is not active".
    location = next(loc for loc in agency_sandbox.info["locations"] if loc["id"] == paused)
    remember_secret(location["refresh_token"])
    own = conn_factory(
        host=agency_sandbox.base_url, login=agency_sandbox.info["oauth"]["client_id"],
        password=agency_sandbox.info["oauth"]["client_secret"], auth_type="oauth", location_id=paused,
        refresh_token=location["refresh_token"], token_variable=f"ghl_loc_{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    agency_sandbox.set_active(paused, False)
    with pytest.raises(GHLLocationNotInstalledError, match="Location is not active") as caught:
        GHLHook(own).search_contacts(page_limit=1)
    assert caught.value.location_id == paused
    agency_sandbox.set_active(paused, True)  # the refresh token was not spent: it works again
    assert GHLHook(own).search_contacts(page_limit=1)["total"] == 20


# -- hostile listings (the pager's own rules; the funnel checked each answer's shape) --------------------------
def test_a_listing_that_repeats_its_page_token_or_lists_a_location_without_id_is_refused() -> None:
    from airflow_provider_ghl.exceptions import GHLUnexpectedResponseError
    from airflow_provider_ghl.hooks.installs import InstalledLocationsPager

    pager = InstalledLocationsPager("C1", "A1", v3=True, is_installed=True, page_size=1)
    page = {"items": [{"_id": "L1"}], "pagination": {"hasNextPage": True, "nextPageToken": "t1"}}
    assert pager.take(page) == [{"_id": "L1"}]
    assert pager.next_call().params["pageToken"] == "t1"  # type: ignore[union-attr]
    with pytest.raises(GHLUnexpectedResponseError, match="already followed"):
        pager.take(page)
    v2 = InstalledLocationsPager("C1", "A1", v3=False, is_installed=None, page_size=2)
    with pytest.raises(GHLUnexpectedResponseError, match="without an _id"):
        v2.take({"locations": [{"_id": "L1"}, {"name": "no id"}], "count": 2})
    v2 = InstalledLocationsPager("C1", "A1", v3=False, is_installed=None, page_size=2)
    assert v2.take({"locations": [{"_id": "L1"}, {"_id": "L2"}], "count": 2}) == [{"_id": "L1"}, {"_id": "L2"}]
    assert v2.next_call() is None  # a full page that reaches the count is the last


# -- the probe: which locations changed, one request each, in one task -----------------------------------------
def test_the_probe_returns_the_locations_that_changed_and_leaves_out_the_uninstalled(
    agency: Callable[..., str], agency_sandbox: SandboxServer, capfd: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from airflow_provider_ghl.operators.probe import GHLChangedLocationsOperator

    conn_id = agency()
    ids = agency_sandbox.location_ids
    start = datetime.now(UTC) - timedelta(seconds=5)
    for location in (ids[2], ids[9]):
        agency_sandbox.touch_contacts(location, count=2)
    agency_sandbox.uninstall(ids[5])
    agency_sandbox.clear_stats()
    pairs = [{"location_id": loc, "ghl_conn_id": conn_id} for loc in ids]
    probe = GHLChangedLocationsOperator(
        task_id="changed", locations=pairs, updated_since=start, updated_until=datetime.now(UTC) + timedelta(seconds=5)
    )

    changed = probe.execute(context={})  # type: ignore[arg-type]

    assert changed == [{"location_id": ids[2], "ghl_conn_id": conn_id}, {"location_id": ids[9], "ghl_conn_id": conn_id}]
    out, err = capfd.readouterr()
    sys.stdout.write(out + err)  # still seen by the check that no token reached the logs
    assert out.count(f"Leaving out location {ids[5]}") == 1
    routes = agency_sandbox.stats()["requests_by_route"]
    # One refresh (the worker readies the agency set), a mint per location (refused for the uninstalled one),
    # one search per installed location.
    assert routes == {
        "POST /oauth/token": 1,
        "POST /oauth/locationToken": LOCATIONS,
        "POST /contacts/search": LOCATIONS - 1,
    }


@pytest.mark.parametrize(
    ("locations", "field"),
    [
        ("loc1", "locations"),
        ({"location_id": "a", "ghl_conn_id": "b"}, "locations"),
        ([{"location_id": "a"}], "locations"),
        ([{"location_id": "a", "ghl_conn_id": "b", "extra": 1}], "locations"),
        ([{"location_id": "../x", "ghl_conn_id": "b"}], "locations.location_id"),
    ],
)
def test_the_probe_refuses_a_malformed_location_list_before_any_request(locations: Any, field: str) -> None:
    from datetime import UTC, datetime

    from airflow_provider_ghl.exceptions import GHLInputError
    from airflow_provider_ghl.operators.probe import GHLChangedLocationsOperator

    probe = GHLChangedLocationsOperator(
        task_id="changed", locations=locations, updated_since=datetime(2026, 1, 1, tzinfo=UTC),
        updated_until=datetime(2026, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    with pytest.raises(GHLInputError) as caught:
        probe.execute(context={})  # type: ignore[arg-type]
    assert caught.value.field == field
