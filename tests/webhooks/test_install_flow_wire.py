"""The app's install flow over the wire: ``ghl-webhooks serve`` with ``[ghl_webhooks] install_flow``, the sandbox's
authorization page, the callback storing the installation's token set, and a DAG run in another process that uses
it without another exchange; forged, replayed and expired states and codes refused with nothing stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from airflow_provider_ghl.hooks.install import STATE_VARIABLE_PREFIX
from airflow_provider_ghl.hooks.installations import LOCATION_INFIX
from airflow_provider_ghl.hooks.tokens import TokenSet, VariableTokenStore
from airflow_provider_ghl.webhooks.settings import WebhookSettings
from ghl_sandbox.testing import SandboxServer
from tests.dag_run import exported_records
from tests.webhooks.serving import ROOT, ReceiverProcess, free_port

DAGS = ROOT / "dags"


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


@pytest.fixture
def app_connection(
    sandbox: SandboxServer, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[str, str]]:
    """Makes the app's connection (no refresh token: the install gives it one); returns (conn_id, Variable)."""
    sandbox.reset()

    def make(*, agency: bool = True, **extra: Any) -> tuple[str, str]:
        conn = sandbox.airflow_connection(0, agency=agency, oauth=not agency)
        conn_id, variable = f"ghl_app_{uuid.uuid4().hex[:8]}", f"ghl_oauth_install_{uuid.uuid4().hex[:8]}"
        conn["extra"].pop("refresh_token")
        if agency:
            conn["extra"].pop("location_id")
        conn["extra"] |= {"marketplace_url": sandbox.base_url, "token_variable": variable, **extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id, variable

    return make


@pytest.fixture
def receiver(app_connection: Callable[..., tuple[str, str]], tmp_path: Path) -> Iterator[ReceiverProcess]:
    """``ghl-webhooks serve`` with the install flow on (started after the test made its connections)."""
    settings = WebhookSettings(install_flow=True, inbox=f"sqlite:///{tmp_path / 'inbox.db'}")
    server = ReceiverProcess(settings, free_port())
    yield server
    server.stop()


def _start(receiver: ReceiverProcess, conn_id: str) -> str:
    """``GET /ghl/oauth/start``: the authorization page it redirects to."""
    answer = httpx.get(f"{receiver.base_url}/oauth/start", params={"conn_id": conn_id})
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def _approve(page: str) -> str:
    """The sandbox's authorization page (its pick set beforehand): the callback URL it redirects to."""
    answer = httpx.get(page)
    assert answer.status_code == 302, answer.text
    return answer.headers["location"]


def test_an_agency_installs_through_the_flow_and_a_dag_run_uses_the_stored_set(
    sandbox: SandboxServer,
    app_connection: Callable[..., tuple[str, str]],
    receiver: ReceiverProcess,
    airflow_db: Path,
    tmp_path: Path,
) -> None:
    conn_id, variable = app_connection()
    receiver.env.update({k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")})  # made above
    receiver.start()

    page = _start(receiver, conn_id)
    asked = _query(page)
    assert page.startswith(f"{sandbox.base_url}/v2/oauth/chooselocation?")
    assert asked["client_id"] == sandbox.info["oauth"]["client_id"] and asked["response_type"] == "code"
    assert asked["redirect_uri"] == f"{receiver.base_url}/oauth/callback"
    assert asked["scope"].split() == [
        "contacts.readonly", "contacts.write", "locations/customFields.readonly", "locations/tasks.readonly",
        "oauth.readonly", "oauth.write",
    ]  # fmt: skip
    sandbox.choose_on_authorization_page(company_id=sandbox.info["company_id"])
    callback = _approve(page)
    assert callback.startswith(asked["redirect_uri"]) and _query(callback)["state"] == asked["state"]

    done = httpx.get(callback)
    assert done.status_code == 200 and "App installed" in done.text, done.text
    stored = VariableTokenStore(variable).load()
    assert stored is not None and (stored.user_type, stored.company_id) == ("Company", sandbox.info["company_id"])

    # Replayed: the state was taken; nothing changes.
    replay = httpx.get(callback)
    assert replay.status_code == 400 and "already used" in replay.text
    # Forged: a state never issued.
    forged = httpx.get(f"{receiver.base_url}/oauth/callback", params={"code": "sbx-code-x", "state": "forged"})
    assert forged.status_code == 400 and "Unknown" in forged.text
    # A used code with a fresh state: GHL refuses it.
    fresh = _query(_start(receiver, conn_id))["state"]
    used_code = _query(callback)["code"]
    refused = httpx.get(f"{receiver.base_url}/oauth/callback", params={"code": used_code, "state": fresh})
    assert refused.status_code == 400 and "GHL refused the install" in refused.text
    # Expired: the state's record says so (the page and GHL never see it).
    late = _query(_start(receiver, conn_id))["state"]
    _expire_states()
    expired = httpx.get(f"{receiver.base_url}/oauth/callback", params={"code": "sbx-code-y", "state": late})
    assert expired.status_code == 400 and "expired" in expired.text
    assert _same(VariableTokenStore(variable).load(), stored)  # none of the refusals stored anything

    # Another process, a DAG run: the stored set, discovery of the agency's locations, no exchange or refresh.
    sandbox.clear_stats()
    routes = _export_every_location(sandbox, conn_id, tmp_path)
    assert "POST /oauth/token" not in routes  # the install's set served the run as stored


def test_locations_install_one_app_each_with_its_own_set_and_a_dag_run_exports_them(
    sandbox: SandboxServer,
    app_connection: Callable[..., tuple[str, str]],
    receiver: ReceiverProcess,
    tmp_path: Path,
) -> None:
    """Two sub-accounts install the app through one connection's flow: each installation keeps its own token set,
    and a DAG run in another process discovers and exports both with those sets; an agency's grant into a location
    connection is refused with nothing stored."""
    app_conn, app_variable = app_connection(agency=False, location_id="")  # the app alone, no location of its own
    location_conn, location_variable = app_connection(agency=False)  # location 0's own install
    receiver.env.update({k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")})
    receiver.start()
    for location in sandbox.location_ids:
        sandbox.choose_on_authorization_page(location_id=location)
        answer = httpx.get(_approve(_start(receiver, app_conn)))
        assert answer.status_code == 200 and f"location {location}" in answer.text, answer.text
    assert VariableTokenStore(app_variable).load() is None  # the connection's own place: untouched
    for location in sandbox.location_ids:
        stored = VariableTokenStore(f"{app_variable}{LOCATION_INFIX}{location}").load()
        assert stored is not None and stored.location_id == location

    sandbox.choose_on_authorization_page(company_id=sandbox.info["company_id"])
    refused = httpx.get(_approve(_start(receiver, location_conn)))
    assert refused.status_code == 400 and "granted an agency" in refused.text, refused.text
    assert VariableTokenStore(location_variable).load() is None

    # Another process, a DAG run with no ghl_location_ids: both installations, each through its own set.
    sandbox.clear_stats()
    routes = _export_every_location(sandbox, app_conn, tmp_path)
    assert not [route for route in routes if "oauth" in route.lower()], routes  # no exchange, refresh or mint
    unknown = httpx.get(f"{receiver.base_url}/oauth/start", params={"conn_id": "no_such_connection"})
    assert unknown.status_code == 400 and "Install not started" in unknown.text


def test_the_console_installs_a_location_from_the_pasted_redirect_url(
    sandbox: SandboxServer, app_connection: Callable[..., tuple[str, str]]
) -> None:
    """``ghl-webhooks install``: it prints GHL's page; the URL GHL redirected to, pasted back, stores the set."""
    conn_id, variable = app_connection(agency=False)
    redirect = "https://airflow.example.com/ghl/oauth/callback"
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_ghl.webhooks.cli", "install", "--conn-id", conn_id,
         "--redirect-uri", redirect],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
        cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    page = next(line.strip() for line in proc.stdout if line.strip().startswith("http"))
    sandbox.choose_on_authorization_page(location_id=sandbox.location_ids[0])
    callback = _approve(page)
    assert callback.startswith(redirect)  # a URL no browser could reach: pasted back by hand
    out, err = proc.communicate(callback + "\n", timeout=120)
    assert proc.returncode == 0, err
    assert f"location {sandbox.location_ids[0]}" in out
    stored = VariableTokenStore(variable).load()
    assert stored is not None and stored.location_id == sandbox.location_ids[0]


def _export_every_location(sandbox: SandboxServer, conn_id: str, tmp_path: Path) -> dict[str, int]:
    """``airflow dags test ghl_full_export`` in another process, through ``conn_id`` as ``ghl_default`` and no
    ``ghl_location_ids`` (discovery): every sandbox location must hold its 200 contacts. Returns the routes the
    sandbox served meanwhile."""
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"])
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(conn),
           "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path / 'out'}"}  # fmt: skip
    env.pop("AIRFLOW_VAR_GHL_LOCATION_IDS", None)
    day = datetime(2026, 12, 1, tzinfo=UTC)
    run = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "ghl_full_export", day.isoformat()],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    for location in sandbox.location_ids:
        records = exported_records(tmp_path / "out" / location / "contacts" / "full" / f"{day:%Y-%m-%d}")
        assert len(records) == 200
    return dict(sandbox.stats()["requests_by_route"])


def _expire_states() -> None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        keys = [v.key for v in session.query(Variable).filter(Variable.key.like(f"{STATE_VARIABLE_PREFIX}%"))]
    for key in keys:
        record = json.loads(Variable.get(key))
        Variable.set(key, json.dumps({**record, "expires_at": 0}))


def _same(a: TokenSet | None, b: TokenSet | None) -> bool:
    return a is not None and b is not None and (a.access_token, a.refresh_token) == (b.access_token, b.refresh_token)
