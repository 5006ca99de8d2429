"""Typed Parquet over the wire: the full export and the enrichment read back with pyarrow."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.operators.export import GHLExportContactsOperator
from ghl_sandbox.testing import SandboxServer
from tests.export.parquet_support import pa, pq

from ghl_layout import FULL_EXPORT

CONTACTS = 400


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(contacts=CONTACTS, locations=1, seed=9, max_requests=100_000, interval_ms=1000) as server:
        yield server


@pytest.fixture
def conn_id(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    sandbox.reset()
    monkeypatch.setenv("AIRFLOW_CONN_GHL_PARQUET", json.dumps(sandbox.airflow_connection(0)))
    return "ghl_parquet"


def _definitions(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    url = f"{sandbox.base_url}/locations/{sandbox.location_ids[0]}/customFields"
    fields = requests.get(url, headers=sandbox.headers(0), timeout=10).json()["customFields"]
    return {f["fieldKey"]: f for f in fields}


def _table(out: Path, dataset: str) -> Any:
    manifest = json.loads((out / "_manifest.json").read_text())
    return pa.concat_tables([pq.read_table(out / name) for name in manifest["datasets"][dataset]["files"]])


def test_full_export_as_parquet_is_typed_by_the_custom_field_definitions(
    conn_id: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    location = sandbox.location_ids[0]
    victim = sandbox.contact_ids(location)[7]
    wrong = [{"key": "lead_score", "field_value": "lots"}, {"key": "signup_date", "field_value": "soon"}]
    response = requests.put(
        f"{sandbox.base_url}/contacts/{victim}", json={"customFields": wrong}, headers=sandbox.headers(0), timeout=10
    )
    assert response.status_code == 200, response.text

    out = tmp_path / "full"
    GHLExportContactsOperator(
        task_id="export", ghl_conn_id=conn_id, output_path=f"file://{out}", file_format="parquet",
        records_per_file=150, page_limit=100,
    ).execute(context={})  # fmt: skip
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["datasets"]["contacts"]["files"] == [
        f"contacts-0000{i}.parquet" for i in (1, 2)
    ]  # cut at page ends
    table = _table(out, "contacts")

    ids = table.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == CONTACTS and set(ids) == set(sandbox.contact_ids(location))
    schema = table.schema
    assert schema.field("dateAdded").type == pa.timestamp("ms", tz="UTC")
    assert schema.field("tags").type == pa.list_(pa.string())
    assert pa.types.is_struct(schema.field("dndSettings").type)
    expected = {"NUMERICAL": pa.float64(), "DATE": pa.timestamp("ms", tz="UTC"), "TEXT": pa.string()}
    for key, definition in _definitions(sandbox).items():
        assert schema.field(key).type == expected.get(definition["dataType"], pa.string()), key

    rows = {r["id"]: r for r in table.to_pylist()}
    bad = rows[victim]
    assert bad["contact.lead_score"] is None and bad["contact.signup_date"] is None
    raw = {cf["id"]: cf["value"] for cf in json.loads(bad["customFields"])}
    definitions = _definitions(sandbox)
    assert raw[definitions["contact.lead_score"]["id"]] == "lots"
    assert raw[definitions["contact.signup_date"]["id"]] == "soon"
    assert manifest["datasets"]["contacts"]["type_mismatches"] == {"contact.lead_score": 1, "contact.signup_date": 1}
    typed = [r for r in rows.values() if r["contact.lead_score"] is not None]
    assert typed and all(isinstance(r["contact.lead_score"], float) for r in typed)
    assert manifest["custom_fields"] == {k: d["dataType"] for k, d in definitions.items()}


def test_second_parquet_export_reports_schema_drift_and_tombstones(
    conn_id: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    location = sandbox.location_ids[0]

    def export(day: date, previous: Path | None = None) -> tuple[Path, dict[str, Any]]:
        out = FULL_EXPORT.path(tmp_path, location, ds=day)
        GHLExportContactsOperator(
            task_id="export",
            ghl_conn_id=conn_id,
            output_path=f"file://{out}",
            file_format="parquet",
            previous_output=f"file://{previous}" if previous else None,
        ).execute(context={})
        return out, json.loads((out / "_manifest.json").read_text())

    first_dir, first = export(date(2026, 11, 22))
    assert first["schema_drift"] is None
    # Rewrite the first manifest's schema as if a field had since been retyped, one added and one removed.
    recorded = dict(first["custom_fields"])
    recorded["contact.lead_score"] = "TEXT"
    recorded["contact.old_field"] = "TEXT"
    del recorded["contact.referral_code"]
    (first_dir / "_manifest.json").write_text(json.dumps({**first, "custom_fields": recorded}))
    gone = sandbox.contact_ids(location)[:4]
    for contact_id in gone:
        requests.delete(f"{sandbox.base_url}/contacts/{contact_id}", headers=sandbox.headers(0), timeout=10)

    second_dir, second = export(date(2026, 11, 29), previous=first_dir)
    assert second["schema_drift"] == {
        "previous_export": f"file://{first_dir}",
        "added": ["contact.referral_code"],
        "removed": ["contact.old_field"],
        "retyped": {"contact.lead_score": {"from": "TEXT", "to": "NUMERICAL"}},
    }
    tombstones = _table(second_dir, "deleted")
    assert sorted(tombstones.column("id").to_pylist()) == sorted(gone)
    assert tombstones.schema.field("detectedAt").type == pa.timestamp("ms", tz="UTC")


def test_enrichment_as_parquet_has_typed_contacts_and_children(
    conn_id: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    changed = sandbox.touch_contacts(sandbox.location_ids[0], count=30)
    out = tmp_path / "enrich"
    GHLEnrichContactsOperator(
        task_id="enrich", ghl_conn_id=conn_id, output_path=f"file://{out}", file_format="parquet",
        updated_since=since, updated_until=datetime.now(UTC) + timedelta(seconds=5),
    ).execute(context={})  # fmt: skip
    contacts = _table(out, "contacts")
    assert sorted(contacts.column("id").to_pylist()) == sorted(changed)
    assert contacts.schema.field("contact.lead_score").type == pa.float64()
    tasks = _table(out, "tasks")
    assert tasks.num_rows > 0 and set(tasks.column("contactId").to_pylist()) <= set(changed)
    assert tasks.schema.field("dueDate").type == pa.timestamp("ms", tz="UTC")
    assert tasks.schema.field("completed").type == pa.bool_()
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["schema_drift"] is None and "contact.lead_score" in manifest["custom_fields"]
