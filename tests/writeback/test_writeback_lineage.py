"""OpenLineage of a write-back in a real ``dag.test()`` run: the input file in, the location's contacts out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ghl_sandbox.testing import SandboxServer
from tests.dag_run import run_dag_file

DAGS = Path(__file__).with_name("dags")


def test_dag_run_emits_the_input_file_and_the_ghl_contacts(
    clean_sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    if not os.environ.get("CI"):
        pytest.importorskip("airflow.providers.openlineage", reason="needs apache-airflow-providers-openlineage")
    location = clean_sandbox.location_ids[0]
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "contacts.csv").write_text("email,firstName\nlineage.one@sync.example.com,Lin\n")
    events = tmp_path / "events.jsonl"
    run_dag_file(
        DAGS / "ghl_writeback_in_airflow.py",
        "ghl_sync_lineage",
        clean_sandbox.airflow_connection(0),
        f"file://{tmp_path}",
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        AIRFLOW__OPENLINEAGE__NAMESPACE="ghl-test",
    )

    complete = [
        json.loads(line)
        for line in events.read_text().splitlines()
        if json.loads(line).get("eventType") == "COMPLETE" and json.loads(line)["job"]["name"].endswith(".sync")
    ]
    assert len(complete) == 1
    [event] = complete
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [("file", f"{tmp_path}/inbox/contacts.csv")]
    assert [(d["namespace"], d["name"]) for d in event["outputs"]] == [(f"highlevel://{location}", "contacts")]
    assert clean_sandbox.stats()["writes"] == 1
