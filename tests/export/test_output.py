"""Export output: whole-file publishing, checkpoints, manifest as commit marker, resume without duplicates."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.checks import output_location
from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.export.contacts import export_contacts, with_custom_fields_by_key
from airflow_provider_ghl.outputs.directory import CHECKPOINT, MANIFEST, OutputDirectory, flatten


def _output(tmp_path: Path, **kwargs: Any) -> OutputDirectory:
    return OutputDirectory(output_location("output_path", f"file://{tmp_path}/out"), **kwargs)


def _contacts(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"c{i:05d}", "email": f"c{i}@example.com", "tags": ["a", "b"], "searchAfter": [i, f"c{i:05d}"],
         "customFields": [{"id": "f1", "value": str(i)}], "dndSettings": {"SMS": {"status": "active"}}}
        for i in range(n)
    ]  # fmt: skip


def _pager(contacts: list[dict[str, Any]], page: int, fail_after: int | None = None) -> Any:
    """A page source over ``contacts`` honouring the searchAfter cursor; optionally dies after N pages."""

    def pages(cursor: list[Any] | None) -> Any:
        start = 0 if cursor is None else next(i + 1 for i, c in enumerate(contacts) if c["searchAfter"] == cursor)
        for served, i in enumerate(range(start, len(contacts) + 1, page)):
            if fail_after is not None and served == fail_after:
                raise ConnectionError("worker lost")
            yield contacts[i : i + page], len(contacts)

    return pages


def _read_ids(out: OutputDirectory) -> list[str]:
    ids = []
    for name in out.read_manifest()["files"]:
        raw = (out.root / name).read_bytes()
        text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
        ids += [json.loads(line)["id"] for line in text.splitlines()]
    return ids


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "non-empty URI"),
        ("relative/dir", "absolute path or a URI"),
        ("notaproto://bucket/x", "not a usable storage URI"),
    ],
)
def test_unusable_output_uri_is_refused_naming_the_field(uri: str, message: str) -> None:
    with pytest.raises(GHLConfigError, match=message) as err:
        output_location("output_path", uri)
    assert "output_path" in str(err.value)


def test_bad_format_and_compression_are_refused(tmp_path: Path) -> None:
    with pytest.raises(GHLConfigError, match="format"):
        _output(tmp_path, fmt="xml")
    with pytest.raises(GHLConfigError, match="compression"):
        _output(tmp_path, compression="zstd")


def test_part_is_invisible_until_published(tmp_path: Path) -> None:
    out = _output(tmp_path)
    part = out.open_part("contacts", 1)
    part.write({"id": "x"})
    assert not (out.root / "contacts-00001.jsonl").exists()
    info = part.publish()
    assert (out.root / "contacts-00001.jsonl").read_text() == '{"id":"x"}\n'
    assert (info.name, info.records) == ("contacts-00001.jsonl", 1)
    assert [c.name for c in out.root.iterdir()] == ["contacts-00001.jsonl"]


def test_csv_flattens_named_columns_and_gzip_round_trips(tmp_path: Path) -> None:
    out = _output(tmp_path, fmt="csv", compression="gzip")
    part = out.open_part("contacts", 1, ["id", "tags", "dndSettings.SMS.status", "customFieldsByKey.score"])
    part.write(with_custom_fields_by_key(_contacts(1)[0], {"f1": "score"}))
    part.publish()
    text = gzip.decompress((out.root / "contacts-00001.csv.gz").read_bytes()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows == [{"id": "c00000", "tags": "a|b", "dndSettings.SMS.status": "active", "customFieldsByKey.score": "0"}]
    assert flatten({"a": [{"b": 1}]}) == {"a": '[{"b": 1}]'}


def test_export_writes_parts_then_manifest_last(tmp_path: Path) -> None:
    out = _output(tmp_path, compression="gzip")
    contacts = _contacts(2_345)
    summary = export_contacts(_pager(contacts, 100), out, custom_fields={"f1": "score"}, records_per_file=1_000)
    assert summary["files"] == ["contacts-00001.jsonl.gz", "contacts-00002.jsonl.gz", "contacts-00003.jsonl.gz"]
    assert (summary["records"], summary["ghl_total"]) == (2_345, 2_345)
    # Until the manifest is written the checkpoint says how far it got; the manifest then replaces it.
    assert (out.root / CHECKPOINT).exists() and not (out.root / MANIFEST).exists()
    out.write_manifest(summary)
    assert not (out.root / CHECKPOINT).exists()
    assert _read_ids(out) == [c["id"] for c in contacts]


def test_killed_export_resumes_from_its_checkpoint_without_duplicates(tmp_path: Path) -> None:
    out = _output(tmp_path)
    contacts = _contacts(1_050)
    with pytest.raises(ConnectionError):
        export_contacts(_pager(contacts, 100, fail_after=7), out, custom_fields={}, records_per_file=300)
    # Two parts (600 records) were checkpointed; the 100 records of the third part in progress were not.
    assert out.read_checkpoints()["contacts"].records == 600
    # A crashed attempt can also leave a published part that its checkpoint never recorded.
    (out.root / "contacts-00003.jsonl").write_text('{"id": "stale"}\n')
    summary = export_contacts(_pager(contacts, 100), out, custom_fields={}, records_per_file=300)
    assert summary["resumed_from_records"] == 600
    out.write_manifest(summary)
    ids = _read_ids(out)
    assert ids == [c["id"] for c in contacts]
    assert not [p for p in out.root.iterdir() if p.name.endswith(".inprogress")]


def test_objectstoragepath_accepts_plain_absolute_paths(tmp_path: Path) -> None:
    assert isinstance(output_location("output_path", str(tmp_path)), ObjectStoragePath)


def test_resume_leaves_other_files_alone_and_refuses_a_different_export(tmp_path: Path) -> None:
    out = _output(tmp_path)
    contacts = _contacts(500)
    with pytest.raises(ConnectionError):
        export_contacts(_pager(contacts, 100, fail_after=4), out, custom_fields={}, records_per_file=200)
    (out.root / "README.jsonl").write_text("mine\n")  # the user's own files share the directory
    (out.root / "contacts-final.jsonl").write_text("mine\n")
    # Another format (or location, or window) must not continue this checkpoint.
    other = OutputDirectory(out.root, compression="gzip")
    with pytest.raises(GHLConfigError, match="unfinished export of something else"):
        export_contacts(_pager(contacts, 100), other, custom_fields={}, records_per_file=200)
    summary = export_contacts(_pager(contacts, 100), out, custom_fields={}, records_per_file=200)
    out.write_manifest(summary)
    assert _read_ids(out) == [c["id"] for c in contacts]
    assert (out.root / "README.jsonl").read_text() == (out.root / "contacts-final.jsonl").read_text() == "mine\n"


def test_json_lines_encoder_keeps_what_orjson_refuses(tmp_path: Path) -> None:
    # orjson is the fast path; an integer beyond 64 bits goes through json instead of failing the export.
    out = _output(tmp_path)
    part = out.open_part("contacts", 1)
    part.write({"id": "é", "big": 2**70, "n": 1.5})
    part.write({"id": "x", "tags": ["a"]})
    part.publish()
    lines = (out.root / "contacts-00001.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"id": "é", "big": 2**70, "n": 1.5}, {"id": "x", "tags": ["a"]}]
    assert lines[0] == '{"id":"é","big":1180591620717411303424,"n":1.5}'


def test_export_hands_the_frozen_heap_back(tmp_path: Path) -> None:
    import gc

    before = gc.get_freeze_count()
    export_contacts(_pager(_contacts(10), 5), _output(tmp_path), custom_fields={})
    assert gc.get_freeze_count() == before


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("+15550000000", "+15550000000"),  # an E.164 phone
        ("-3.5", "-3.5"),
        ("+1e5", "+1e5"),
        ("Ada", "Ada"),
        ("", ""),
        (42, 42),
        (None, None),
    ],
)
def test_a_cell_that_would_start_a_formula_gets_a_leading_quote(cell: object, written: object) -> None:
    from airflow_provider_ghl.outputs.directory import neutralised

    assert neutralised(cell) == written
