"""Fixtures of the write-back tests: a sandbox with 1,200 contacts (duplicates allowed, so a repeated create
would show), a ``ghl`` connection to it, and fresh process-wide limiters for every test."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_ghl.hooks import auth as auth_module
from airflow_provider_ghl.hooks.ratelimit import reset_limiters
from ghl_sandbox.testing import SandboxServer

EXISTING = 1_200
CONN_ID = "ghl_sync"


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    # Limiters and token state are process-wide; a sandbox reset makes what they learned stale.
    reset_limiters()
    auth_module.reset_shared_state()
    yield


@pytest.fixture(scope="module")
def writeback_sandbox() -> Iterator[SandboxServer]:
    # allow_duplicates: GHL's setting under which only the client stands between a retry and a duplicate.
    with SandboxServer(
        contacts=EXISTING, locations=1, seed=11, max_requests=100_000, interval_ms=1000, allow_duplicates=True
    ) as server:
        yield server


@pytest.fixture
def writeback_conn(writeback_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The sandbox reset to its seeded contacts, and a connection to it named :data:`CONN_ID`."""
    writeback_sandbox.reset()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(writeback_sandbox.airflow_connection(0)))
    return CONN_ID
