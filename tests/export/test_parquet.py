"""Parquet parts offline: values that do not fit, files as structs, no definitions, a resumed export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.export.contacts import export_contacts
from airflow_provider_ghl.outputs.parquet import ParquetTable
from tests.export.parquet_support import pa, pq
from tests.export.test_output import _contacts, _output, _pager

DEFINITIONS = [
    {"id": "f1", "fieldKey": "contact.score", "dataType": "NUMERICAL"},
    {"id": "f2", "fieldKey": "contact.files", "dataType": "FILE_UPLOAD"},
    {"id": "f3", "fieldKey": "contact.picks", "dataType": "MULTIPLE_OPTIONS"},
]


def _rows(table: ParquetTable, records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    convert, mismatches = table.converter(), {}
    rows = [convert(r, mismatches) for r in records]
    pa.Table.from_pylist(rows, schema=table.schema())  # every row fits the schema
    return rows, mismatches


def test_a_value_that_does_not_fit_is_null_in_its_column_kept_raw_and_counted() -> None:
    files = {"u1": {"url": "https://x/a.pdf", "meta": {"originalname": "a.pdf"}}}
    record = {
        "id": "c1", "dateAdded": "2026-11-01T10:00:00.000Z", "tags": ["a"], "dnd": "maybe", "unknown": {"x": 1},
        "customFields": [{"id": "f1", "value": "n/a"}, {"id": "f2", "value": files}, {"id": "f3", "value": ["p"]}],
    }  # fmt: skip
    rows, mismatches = _rows(ParquetTable.for_contacts(DEFINITIONS), [record])
    row = rows[0]
    assert row.get("contact.score") is None and '"n/a"' in row["customFields"]
    assert row["contact.files"] == [{"id": "u1", "url": "https://x/a.pdf", "name": "a.pdf"}]
    assert row["contact.picks"] == ["p"]
    assert row["dnd"] is None and mismatches == {"contact.score": 1, "dnd": 1}
    assert row["_extra"] == '{"unknown":{"x":1}}'


def test_without_definitions_every_custom_value_is_still_in_the_raw_column() -> None:
    table = ParquetTable.for_contacts([])
    rows, mismatches = _rows(table, _contacts(2))
    assert [n for n in table.schema().names if n.startswith("contact.")] == []
    assert rows[1]["customFields"] == '[{"id":"f1","value":"1"}]' and mismatches == {}


def test_killed_parquet_export_resumes_without_duplicates(tmp_path: Path) -> None:
    out = _output(tmp_path, fmt="parquet", compression="gzip")
    contacts = _contacts(1_050)
    with pytest.raises(ConnectionError):
        export_contacts(_pager(contacts, 100, fail_after=7), out, custom_fields={}, definitions=DEFINITIONS,
                        records_per_file=300)  # fmt: skip
    assert out.read_checkpoints()["contacts"].records == 600
    summary = export_contacts(_pager(contacts, 100), out, custom_fields={}, definitions=DEFINITIONS,
                              records_per_file=300)  # fmt: skip
    assert summary["resumed_from_records"] == 600 and summary["files"][0] == "contacts-00001.parquet"
    table = pa.concat_tables([pq.read_table(out.root.path + "/" + name) for name in summary["files"]])
    assert table.column("id").to_pylist() == [c["id"] for c in contacts]
    assert table.column("contact.score").to_pylist()[:3] == [0.0, 1.0, 2.0]
    assert (
        pq.ParquetFile(out.root.path + "/" + summary["files"][0]).metadata.row_group(0).column(0).compression == "GZIP"
    )
    assert not [p for p in out.root.iterdir() if p.name.endswith(".inprogress")]
