"""Fixtures of the GHLHook tests: connections as ``AIRFLOW_CONN_*`` JSON, a migrated metadata DB for the
OAuth token Variable, and a check that no token text reaches the captured logs of any test."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.hooks import auth as auth_module
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.ratelimit import reset_limiters
from ghl_sandbox.testing import SandboxServer
from tests.hooks.shared_budget import Shared, shared_connection

#: Secrets the current test handed to a connection; the leak check looks for each of them.
_SECRETS: set[str] = set()


def remember_secret(*values: str | None) -> None:
    _SECRETS.update(v for v in values if v and len(v) >= 8)


def _in_memory_tokens() -> set[str]:
    tokens: set[str] = set()
    for state in auth_module._STATES.values():
        if state.tokens:
            tokens.update(t for t in (state.tokens.access_token, state.tokens.refresh_token) if t)
        tokens.update(token for token, _ in state.location_tokens.values())
    return tokens


@pytest.fixture(autouse=True)
def no_token_in_logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Capture everything at DEBUG; after the test no token the test used may appear in logs or output."""
    caplog.set_level(logging.DEBUG)
    _SECRETS.clear()
    reset_limiters()
    auth_module.reset_shared_state()
    yield
    secrets = _SECRETS | _in_memory_tokens()
    out, err = capfd.readouterr()
    captured = caplog.text + out + err
    leaked = sorted(s[:6] + "..." for s in secrets if s in captured)
    # Re-emit what the test printed so failures stay debuggable.
    sys.stdout.write(out)
    sys.stderr.write(err)
    assert not leaked, f"token text leaked into logs/output: {leaked}"


@pytest.fixture
def conn_factory(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a ``ghl`` connection through an ``AIRFLOW_CONN_*`` variable; returns its conn id."""

    def make(
        *,
        host: str | None,
        password: str | None = None,
        login: str | None = None,
        conn_id: str | None = None,
        **extra: Any,
    ) -> str:
        conn_id = conn_id or f"ghl_test_{uuid.uuid4().hex[:8]}"
        remember_secret(password, extra.get("refresh_token"))
        conn = {"conn_type": "ghl", "host": host, "login": login, "password": password, "extra": extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return make


@pytest.fixture
def fast_sandbox(sandbox: SandboxServer) -> SandboxServer:
    """The session sandbox, reset, with a budget large enough that functional tests never wait for it."""
    sandbox.reset(max_requests=5000, interval_ms=1000)
    remember_secret(sandbox.info["oauth"]["client_secret"], sandbox.info["oauth"]["company_refresh_token"])
    for loc in sandbox.info["locations"]:
        remember_secret(loc["private_token"], loc["refresh_token"])
    return sandbox


@pytest.fixture
def pit_hook(fast_sandbox: SandboxServer, conn_factory: Callable[..., str]) -> Iterator[GHLHook]:
    """A hook with location 0's Private Integration Token."""
    loc = fast_sandbox.info["locations"][0]
    conn_id = conn_factory(host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"])
    hook = GHLHook(conn_id, retry_backoff=0.05)
    yield hook
    hook.close()


@pytest.fixture(params=["host", "redis"])
def shared(
    request: pytest.FixtureRequest,
    fast_sandbox: SandboxServer,
    conn_factory: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Shared:
    """A connection on each backend shared between processes."""
    return shared_connection(request.param, request, fast_sandbox, conn_factory, tmp_path, monkeypatch)


@pytest.fixture(params=["process", "host", "redis"])
def any_backend(
    request: pytest.FixtureRequest,
    fast_sandbox: SandboxServer,
    conn_factory: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Shared:
    """A connection on each backend, the per-process limiter included."""
    return shared_connection(request.param, request, fast_sandbox, conn_factory, tmp_path, monkeypatch)
