"""The shipped DAGs with a least-privilege token (``contacts.readonly`` only), under ``airflow dags test``:
every contact (and every changed contact's tasks, notes, appointments) exactly once, one warning per missing
scope in the task log, and the degradation in the manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from ghl_sandbox.testing import SandboxServer
from tests.dag_run import exported_records
from tests.dags.test_example_dags import _dags_test
from tests.dags.test_sensor_dag import current_hour, quiet_sandbox, read_field

CUSTOM_FIELDS_WARNING = "The token lacks the scope locations/customFields.readonly"
TASK_SEARCH_WARNING = "The token lacks the scope locations/tasks.readonly"


def _readonly_connection(sandbox: SandboxServer) -> dict[str, Any]:
    return sandbox.airflow_connection(0, private_token=sandbox.issue_token(0, scopes=["contacts.readonly"]))


def _degraded(out: Path) -> list[str]:
    manifest = json.loads((out / "_manifest.json").read_text())
    return [entry["missing_scope"] for entry in manifest["degraded"]]


def _children(sandbox: SandboxServer, contact_ids: list[str]) -> dict[str, list[str]]:
    """The ids of each kind of child of ``contact_ids``, read from the sandbox with the full token."""
    wrapper = {"tasks": "tasks", "notes": "notes", "appointments": "events"}
    children: dict[str, list[str]] = {kind: [] for kind in wrapper}
    for contact_id in contact_ids:
        for kind, key in wrapper.items():
            resp = requests.get(
                f"{sandbox.base_url}/contacts/{contact_id}/{kind}", headers=sandbox.headers(0), timeout=10
            )
            children[kind] += [item["id"] for item in resp.json()[key]]
    return children


def _assert_enriched(sandbox: SandboxServer, out: Path, touched: list[str]) -> None:
    assert sorted(read_field(out, "contacts", "id")) == sorted(touched)
    for kind, ids in _children(sandbox, touched).items():
        assert sorted(read_field(out, kind, "id")) == sorted(ids), kind  # each exactly once
    assert _degraded(out) == ["locations/tasks.readonly"]


def test_full_export_dag_with_a_readonly_token(sandbox: SandboxServer, airflow_db: Path, tmp_path: Path) -> None:
    sandbox.reset()
    location = sandbox.location_ids[0]
    day = datetime(2026, 11, 22, tzinfo=UTC)
    output = _dags_test(sandbox, tmp_path, "ghl_full_export", day, conn=_readonly_connection(sandbox))
    out = tmp_path / location / "contacts" / "full" / "2026-11-22"
    records = exported_records(out)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) and set(ids) == set(sandbox.contact_ids(location))
    assert all("customFieldsByKey" not in r for r in records)
    assert _degraded(out) == ["locations/customFields.readonly"]
    assert output.count(CUSTOM_FIELDS_WARNING) == 1, output[-4000:]


def _enrichment_run(sandbox: SandboxServer, tmp_path: Path, dag_id: str, touch: int, **env: str) -> None:
    """Run an enrichment DAG with a readonly token over the current hour, in which ``touch`` contacts change."""
    quiet_sandbox(sandbox)
    try:
        location = sandbox.location_ids[0]
        hour = current_hour()
        end = hour + timedelta(hours=1)
        touched = sandbox.touch_contacts(location, count=touch)
        output = _dags_test(sandbox, tmp_path, dag_id, end, conn=_readonly_connection(sandbox), **env)
        out = tmp_path / location / "enrichment" / f"{hour:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
        _assert_enriched(sandbox, out, touched)
        assert output.count(TASK_SEARCH_WARNING) == 1, output[-4000:]
    finally:
        sandbox.reset()


def test_incremental_enrichment_dag_with_a_readonly_token(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    _enrichment_run(sandbox, tmp_path, "ghl_incremental_enrichment", touch=8)


def test_enrichment_on_change_dag_with_a_readonly_token(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    # The contacts changed before the run: the wait's first look (one search) finds them.
    _enrichment_run(sandbox, tmp_path, "ghl_enrichment_on_change", touch=6, AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL="1")
