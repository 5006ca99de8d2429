"""OAuth over the wire: bootstrap, rotation through the token Variable, races between workers, agency tokens."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_ghl.exceptions import GHLAuthError, GHLConfigError
from airflow_provider_ghl.hooks import auth as auth_module
from airflow_provider_ghl.hooks.auth import TokenSet, VariableTokenStore
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.operators.token import GHLRefreshTokenOperator
from ghl_sandbox.testing import SandboxServer
from tests.hooks._oauth_worker import run_at_barrier
from tests.hooks.conftest import remember_secret

WORKER = Path(__file__).with_name("_oauth_worker.py")


@dataclasses.dataclass
class OAuthSetup:
    conn_id: str
    variable: str
    location: dict[str, Any]
    sandbox: SandboxServer

    @property
    def store(self) -> VariableTokenStore:
        return VariableTokenStore(self.variable)

    def stored(self) -> TokenSet:
        tokens = self.store.load()
        assert tokens is not None
        remember_secret(tokens.access_token, tokens.refresh_token)
        return tokens

    def stats(self) -> dict[str, Any]:
        return self.sandbox.stats()


@pytest.fixture
def oauth(fast_sandbox: SandboxServer, conn_factory: Callable[..., str], airflow_db: Path) -> OAuthSetup:
    location = fast_sandbox.info["locations"][0]
    variable = f"ghl_oauth_test_{uuid.uuid4().hex[:8]}"
    conn_id = conn_factory(
        host=fast_sandbox.base_url,
        login=fast_sandbox.info["oauth"]["client_id"],
        password=fast_sandbox.info["oauth"]["client_secret"],
        auth_type="oauth",
        location_id=location["id"],
        refresh_token=location["refresh_token"],
        token_variable=variable,
    )
    return OAuthSetup(conn_id, variable, location, fast_sandbox)


def _raw_refresh(setup: OAuthSetup, refresh_token: str) -> dict[str, Any]:
    info = setup.sandbox.info["oauth"]
    form = {"client_id": info["client_id"], "client_secret": info["client_secret"], "grant_type": "refresh_token",
            "refresh_token": refresh_token, "user_type": "Location"}  # fmt: skip
    body = requests.post(f"{setup.sandbox.base_url}/oauth/token", data=form, timeout=10).json()
    remember_secret(body.get("access_token"), body.get("refresh_token"))
    return body


def test_bootstrap_persists_the_rotated_set_encrypted(oauth: OAuthSetup, airflow_db: Path) -> None:
    contact = oauth.sandbox.contact_ids(oauth.location["id"])[0]
    assert oauth.store.load() is None
    assert GHLHook(oauth.conn_id).get_contact(contact)["id"] == contact
    stored = oauth.stored()
    assert stored.refresh_token != oauth.location["refresh_token"]  # the bootstrap token is spent
    assert (stored.location_id, stored.user_type) == (oauth.location["id"], "Location")
    assert stored.expires_at > time.time() + 80_000

    # Encrypted at rest (a Fernet key is configured): no token text in the database row.
    with sqlite3.connect(airflow_db) as con:
        val, encrypted = con.execute("select val, is_encrypted from variable where key=?", (oauth.variable,)).fetchone()
    assert encrypted and stored.access_token not in val and stored.refresh_token not in val

    # Another hook in this process, and a "new process" (state forgotten), reuse the stored set.
    GHLHook(oauth.conn_id).get_contact(contact)
    auth_module.reset_shared_state()
    GHLHook(oauth.conn_id).get_contact(contact)
    assert oauth.stats()["tokens_refreshed"] == 1


def test_access_token_expiring_mid_run_is_refreshed(oauth: OAuthSetup) -> None:
    hook = GHLHook(oauth.conn_id)
    seen = []
    for n, contact in enumerate(hook.iter_contacts(page_limit=20)):
        seen.append(contact["id"])
        if n == 45:
            first = oauth.stored()
            oauth.sandbox.expire_tokens()  # GHL invalidates the access token under our feet
    assert sorted(seen) == sorted(oauth.sandbox.contact_ids(oauth.location["id"]))
    stats = oauth.stats()
    assert stats["tokens_refreshed"] == 2 and stats["refresh_tokens_reused"] == 0
    assert stats["responses_by_status"]["401"] == 1
    assert oauth.stored().refresh_token != first.refresh_token


def test_refreshes_ahead_of_expiry(oauth: OAuthSetup) -> None:
    body = _raw_refresh(oauth, oauth.location["refresh_token"])
    nearly_expired = TokenSet.from_response(body)
    oauth.store.save(dataclasses.replace(nearly_expired, expires_at=time.time() + 60))
    GHLHook(oauth.conn_id).search_contacts(page_limit=1)
    stats = oauth.stats()
    assert stats["tokens_refreshed"] == 2 and "401" not in stats["responses_by_status"]
    assert oauth.stored().refresh_token != nearly_expired.refresh_token


class _RacedStore(VariableTokenStore):
    """The store as another worker leaves it: right after our first read, it rotates the set."""

    def __init__(self, key: str, rotate: Callable[[], None]) -> None:
        super().__init__(key)
        self._rotate: Callable[[], None] | None = rotate

    def load(self) -> TokenSet | None:
        tokens = super().load()
        if self._rotate is not None:
            rotate, self._rotate = self._rotate, None
            rotate()
        return tokens


def test_invalid_grant_uses_the_set_another_worker_persisted(oauth: OAuthSetup) -> None:
    old = TokenSet.from_response(_raw_refresh(oauth, oauth.location["refresh_token"]))
    oauth.store.save(dataclasses.replace(old, expires_at=time.time() - 1))
    oauth.sandbox.clear_stats()

    def other_worker_refreshes() -> None:
        oauth.store.save(TokenSet.from_response(_raw_refresh(oauth, old.refresh_token or "")))

    hook = GHLHook(oauth.conn_id, token_store=_RacedStore(oauth.variable, other_worker_refreshes))
    assert hook.search_contacts(page_limit=1)["total"] == 200
    stats = oauth.stats()
    # The other worker's refresh succeeded; ours was refused once and we took the persisted set.
    assert (stats["tokens_refreshed"], stats["refresh_tokens_reused"]) == (1, 1)


def test_invalid_grant_without_a_newer_set_asks_for_reauthorization(oauth: OAuthSetup) -> None:
    _raw_refresh(oauth, oauth.location["refresh_token"])  # the bootstrap token is spent elsewhere
    hook = GHLHook(oauth.conn_id)
    manager = hook.oauth_manager()
    assert manager is not None
    manager.newer_token_wait = 0.3
    with pytest.raises(GHLAuthError, match="must be re-authorized") as info:
        hook.get_contact("any")
    assert info.value.ghl_error == "invalid_grant"
    assert oauth.location["refresh_token"] not in str(info.value)


def test_no_token_anywhere_is_a_config_error(oauth: OAuthSetup, conn_factory: Callable[..., str]) -> None:
    info = oauth.sandbox.info["oauth"]
    conn_id = conn_factory(
        host=oauth.sandbox.base_url, login=info["client_id"], password=info["client_secret"], auth_type="oauth",
        location_id=oauth.location["id"], token_variable=f"ghl_empty_{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    with pytest.raises(GHLConfigError, match="no refresh_token extra"):
        GHLHook(conn_id).get_contact("x")
    assert oauth.stats()["requests_total"] == 0


def test_refresh_operator_rotates_and_returns_no_secret(oauth: OAuthSetup) -> None:
    GHLHook(oauth.conn_id).get_custom_fields()  # bootstrap
    before = oauth.stored()
    result = GHLRefreshTokenOperator(task_id="refresh", ghl_conn_id=oauth.conn_id).execute(context={})
    after = oauth.stored()
    assert after.refresh_token != before.refresh_token and after.access_token != before.access_token
    assert result["token_variable"] == oauth.variable and result["location_id"] == oauth.location["id"]
    text = json.dumps(result)
    assert not any(t in text for t in (before.access_token, after.access_token, after.refresh_token))
    assert oauth.stats()["tokens_refreshed"] == 2


def test_refresh_needs_oauth(pit_hook: GHLHook) -> None:
    with pytest.raises(GHLConfigError, match="nothing to refresh"):
        pit_hook.refresh_oauth_token()


def test_test_connection_never_spends_a_refresh_token(oauth: OAuthSetup) -> None:
    ok, message = GHLHook(oauth.conn_id).test_connection()
    assert not ok and "is empty" in message and "GHLRefreshTokenOperator" in message
    tokens = TokenSet.from_response(_raw_refresh(oauth, oauth.location["refresh_token"]))
    oauth.store.save(tokens)
    oauth.sandbox.clear_stats()
    assert GHLHook(oauth.conn_id).test_connection()[0]
    oauth.sandbox.expire_tokens()
    auth_module.reset_shared_state()
    ok, message = GHLHook(oauth.conn_id).test_connection()
    assert not ok and "Invalid JWT" in message
    oauth.store.save(dataclasses.replace(tokens, expires_at=time.time() - 5))
    auth_module.reset_shared_state()
    ok, message = GHLHook(oauth.conn_id).test_connection()
    assert not ok and "expired" in message
    assert oauth.stats()["tokens_refreshed"] == 0


def test_async_reads_the_store_and_never_refreshes(oauth: OAuthSetup) -> None:
    contact = oauth.sandbox.contact_ids(oauth.location["id"])[3]
    GHLHook(oauth.conn_id).get_contact(contact)  # bootstrap on the "worker"
    auth_module.reset_shared_state()
    assert asyncio.run(GHLHook(oauth.conn_id).aget_contact(contact))["id"] == contact
    oauth.sandbox.expire_tokens()
    with pytest.raises(GHLAuthError, match="refused the token"):
        asyncio.run(GHLHook(oauth.conn_id).aget_contact(contact))
    assert oauth.stats()["tokens_refreshed"] == 1


def test_agency_token_mints_location_tokens(
    fast_sandbox: SandboxServer, conn_factory: Callable[..., str], airflow_db: Path
) -> None:
    info = fast_sandbox.info
    location = info["locations"][1]
    conn_id = conn_factory(
        host=fast_sandbox.base_url, login=info["oauth"]["client_id"], password=info["oauth"]["client_secret"],
        auth_type="oauth", user_type="Company", company_id=info["company_id"], location_id=location["id"],
        refresh_token=info["oauth"]["company_refresh_token"], token_variable=f"ghl_agency_{uuid.uuid4().hex[:6]}",
    )  # fmt: skip
    contacts = fast_sandbox.contact_ids(location["id"])
    hook = GHLHook(conn_id)
    assert hook.get_contact(contacts[0])["locationId"] == location["id"]
    assert hook.get_contact(contacts[1])["id"] == contacts[1]
    assert VariableTokenStore(hook.config.token_variable).load().user_type == "Company"  # type: ignore[union-attr]
    fast_sandbox.expire_tokens()  # both the agency token and the location token
    assert hook.search_contacts(page_limit=1)["total"] == 200
    stats = fast_sandbox.stats()
    # Minted once for both calls; after expiry: refused with the expired agency token, minted after its refresh.
    assert stats["requests_by_route"]["POST /oauth/locationToken"] == 3
    assert stats["tokens_refreshed"] == 2


def test_two_processes_with_an_expired_token_both_finish(oauth: OAuthSetup, tmp_path: Path) -> None:
    """Two worker processes share the Variable; its access token has expired; both refresh at once."""
    GHLHook(oauth.conn_id).get_contact(oauth.sandbox.contact_ids(oauth.location["id"])[0])  # bootstrap
    expired = dataclasses.replace(oauth.stored(), expires_at=time.time() - 30)
    oauth.store.save(expired)
    oauth.sandbox.expire_tokens()
    oauth.sandbox.clear_stats()

    contacts = oauth.sandbox.contact_ids(oauth.location["id"])[:5]
    worker = lambda ready, go: [sys.executable, str(WORKER), oauth.conn_id, ready, go, *contacts]  # noqa: E731
    results = run_at_barrier([worker, worker], tmp_path, env=os.environ.copy())

    final = oauth.stored()
    for returncode, out, err in results:
        assert returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"fetched": contacts}
        for token in (expired.access_token, expired.refresh_token, final.access_token, final.refresh_token):
            assert token and token not in out + err
    stats = oauth.stats()
    assert stats["tokens_refreshed"] == 1  # one winner
    assert stats["refresh_tokens_reused"] <= 1  # at most the one losing process
    # The Variable holds the newest set: its refresh token is the unused one, and its access token works.
    assert final.refresh_token != expired.refresh_token and final.expires_at > time.time() + 80_000
    assert _raw_refresh(oauth, final.refresh_token or "").get("access_token")


def test_api_v3_speaks_v3_oauth(
    fast_sandbox: SandboxServer, conn_factory: Callable[..., str], airflow_db: Path
) -> None:
    """With ``api_version=v3`` the hook refreshes through v3's camelCase token endpoint and mints agency location
    tokens at ``/oauth/location-token``; the rotated set is stored and reused as in v2."""
    info = fast_sandbox.info
    location = info["locations"][0]
    variable = f"ghl_v3_{uuid.uuid4().hex[:6]}"
    conn_id = conn_factory(
        host=fast_sandbox.base_url, login=info["oauth"]["client_id"], password=info["oauth"]["client_secret"],
        auth_type="oauth", user_type="Company", company_id=info["company_id"], location_id=location["id"],
        refresh_token=info["oauth"]["company_refresh_token"], token_variable=variable, api_version="v3",
    )  # fmt: skip
    hook = GHLHook(conn_id)
    contact = fast_sandbox.contact_ids(location["id"])[0]
    assert hook.get_contact(contact)["id"] == contact
    stored = VariableTokenStore(variable).load()
    assert stored is not None and stored.user_type == "Company" and stored.refresh_token
    remember_secret(stored.access_token, stored.refresh_token)
    assert stored.refresh_token != info["oauth"]["company_refresh_token"]  # the v3 answer's refreshToken was read
    routes = fast_sandbox.stats()["requests_by_route"]
    assert routes["POST /oauth/location-token"] == 1 and "POST /oauth/locationToken" not in routes
    assert fast_sandbox.stats()["tokens_refreshed"] == 1
    # A second process reuses the stored set: no refresh, one more location token.
    auth_module.reset_shared_state()
    assert GHLHook(conn_id).search_contacts(page_limit=1)["total"] == 200
    assert fast_sandbox.stats()["tokens_refreshed"] == 1
