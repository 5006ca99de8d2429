"""Many installations of one app over the wire: each location that installs the app through the install flow
gets a rotating token set of its own (``<token_variable>__location_<id>``), next to the connection's; the hook
uses it for that location, refreshes it alone, across racing processes once; an uninstall deletes it."""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_ghl.exceptions import GHLConfigError, GHLInstallError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.installations import LOCATION_INFIX
from airflow_provider_ghl.hooks.tokens import TokenSet, VariableTokenStore
from ghl_sandbox.testing import SandboxServer
from tests.hooks._oauth_worker import run_at_barrier
from tests.hooks.conftest import remember_secret

WORKER = Path(__file__).with_name("_oauth_worker.py")
REDIRECT = "https://airflow.example.com/ghl/oauth/callback"


def _code(sandbox: SandboxServer, *, location_id: str | None = None, company_id: str | None = None) -> str:
    """What GHL's authorization page hands the redirect URL when the user picks this location or company."""
    return sandbox.authorize(location_id, company_id, redirect_uri=REDIRECT)


@pytest.fixture
def app(fast_sandbox: SandboxServer, conn_factory: Callable[..., str], airflow_db: Path) -> Callable[..., str]:
    """Makes an OAuth app connection (no installation of its own unless ``extra`` gives one); returns its id."""

    def make(**extra: str) -> str:
        info = fast_sandbox.info
        return conn_factory(
            host=fast_sandbox.base_url, login=info["oauth"]["client_id"], password=info["oauth"]["client_secret"],
            auth_type="oauth", token_variable=f"ghl_oauth_apps_{uuid.uuid4().hex[:8]}", **extra,
        )  # fmt: skip

    return make


def _stored(hook: GHLHook, location_id: str) -> TokenSet:
    tokens = VariableTokenStore(f"{hook.config.token_variable}{LOCATION_INFIX}{location_id}").load()
    assert tokens is not None
    remember_secret(tokens.access_token, tokens.refresh_token)
    return tokens


def _expire(hook: GHLHook, location_id: str) -> TokenSet:
    """Make the stored set of ``location_id``'s installation look expired (its refresh token still valid)."""
    tokens = _stored(hook, location_id)
    expired = TokenSet.from_dict({**tokens.to_dict(), "expires_at": time.time() - 10})
    VariableTokenStore(f"{hook.config.token_variable}{LOCATION_INFIX}{location_id}").save(expired)
    return expired


def test_each_location_that_installs_the_app_gets_its_own_rotating_set(
    fast_sandbox: SandboxServer, app: Callable[..., str]
) -> None:
    conn_id = app()  # the app alone: no location_id, no token set of its own
    first, second = fast_sandbox.location_ids
    hook = GHLHook(conn_id)
    for location in (second, first):
        tokens = hook.install_from_code(_code(fast_sandbox, location_id=location), REDIRECT)
        assert (tokens.user_type, tokens.location_id) == ("Location", location)
    assert VariableTokenStore(hook.config.token_variable).load() is None  # the connection's own: untouched
    assert hook.location_installations() == sorted([first, second])
    assert (_stored(hook, first).location_id, _stored(hook, second).location_id) == (first, second)

    # A new process's hooks: each location is read with its own set, nothing exchanged, refreshed or minted.
    fast_sandbox.clear_stats()
    for location in (first, second):
        contact = fast_sandbox.contact_ids(location)[0]
        assert GHLHook(conn_id, location_id=location).get_contact(contact)["id"] == contact
    routes = fast_sandbox.stats()["requests_by_route"]
    assert not [route for route in routes if "oauth" in route.lower()], routes

    # The first location's set expires: it alone is refreshed, and rotated in its own Variable.
    old_first, old_second = _expire(hook, first), _stored(hook, second)
    from airflow_provider_ghl.hooks.auth import reset_shared_state

    reset_shared_state()  # a new process: nothing in memory
    fast_sandbox.clear_stats()
    for location in (first, second):
        GHLHook(conn_id, location_id=location).get_contact(fast_sandbox.contact_ids(location)[1])
    assert fast_sandbox.stats()["tokens_refreshed"] == 1
    assert _stored(hook, first).refresh_token != old_first.refresh_token
    assert _stored(hook, second).refresh_token == old_second.refresh_token

    # The connection has no location of its own: a hook for none says what is missing.
    with pytest.raises(GHLConfigError, match="no OAuth token"):
        GHLHook(conn_id).get_contact("any")


def test_racing_processes_refresh_a_location_installation_once(
    fast_sandbox: SandboxServer, app: Callable[..., str], tmp_path: Path
) -> None:
    conn_id = app()
    location = fast_sandbox.location_ids[1]
    hook = GHLHook(conn_id)
    hook.install_from_code(_code(fast_sandbox, location_id=location), REDIRECT)
    expired = _expire(hook, location)
    fast_sandbox.clear_stats()

    contacts = fast_sandbox.contact_ids(location)[:3]
    worker = lambda ready, go: [sys.executable, str(WORKER), f"{conn_id}@{location}", ready, go, *contacts]  # noqa: E731
    results = run_at_barrier([worker, worker], tmp_path, env=os.environ.copy())

    for returncode, _, err in results:
        assert returncode == 0, err
    stats = fast_sandbox.stats()
    assert stats["tokens_refreshed"] == 1 and stats["refresh_tokens_reused"] <= 1
    final = _stored(hook, location)
    assert final.refresh_token != expired.refresh_token and final.expires_at > time.time() + 80_000


def test_an_agency_connection_uses_a_locations_own_install_and_mints_for_the_others(
    fast_sandbox: SandboxServer, app: Callable[..., str]
) -> None:
    info = fast_sandbox.info
    agency = {"user_type": "Company", "company_id": info["company_id"], "app_id": fast_sandbox.installs()["app_id"]}
    conn_id = app(refresh_token=info["oauth"]["company_refresh_token"], **agency)
    own, minted = fast_sandbox.location_ids
    GHLHook(conn_id).install_from_code(_code(fast_sandbox, location_id=own), REDIRECT)
    fast_sandbox.clear_stats()
    for location in (own, minted):
        contact = fast_sandbox.contact_ids(location)[0]
        assert GHLHook(conn_id, location_id=location).get_contact(contact)["id"] == contact
    routes = fast_sandbox.stats()["requests_by_route"]
    assert routes.get("POST /oauth/locationToken") == 1  # the other location's mint; the installed one has a set
    # Agency-level calls stay on the agency's token, whichever location the hook defaults to.
    listed = GHLHook(conn_id, location_id=own).iter_installed_locations()
    assert sorted(record["_id"] for record in listed) == sorted([own, minted])

    # Another agency's grant is not this connection's: refused, nothing stored.
    other = app(user_type="Company", company_id="another-company", app_id="x")
    with pytest.raises(GHLInstallError, match="agency install needs a connection of its own"):
        GHLHook(other).install_from_code(_code(fast_sandbox, company_id=info["company_id"]), REDIRECT)
    assert VariableTokenStore(GHLHook(other).config.token_variable).load() is None
    assert GHLHook(other).location_installations() == []


def test_an_uninstall_deletes_the_installations_set_unless_a_reinstall_is_newer(
    fast_sandbox: SandboxServer, app: Callable[..., str]
) -> None:
    location_conn = app(location_id=fast_sandbox.location_ids[0])  # location 0's connection; 1 installs too
    other = fast_sandbox.location_ids[1]
    hook = GHLHook(location_conn)
    hook.install_from_code(_code(fast_sandbox, location_id=other), REDIRECT)
    installed = _stored(hook, other)

    hook.forget_location_token(other, uninstalled_at=installed.refreshed_at - 60)  # a re-install came after
    assert hook.location_installations() == [other]
    hook.forget_location_token(other, uninstalled_at=installed.refreshed_at + 1)
    assert hook.location_installations() == []
    assert VariableTokenStore(f"{hook.config.token_variable}{LOCATION_INFIX}{other}").load() is None
    # The location is no longer one of the app's installations: a hook for it has no token of its own.
    with pytest.raises(GHLConfigError, match="no OAuth token"):
        GHLHook(location_conn, location_id=other).get_contact("any")

    # A location connection refuses an agency's grant: it is not an installation a location connection keeps.
    with pytest.raises(GHLInstallError, match="granted an agency"):
        hook.install_from_code(_code(fast_sandbox, company_id=fast_sandbox.info["company_id"]), REDIRECT)
    assert hook.location_installations() == []
