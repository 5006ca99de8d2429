"""Deletes as tombstones: two full exports in the layout, contacts deleted between them over GHL's API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_ghl.exceptions import GHLInputError
from airflow_provider_ghl.layout import FULL_EXPORT
from airflow_provider_ghl.operators.export import GHLExportContactsOperator
from ghl_sandbox.testing import SandboxServer

CONTACTS = 300


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(contacts=CONTACTS, locations=2, seed=5, max_requests=100_000, interval_ms=1000) as server:
        yield server


@pytest.fixture
def conn_id(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    sandbox.reset()
    monkeypatch.setenv("AIRFLOW_CONN_GHL_TOMBSTONES", json.dumps(sandbox.airflow_connection(0)))
    return "ghl_tombstones"


def _export(conn_id: str, out: Path, **kwargs: Any) -> dict[str, Any]:
    operator = GHLExportContactsOperator(
        task_id="export", ghl_conn_id=conn_id, output_path=f"file://{out}", page_limit=100, **kwargs
    )
    operator.execute(context={})
    return json.loads((out / "_manifest.json").read_text())


def _delete(sandbox: SandboxServer, ids: list[str]) -> None:
    for contact_id in ids:
        response = requests.delete(f"{sandbox.base_url}/contacts/{contact_id}", headers=sandbox.headers(0), timeout=10)
        assert response.status_code == 200, response.text


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("file_format", ["jsonl", "csv"])
def test_second_export_tombstones_exactly_the_contacts_deleted_since_the_first(
    conn_id: str, sandbox: SandboxServer, tmp_path: Path, file_format: str
) -> None:
    location = sandbox.location_ids[0]
    first_dir = FULL_EXPORT.path(tmp_path, location, ds=date(2026, 11, 22))
    second_dir = FULL_EXPORT.path(tmp_path, location, ds=date(2026, 11, 29))
    first = _export(conn_id, first_dir, file_format=file_format, records_per_file=120)
    assert (
        "deleted" not in first["datasets"] and first["tombstones"] is None
    )  # the first export has nothing to compare with

    deleted = sorted(sandbox.contact_ids(location)[::37])
    _delete(sandbox, deleted)
    second = _export(conn_id, second_dir, file_format=file_format, records_per_file=5)

    assert second["datasets"]["contacts"]["records"] == CONTACTS - len(deleted)
    tombstones = second["datasets"]["deleted"]
    assert tombstones["records"] == len(deleted) and len(tombstones["files"]) == 2  # 9 ids, 5 per file
    assert second["tombstones"]["previous_export"] == f"file://{first_dir}"
    assert second["tombstones"]["previous_records"] == CONTACTS
    if file_format == "jsonl":
        rows = [r for name in tombstones["files"] for r in _lines(second_dir / name)]
    else:
        import csv

        rows = [r for name in tombstones["files"] for r in csv.DictReader((second_dir / name).open())]
    assert sorted(r["id"] for r in rows) == deleted
    assert {(r["locationId"], r["detectedAt"]) for r in rows} == {(location, second["started_at"])}


def test_only_a_committed_export_of_the_same_location_counts(
    conn_id: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    location, other = sandbox.location_ids
    day = date(2026, 11, 22)
    first = FULL_EXPORT.path(tmp_path, location, ds=day)
    _export(conn_id, first)
    # An unfinished later run (no manifest) and a manifest of another location are passed over.
    unfinished = FULL_EXPORT.path(tmp_path, location, ds=date(2026, 11, 25))
    unfinished.mkdir(parents=True)
    foreign = FULL_EXPORT.path(tmp_path, location, ds=date(2026, 11, 26))
    foreign.mkdir(parents=True)
    (foreign / "_manifest.json").write_text(json.dumps({"dataset": "contacts", "location_id": other}))
    deleted = sandbox.contact_ids(location)[:3]
    _delete(sandbox, deleted)

    later = _export(conn_id, FULL_EXPORT.path(tmp_path, location, ds=date(2026, 11, 29)))
    assert later["tombstones"]["previous_export"] == f"file://{first}"
    assert later["datasets"]["deleted"]["records"] == 3

    # Outside the layout there is no previous run, and tombstones=False never looks.
    assert _export(conn_id, tmp_path / "adhoc")["tombstones"] is None
    off = _export(conn_id, FULL_EXPORT.path(tmp_path, location, ds=date(2026, 12, 6)), tombstones=False)
    assert off["tombstones"] is None and "deleted" not in off["datasets"]


def test_tombstones_must_be_a_bool(conn_id: str, tmp_path: Path) -> None:
    with pytest.raises(GHLInputError, match="tombstones"):
        _export(conn_id, tmp_path / "x", tombstones="yes")
    assert not (tmp_path / "x").exists()
