"""Fixtures of the operator tests: the sandbox with a roomy budget, a ``ghl`` connection, and a way to run one
operator's ``execute`` the way the task runner does (rendered arguments, a task instance for XCom pushes)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_provider_ghl.hooks import auth as auth_module
from airflow_provider_ghl.hooks.ratelimit import reset_limiters
from ghl_sandbox.testing import SandboxServer


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    # Limiters and token state are process-wide; a sandbox reset makes what they learned stale.
    reset_limiters()
    auth_module.reset_shared_state()
    yield


@pytest.fixture
def ops_sandbox(sandbox: SandboxServer) -> SandboxServer:
    """The session sandbox, reset, with a budget functional tests never wait for."""
    sandbox.reset(max_requests=5000, interval_ms=1000)
    return sandbox


@pytest.fixture
def location(ops_sandbox: SandboxServer) -> dict[str, Any]:
    return ops_sandbox.info["locations"][0]


@pytest.fixture
def ghl_conn(ops_sandbox: SandboxServer, location: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """A Private Integration Token connection to location 0, as ``AIRFLOW_CONN_*`` JSON."""
    conn_id = f"ghl_ops_{uuid.uuid4().hex[:8]}"
    conn = ops_sandbox.airflow_connection(0)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    return conn_id


class RecordingTaskInstance:
    """Stands in for the task instance in ``context["ti"]``: keeps what the operator pushes to XCom."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.fixture
def run_operator() -> Callable[[Any], tuple[Any, dict[str, Any]]]:
    """Execute an operator (arguments as given, i.e. already rendered); returns (result, pushed XComs)."""

    def run(operator: Any) -> tuple[Any, dict[str, Any]]:
        ti = RecordingTaskInstance()
        result = operator.execute({"ti": ti})
        json.dumps(result)  # XCom values must be plain JSON
        return result, ti.xcom

    return run
