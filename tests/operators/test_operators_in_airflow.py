"""Per-endpoint operators in a real Airflow run (``dag.test()`` on the migrated test DB): templated arguments,
XCom between tasks, the "GHL contact" extra link stored for the UI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from airflow_provider_ghl.exceptions import GHLNotFoundError
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer
from tests.dag_run import run_dag_file

DAGS = Path(__file__).with_name("dags")


def test_operators_chain_in_airflow(
    ops_sandbox: SandboxServer, airflow_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = ops_sandbox.info["locations"][0]
    conn = ops_sandbox.airflow_connection(0)
    run_dag_file(DAGS / "ghl_operators_in_airflow.py", "ghl_operators_run", conn, f"file://{tmp_path}")

    with sqlite3.connect(airflow_db) as con:
        rows = con.execute(
            "select task_id, key, value from xcom where dag_id = 'ghl_operators_in_airflow' "
            "and run_id = (select max(run_id) from dag_run where dag_id = 'ghl_operators_in_airflow')"
        ).fetchall()
    xcoms = {(task, key): json.loads(value) for task, key, value in rows}
    created = xcoms[("create_contact", "return_value")]
    contact_id = created["contact"]["id"]
    assert created["action"] == "created" and created["contact"]["email"] == "airflow-run@example.com"
    link = f"https://app.gohighlevel.com/v2/location/{location['id']}/contacts/detail/{contact_id}"
    for task in ("create_contact", "tag", "create_task", "complete_task", "note", "notes"):
        assert xcoms[(task, "_link_GHLContactLink")] == link, task
    assert xcoms[("delete", "_link_GHLContactLink")] == ""  # nothing to open once deleted
    assert xcoms[("complete_task", "return_value")]["completed"] is True
    assert xcoms[("delete", "return_value")] == {"contact_id": contact_id, "deleted": True}

    notes_file = next(tmp_path.glob("*/notes.jsonl"))
    bodies = [json.loads(line)["body"] for line in notes_file.read_text().splitlines()]
    assert "Seen by ghl_operators_in_airflow" in bodies
    assert xcoms[("notes", "return_value")]["output_path"] == f"file://{notes_file}"
    monkeypatch.setenv("AIRFLOW_CONN_GHL_OPERATORS_RUN", json.dumps(conn))
    with pytest.raises(GHLNotFoundError):
        GHLHook("ghl_operators_run").get_contact(contact_id)
