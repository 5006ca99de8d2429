"""Shared fixtures: an isolated AIRFLOW_HOME and a real GHL sandbox server on a free loopback port."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports Airflow: never touch ~/airflow, never load Airflow's example DAGs.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="ghl-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# A Fernet key makes Variables (the OAuth token store) encrypted at rest, as the docs require of deployments.
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "hZ7cmn3PqWZ8vX3DhCqFZf1hx3Jq4pCw7Jc7a6b8Y2E=")
# The example DAGs' own helpers (ghl_layout, ghl_locations) import from the DAGs folder, as the DAGs do there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dags"))

from ghl_sandbox.postgres_server import POSTGRES_PACKAGE, PostgresServer  # noqa: E402
from ghl_sandbox.redis_server import REDIS_PACKAGE, RedisServer  # noqa: E402
from ghl_sandbox.testing import SandboxServer  # noqa: E402
from tests.services import service_missing  # noqa: E402


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


def _has_variable_table(db: Path) -> bool:
    if not db.exists():
        return False
    with sqlite3.connect(db) as con:
        return con.execute("select 1 from sqlite_master where type='table' and name='variable'").fetchone() is not None


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB in the test AIRFLOW_HOME (about 5 s, once): Variables and DAG runs live there."""
    home = Path(os.environ["AIRFLOW_HOME"])
    db = home / "airflow.db"
    if not _has_variable_table(db):
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=os.environ.copy(),
            check=True,
            capture_output=True,
            timeout=300,
        )
    return db


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real ``redis-server`` on a free loopback port for the session. Without Debian's ``redis-server``
    package the test skips, except in CI (``CI=true``), where the missing server fails it."""
    if not RedisServer.available():
        service_missing(
            f"redis-server not found: install Debian's {REDIS_PACKAGE!r} package (apt-get install redis-server)"
        )
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server on a free loopback port for the session (Debian's ``postgresql`` package);
    skipped without it, except in CI."""
    if not PostgresServer.available():
        service_missing(
            f"PostgreSQL not found: install Debian's {POSTGRES_PACKAGE!r} package (apt-get install postgresql)"
        )
    with PostgresServer() as server:
        yield server
