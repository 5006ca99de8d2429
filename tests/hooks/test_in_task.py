"""The token Variable from inside real Airflow tasks (``dag.test()``): the Task SDK path of the token store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from airflow_provider_ghl.hooks.auth import VariableTokenStore
from ghl_sandbox.testing import SandboxServer
from tests.hooks.conftest import remember_secret

DAGS = Path(__file__).with_name("dags")


def test_refresh_operator_and_hook_inside_tasks(fast_sandbox: SandboxServer, airflow_db: Path) -> None:
    """The operator rotates the set through ``airflow.sdk.Variable`` (Execution API) and the next task reads
    it; task logs show no token."""
    location = fast_sandbox.info["locations"][0]
    oauth = fast_sandbox.info["oauth"]
    variable = f"ghl_oauth_intask_{uuid.uuid4().hex[:8]}"
    conn = {"conn_type": "ghl", "host": fast_sandbox.base_url, "login": oauth["client_id"],
            "password": oauth["client_secret"],
            "extra": {"auth_type": "oauth", "location_id": location["id"], "refresh_token": location["refresh_token"],
                      "token_variable": variable}}  # fmt: skip
    contact = fast_sandbox.contact_ids(location["id"])[0]
    env = {
        **os.environ,
        "AIRFLOW_CONN_GHL_INTASK": json.dumps(conn),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GHL_TEST_CONN": "ghl_intask",
        "GHL_TEST_CONTACT": contact,
    }
    run = subprocess.run(
        [sys.executable, str(DAGS / "ghl_token_in_task.py")], env=env, capture_output=True, text=True, timeout=240
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "DAGRUN_STATE success" in output, output[-4000:]
    assert f"Returned value was: {contact}" in output

    stored = VariableTokenStore(variable).load()
    assert stored is not None
    remember_secret(stored.access_token, stored.refresh_token)
    stats = fast_sandbox.stats()
    assert stats["tokens_refreshed"] == 1  # the operator refreshed; the reading task used its set
    for secret in (stored.access_token, stored.refresh_token, location["refresh_token"], oauth["client_secret"]):
        assert secret and secret not in output
