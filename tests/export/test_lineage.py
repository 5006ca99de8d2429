"""OpenLineage: the exports in a real ``dag.test()`` run emit GHL inputs and the storage output (file transport)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_provider_ghl.outputs.lineage import ghl_dataset_name, storage_dataset_name
from ghl_sandbox.testing import SandboxServer
from tests.dag_run import run_dag_file

DAGS = Path(__file__).with_name("dags")


def test_dataset_names_follow_openlineage_naming() -> None:
    assert ghl_dataset_name("loc1", "tasks") == ("highlevel://loc1", "tasks")
    assert storage_dataset_name("file:///data/ghl/x/") == ("file", "/data/ghl/x")
    assert storage_dataset_name("/data/ghl/x") == ("file", "/data/ghl/x")
    assert storage_dataset_name("s3://bucket/ghl/loc/contacts") == ("s3://bucket", "ghl/loc/contacts")


def test_dag_run_emits_ghl_inputs_and_the_output_directory(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    if not os.environ.get("CI"):
        pytest.importorskip("airflow.providers.openlineage", reason="needs apache-airflow-providers-openlineage")
    sandbox.reset()
    location = sandbox.info["locations"][0]["id"]
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    events = tmp_path / "events.jsonl"
    run_dag_file(
        DAGS / "ghl_export_in_airflow.py",
        "ghl_airflow_export",
        sandbox.airflow_connection(0),
        f"file://{tmp_path}/out",
        end.isoformat(),
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps({"type": "file", "log_file_path": str(events), "append": True}),
        AIRFLOW__OPENLINEAGE__NAMESPACE="ghl-test",
    )

    complete = {}
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event.get("eventType") == "COMPLETE" and "." in event["job"]["name"]:
            complete[event["job"]["name"].split(".", 1)[1]] = event
    assert set(complete) >= {"full_export", "enrich"}, sorted(complete)

    def datasets(event: dict, side: str) -> list[tuple[str, str]]:
        return sorted((d["namespace"], d["name"]) for d in event[side])

    full_dir = f"{tmp_path}/out/contacts/full/{end:%Y-%m-%d}"
    window = f"{end - timedelta(hours=1):%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
    assert datasets(complete["full_export"], "inputs") == [(f"highlevel://{location}", "contacts")]
    assert datasets(complete["full_export"], "outputs") == [("file", full_dir)]
    assert datasets(complete["enrich"], "inputs") == [
        (f"highlevel://{location}", kind) for kind in ("appointments", "contacts", "notes", "tasks")
    ]
    assert datasets(complete["enrich"], "outputs") == [("file", f"{tmp_path}/out/enrichment/{window}")]
