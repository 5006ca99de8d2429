"""A token without a scope: the refusal is a GHLScopeError naming the scope, one request, no token spent."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_ghl.exceptions import GHLScopeError
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer
from tests.hooks.conftest import remember_secret


@pytest.fixture
def readonly_hook(fast_sandbox: SandboxServer, conn_factory: Callable[..., str]) -> GHLHook:
    """A hook whose Private Integration Token has only ``contacts.readonly``."""
    token = fast_sandbox.issue_token(0, scopes=["contacts.readonly"])
    remember_secret(token)
    loc = fast_sandbox.info["locations"][0]
    return GHLHook(conn_factory(host=fast_sandbox.base_url, password=token, location_id=loc["id"]))


def test_a_missing_read_scope_names_the_scope_and_is_not_retried(
    readonly_hook: GHLHook, fast_sandbox: SandboxServer
) -> None:
    fast_sandbox.clear_stats()
    with pytest.raises(GHLScopeError) as raised:
        readonly_hook.get_custom_fields()
    err = raised.value
    assert err.scope == "locations/customFields.readonly"
    assert "needs the scope locations/customFields.readonly" in str(err)
    assert isinstance(err, AirflowFailException)  # a retry cannot give the token a scope
    assert fast_sandbox.stats()["requests_total"] == 1
    # What the token may do still works.
    assert readonly_hook.search_contacts(page_limit=1)["total"] == 200


def test_a_write_without_the_write_scope_writes_nothing(readonly_hook: GHLHook, fast_sandbox: SandboxServer) -> None:
    contact_id = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[0]
    with pytest.raises(GHLScopeError, match=re.escape("contacts.write")) as raised:
        readonly_hook.update_contact(contact_id, {"city": "Nowhere"})
    assert raised.value.scope == "contacts.write"
    assert fast_sandbox.stats()["writes"] == 0


def test_the_async_twin_names_the_scope_too(readonly_hook: GHLHook) -> None:
    with pytest.raises(GHLScopeError) as raised:
        asyncio.run(readonly_hook.aget_custom_fields())
    assert raised.value.scope == "locations/customFields.readonly"


def test_a_scope_refusal_never_spends_an_oauth_refresh_token(
    fast_sandbox: SandboxServer,
    conn_factory: Callable[..., str],
    tmp_path_factory: pytest.TempPathFactory,
    airflow_db: Path,
) -> None:
    loc = fast_sandbox.info["locations"][0]
    code = fast_sandbox.authorize(location_id=loc["id"], scopes=["contacts.readonly"])
    oauth = fast_sandbox.info["oauth"]
    first = fast_sandbox._session.post(  # the app's code exchange, as GHL's redirect would hand it over
        f"{fast_sandbox.base_url}/oauth/token",
        data={"client_id": oauth["client_id"], "client_secret": oauth["client_secret"]}
        | {"grant_type": "authorization_code", "code": code, "user_type": "Location"},
        timeout=10,
    ).json()
    remember_secret(first["access_token"], first["refresh_token"])
    conn_id = conn_factory(
        host=fast_sandbox.base_url,
        login=oauth["client_id"],
        password=oauth["client_secret"],
        location_id=loc["id"],
        auth_type="oauth",
        refresh_token=first["refresh_token"],
        token_variable=f"ghl_scope_test_{tmp_path_factory.mktemp('v').name}",
    )
    hook = GHLHook(conn_id, retry_backoff=0.01)
    assert hook.search_contacts(page_limit=1)["total"] == 200  # the first call refreshes once, as always
    refreshed = fast_sandbox.stats()["tokens_refreshed"]
    with pytest.raises(GHLScopeError, match=re.escape("locations/tasks.readonly")):
        hook.search_location_tasks(limit=1)
    assert fast_sandbox.stats()["tokens_refreshed"] == refreshed


def test_test_connection_says_what_the_token_can_do(
    readonly_hook: GHLHook, fast_sandbox: SandboxServer, conn_factory: Callable[..., str]
) -> None:
    ok, message = readonly_hook.test_connection()
    assert ok, message
    assert "200 contacts" in message
    assert "Missing scope locations/customFields.readonly: without custom-field names" in message
    assert "Missing scope locations/tasks.readonly: without the location-wide task search" in message
    loc = fast_sandbox.info["locations"][0]
    full = GHLHook(conn_factory(host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"]))
    ok, message = full.test_connection()
    assert ok and "Missing scope" not in message
    assert "locations/customFields.readonly: ok." in message and "locations/tasks.readonly: ok." in message
