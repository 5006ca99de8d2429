"""Exports with a least-privilege token (``contacts.readonly`` only): everything readable is exported, exactly
once; the optional reads degrade with one warning each and the manifest says what was lost."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from airflow_provider_ghl.exceptions import GHLScopeError
from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.operators.export import GHLExportContactsOperator
from ghl_sandbox.testing import SandboxServer

CONTACTS = 600
KINDS = ["tasks", "notes", "appointments"]


@pytest.fixture(scope="module")
def scoped_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(contacts=CONTACTS, locations=1, seed=11, max_requests=100_000, interval_ms=1000) as server:
        yield server


@pytest.fixture
def connections(scoped_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``readonly``: a PIT with only contacts.readonly; ``full``: the location's PIT with every scope."""
    scoped_sandbox.reset()
    readonly = scoped_sandbox.issue_token(0, scopes=["contacts.readonly"])
    monkeypatch.setenv(
        "AIRFLOW_CONN_GHL_READONLY", json.dumps(scoped_sandbox.airflow_connection(0, private_token=readonly))
    )
    monkeypatch.setenv("AIRFLOW_CONN_GHL_FULL", json.dumps(scoped_sandbox.airflow_connection(0)))
    return {"readonly": "ghl_readonly", "full": "ghl_full"}


def _manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "_manifest.json").read_text())


def _records(out: Path, dataset: str = "contacts") -> list[dict[str, Any]]:
    files = _manifest(out)["datasets"][dataset]["files"]
    return [json.loads(line) for name in files for line in (out / name).read_text().splitlines()]


def _warnings(logs: list[dict[str, Any]], scope: str) -> list[str]:
    return [e["event"] for e in logs if e.get("log_level") == "warning" and scope in str(e["event"])]


def _export(conn_id: str, out: Path, **kwargs: Any) -> GHLExportContactsOperator:
    return GHLExportContactsOperator(
        task_id="export", ghl_conn_id=conn_id, output_path=f"file://{out}", page_limit=100, **kwargs
    )


def test_a_readonly_export_has_every_contact_once_without_custom_field_names(
    connections: dict[str, str], scoped_sandbox: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "readonly"
    with capture_logs() as logs:
        summary = _export(connections["readonly"], out).execute(context={})
    records = _records(out)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == CONTACTS == summary["contacts"]
    assert set(ids) == set(scoped_sandbox.contact_ids(scoped_sandbox.location_ids[0]))
    assert all("customFieldsByKey" not in r for r in records)
    assert any(r.get("customFields") for r in records)  # the raw values (by field id) are kept
    assert len(_warnings(logs, "locations/customFields.readonly")) == 1
    assert _manifest(out)["degraded"] == [
        {
            "operation": "get_custom_fields",
            "missing_scope": "locations/customFields.readonly",
            "lost": "custom-field names: records keep the raw customFields (by field id), without customFieldsByKey",
        }
    ]
    # With every scope nothing is degraded, and the records are the same contacts plus the names.
    full = tmp_path / "full"
    _export(connections["full"], full).execute(context={})
    assert _manifest(full)["degraded"] == []
    by_id = {r["id"]: r for r in _records(full)}
    assert all(by_id[r["id"]]["customFields"] == r["customFields"] for r in records)


def test_a_readonly_csv_export_keeps_the_raw_custom_fields_column(connections: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "csv"
    _export(connections["readonly"], out, file_format="csv").execute(context={})
    files = _manifest(out)["datasets"]["contacts"]["files"]
    with (out / files[0]).open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert "customFields" in rows[0] and not any(k.startswith("customFieldsByKey.") for k in rows[0])
    with_values = [row for row in rows if row["customFields"] not in ("", "[]")]
    assert with_values and all("id" in item for item in json.loads(with_values[0]["customFields"]))


def test_requiring_custom_field_names_fails_before_anything_is_written(
    connections: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "strict"
    with pytest.raises(GHLScopeError) as raised:
        _export(connections["readonly"], out, require_custom_field_names=True).execute(context={})
    assert raised.value.scope == "locations/customFields.readonly"
    assert not out.exists() or not any(out.iterdir())


def _enrich(conn_id: str, out: Path, since: datetime, until: datetime, **kwargs: Any) -> GHLEnrichContactsOperator:
    return GHLEnrichContactsOperator(
        task_id="enrich",
        ghl_conn_id=conn_id,
        output_path=f"file://{out}",
        updated_since=since,
        updated_until=until,
        include=KINDS,
        page_limit=20,
        **kwargs,
    )


def test_a_readonly_enrichment_reads_tasks_per_contact_instead(
    connections: dict[str, str], scoped_sandbox: SandboxServer, tmp_path: Path
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    changed = scoped_sandbox.touch_contacts(scoped_sandbox.location_ids[0], count=70)
    until = datetime.now(UTC) + timedelta(seconds=5)
    full = tmp_path / "full"
    _enrich(connections["full"], full, since, until).execute(context={})
    scoped_sandbox.clear_stats()
    out = tmp_path / "readonly"
    with capture_logs() as logs:
        _enrich(connections["readonly"], out, since, until).execute(context={})
    assert sorted(r["id"] for r in _records(out)) == sorted(changed)
    for kind in KINDS:  # the same children as with every scope
        assert sorted(r["id"] for r in _records(out, kind)) == sorted(r["id"] for r in _records(full, kind))
    # Four pages of contacts, but the refused search was asked once and warned about once.
    task_search = scoped_sandbox.stats()["requests_by_route"].get("POST /locations/{locationId}/tasks/search")
    assert task_search == 1
    assert len(_warnings(logs, "locations/tasks.readonly")) == 1
    assert [d["operation"] for d in _manifest(out)["degraded"]] == ["search_location_tasks"]
    assert _manifest(full)["degraded"] == []


def test_always_searching_tasks_without_the_scope_is_a_clear_error(
    connections: dict[str, str], scoped_sandbox: SandboxServer, tmp_path: Path
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    scoped_sandbox.touch_contacts(scoped_sandbox.location_ids[0], count=5)
    until = datetime.now(UTC) + timedelta(seconds=5)
    with pytest.raises(GHLScopeError, match="locations/tasks") as raised:
        _enrich(connections["readonly"], tmp_path / "always", since, until, task_search="always").execute(context={})
    assert raised.value.scope == "locations/tasks.readonly"


def test_a_readonly_parquet_export_keeps_the_raw_custom_fields(
    connections: dict[str, str], scoped_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from tests.export.parquet_support import pq

    out = tmp_path / "parquet"
    _export(connections["readonly"], out, file_format="parquet").execute(context={})
    manifest = _manifest(out)
    table = pq.read_table([out / name for name in manifest["datasets"]["contacts"]["files"]])
    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == CONTACTS
    assert "customFields" in table.column_names
    assert not [c for c in table.column_names if c.startswith("contact.")]  # no typed columns without names
    # No definitions were read: no schema to record, nothing to call drift.
    assert manifest["custom_fields"] is None and manifest["schema_drift"] is None
    assert [d["operation"] for d in manifest["degraded"]] == ["get_custom_fields"]
