"""Shared fixtures: an isolated AIRFLOW_HOME and a real GHL sandbox server on a free loopback port."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Before anything imports Airflow: never touch ~/airflow, never load Airflow's example DAGs.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="ghl-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_provider_ghl.sandbox.testing import SandboxServer  # noqa: E402


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """One sandbox for the session: 200 contacts in each of 2 locations. Call ``reset()`` for a clean state."""
    with SandboxServer(contacts=200, locations=2, seed=1) as server:
        yield server


@pytest.fixture
def clean_sandbox(sandbox: SandboxServer) -> SandboxServer:
    """The session sandbox, reset to its seeded start state (data, tokens, limits, faults, stats)."""
    sandbox.reset()
    return sandbox
