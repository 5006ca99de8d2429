"""Deletes as tombstones: two full exports, contacts deleted between them over GHL's API. In Airflow the second
run finds the first through its asset event, whatever the output paths; outside Airflow ``previous_output`` names it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_ghl.exceptions import GHLConfigError, GHLInputError
from airflow_provider_ghl.operators.export import GHLExportContactsOperator
from ghl_sandbox.testing import SandboxServer
from tests.dag_run import run_dag_file

DAGS = Path(__file__).with_name("dags")


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
    first_dir, second_dir = tmp_path / "first", tmp_path / "elsewhere" / "second"
    first = _export(conn_id, first_dir, file_format=file_format, records_per_file=120)
    assert (
        "deleted" not in first["datasets"] and first["tombstones"] is None
    )  # the first export has nothing to compare with

    deleted = sorted(sandbox.contact_ids(location)[::37])
    _delete(sandbox, deleted)
    second = _export(
        conn_id, second_dir, file_format=file_format, records_per_file=5, previous_output=f"file://{first_dir}"
    )

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


def test_previous_output_must_be_a_committed_full_export_of_the_location(
    conn_id: str, sandbox: SandboxServer, tmp_path: Path
) -> None:
    location, other = sandbox.location_ids
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "_manifest.json").write_text(json.dumps({"dataset": "contacts", "location_id": other}))
    enrichment = tmp_path / "enrichment"
    enrichment.mkdir()
    (enrichment / "_manifest.json").write_text(json.dumps({"dataset": "enrichment", "location_id": location}))
    for previous, problem in ((unfinished, "no committed export"), (foreign, other), (enrichment, "'enrichment'")):
        with pytest.raises(GHLInputError, match="previous_output") as err:
            _export(conn_id, tmp_path / "out", previous_output=f"file://{previous}")
        assert problem in str(err.value)
        assert not (tmp_path / "out").exists()  # refused before anything was written or requested

    # Outside Airflow, without previous_output, there is nothing to compare with; tombstones=False never looks.
    assert _export(conn_id, tmp_path / "adhoc")["tombstones"] is None
    off = _export(conn_id, tmp_path / "off", tombstones=False, previous_output=f"file://{tmp_path / 'adhoc'}")
    assert off["tombstones"] is None and "deleted" not in off["datasets"]


def test_a_finished_export_of_something_else_is_not_passed_off_as_this_one(conn_id: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _export(conn_id, out)
    with pytest.raises(GHLConfigError, match="finished run of something else"):
        _export(conn_id, out, file_format="csv")


def test_in_airflow_the_previous_run_is_found_whatever_the_output_paths(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    """``<root>/<ds_nodash>/ghl-contacts``: the runs share no parent directory pattern."""
    sandbox.reset()
    location = sandbox.location_ids[0]
    conn = sandbox.airflow_connection(0)

    def run(day: str) -> dict[str, Any]:
        run_dag_file(DAGS / "ghl_tombstones_in_airflow.py", "ghl_tombstones", conn, f"file://{tmp_path}", day)
        return json.loads((tmp_path / day.replace("-", "") / "ghl-contacts" / "_manifest.json").read_text())

    first = run("2026-11-22")
    assert first["tombstones"] is None and "deleted" not in first["datasets"]
    deleted = sorted(sandbox.contact_ids(location)[::23])
    _delete(sandbox, deleted)
    second = run("2026-11-29")

    assert second["tombstones"] == {
        "previous_export": f"file://{tmp_path}/20261122/ghl-contacts",
        "previous_records": CONTACTS,
    }
    rows = [
        r
        for name in second["datasets"]["deleted"]["files"]
        for r in _lines(tmp_path / "20261129" / "ghl-contacts" / name)
    ]
    assert sorted(r["id"] for r in rows) == deleted
    assert second["datasets"]["contacts"]["records"] == CONTACTS - len(deleted)


def test_tombstones_must_be_a_bool(conn_id: str, tmp_path: Path) -> None:
    with pytest.raises(GHLInputError, match="tombstones"):
        _export(conn_id, tmp_path / "x", tombstones="yes")
    assert not (tmp_path / "x").exists()
