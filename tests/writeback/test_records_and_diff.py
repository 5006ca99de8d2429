"""The write-back's pure parts: reading rows as they came, checking records, comparing them with contacts."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.writeback.diff import CustomFieldRefs, child_fingerprint, create_body, diff, same_value
from airflow_provider_ghl.writeback.matching import InFileKeys
from airflow_provider_ghl.writeback.rows import InputFile, RowRejected, parse_record

DEFINITIONS = [
    {"id": "cf1", "fieldKey": "contact.plan"},
    {"id": "cf2", "fieldKey": "contact.score"},
]


def _rows(path: Path, fmt: str, gzipped: bool = False) -> tuple[InputFile, list]:
    source = InputFile(ObjectStoragePath(f"file://{path}"), fmt, gzipped)
    return source, list(source.rows())


def test_csv_rows_keep_their_text_even_across_lines(tmp_path: Path) -> None:
    text = (
        "email,firstName,tags,customFields.contact.plan,notes\r\n"
        'a@x.co,Ada,vip|lead,pro,"[{""body"":\r\n ""two lines""}]"\r\n'
        "\r\n"
        "bad,Bob,,,\r\n"
    )
    path = tmp_path / "in.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    source, rows = _rows(path, "csv", gzipped=True)

    assert source.header == b"email,firstName,tags,customFields.contact.plan,notes\r\n"
    assert [r.number for r in rows] == [1, 2]  # the blank line is no row
    assert rows[0].raw == b'a@x.co,Ada,vip|lead,pro,"[{""body"":\r\n ""two lines""}]"\r\n'
    record = rows[0].record
    assert record is not None
    assert record.tags == ("vip", "lead") and record.notes == ({"body": "two lines"},)
    assert [(c.ref, c.by, c.value) for c in record.custom_fields] == [("contact.plan", "ref", "pro")]
    assert rows[1].record is None and rows[1].problem and rows[1].problem.startswith("email:")
    assert rows[1].raw == b"bad,Bob,,,\r\n"


def test_json_lines_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"email": "a@x.co", "dateAdded": "2020-01-01"}\n[1]\n{nope\n{"phone": "+15550100"}')
    _, rows = _rows(path, "jsonl")
    assert rows[0].record is not None and rows[0].record.fields == {"email": "a@x.co"}  # GHL's own fields ignored
    assert rows[1].problem == "not a JSON object: list"
    assert rows[2].problem and rows[2].problem.startswith("not JSON")
    assert rows[3].raw == b'{"phone": "+15550100"}\n'


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"email": "no-at-sign"}, "email"),
        ({"phone": "555-0100"}, "phone"),
        ({"companyName": "ACME", "gender": "x"}, "gender"),
        ({"dnd": "sometimes"}, "dnd"),
        ({"tags": "a", "customFields": [{"value": 1}]}, "customFields[0]"),
        ({"tasks": [{"title": "t"}]}, "tasks[0].dueDate"),
        ({"tasks": [{"title": "t", "dueDate": "2026-01-01T00:00:00Z", "owner": "u"}]}, "tasks[0].owner"),
        ({"notes": [{"body": ""}]}, "notes[0].body"),
        ({"id": "a/b"}, "id"),
    ],
)
def test_a_record_that_cannot_be_applied_is_rejected_naming_the_field(record: dict, field: str) -> None:
    with pytest.raises(RowRejected) as info:
        parse_record(record)
    assert str(info.value).startswith(f"{field}:")


def test_rows_sharing_a_key_and_rows_without_one_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"email": "A@x.co"}\n{"email": "a@x.co"}\n{"firstName": "k"}\n{"id": "c1", "email": "b@x.co"}\n')
    _, rows = _rows(path, "jsonl")
    keys = InFileKeys(["id", "email", "phone"])
    for row in rows:
        keys.claim(row)
    assert [r.problem for r in rows] == [
        None,
        "email: row 1 of this file has the same one (one row per contact)",
        "no key to match on: give one of id, email, phone",
        None,
    ]


def test_same_value_across_spellings() -> None:
    assert same_value("42", 42) and same_value(42.0, "42") and same_value(" pro ", "pro")
    assert same_value(["a", "b"], ["b", "a"])
    assert not same_value("01234", "1234")  # text stays text
    assert not same_value("a", ["a"]) and not same_value("1", 2)


def test_diff_writes_only_what_changed() -> None:
    refs = CustomFieldRefs(DEFINITIONS)
    contact = {
        "id": "c1",
        "firstName": "Ada",
        "email": "ada@x.co",
        "tags": ["VIP", "old"],
        "customFields": [{"id": "cf1", "value": "pro"}, {"id": "cf2", "value": 7}],
    }
    same = parse_record(
        {"email": "ADA@x.co", "firstName": "Ada", "tags": ["vip"], "customFields": {"plan": "pro", "cf2": "7"}}
    )
    assert diff(same, contact, refs, "add").empty

    changed = parse_record({"firstName": "Ada L.", "tags": ["vip", "new"], "customFields": {"contact.score": 8}})
    change = diff(changed, contact, refs, "add")
    assert change.fields == {"firstName": "Ada L.", "customFields": [{"id": "cf2", "field_value": 8}]}
    assert (change.tags_add, change.tags_remove, change.writes) == (["new"], [], 2)
    assert "tags" not in change.fields
    assert diff(changed, contact, refs, "replace").tags_remove == ["old"]

    with pytest.raises(RowRejected, match=r"customFields.nope"):
        diff(parse_record({"customFields": {"nope": 1}}), contact, refs, "add")


def test_a_birthday_and_its_midnight_are_the_same_day() -> None:
    record = parse_record({"dateOfBirth": "1990-01-02"})
    refs = CustomFieldRefs(DEFINITIONS)
    assert diff(record, {"dateOfBirth": "1990-01-02T00:00:00.000Z"}, refs, "add").empty
    assert diff(record, {"dateOfBirth": "1990-01-03"}, refs, "add").changed == ["dateOfBirth"]


def test_without_definitions_keys_are_sent_by_key_and_ids_still_compared() -> None:
    refs = CustomFieldRefs(None)
    contact = {"id": "c1", "customFields": [{"id": "cf1", "value": "pro"}]}
    record = parse_record({"customFields": [{"id": "cf1", "value": "pro"}, {"key": "contact.plan", "value": "pro"}]})
    change = diff(record, contact, refs, "add")
    assert change.fields == {"customFields": [{"key": "contact.plan", "field_value": "pro"}]}
    body, names = create_body(record, refs)
    assert body["customFields"][0] == {"id": "cf1", "field_value": "pro"} and names == [
        "customFields.cf1",
        "customFields.contact.plan",
    ]


def test_child_fingerprints_compare_instants_not_spellings() -> None:
    ours = parse_record({"tasks": [{"title": "Call", "dueDate": "2026-05-01T12:00:00+02:00"}]}).tasks[0]
    theirs = {"id": "t1", "title": "Call", "dueDate": "2026-05-01T10:00:00.000Z", "completed": True, "body": None}
    assert child_fingerprint("tasks", ours) == child_fingerprint("tasks", theirs)
    assert child_fingerprint("tasks", ours) != child_fingerprint("tasks", {**theirs, "title": "Call back"})


def test_an_oversized_row_is_rejected_without_being_held_and_the_rows_after_it_go_on(tmp_path: Path) -> None:
    """#21 item 8: one 40 MB JSON line (the review's took +700 MiB) is a rejected row that costs about one
    MAX_ROW_BYTES of memory; a value over MAX_FIELD_CHARS is rejected naming the field."""
    import tracemalloc

    from airflow_provider_ghl.writeback.rows import MAX_FIELD_CHARS, MAX_ROW_BYTES

    path = tmp_path / "in.jsonl"
    with path.open("wb") as out:
        out.write(b'{"email": "a@x.co"}\n{"email": "b@x.co", "firstName": "')
        for _ in range(40):
            out.write(b"x" * 1_000_000)
        out.write(
            b'"}\n{"email": "c@x.co", "lastName": "' + b"y" * (MAX_FIELD_CHARS + 1) + b'"}\n{"email": "d@x.co"}\n'
        )
    tracemalloc.start()
    try:
        _, rows = _rows(path, "jsonl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [r.number for r in rows] == [1, 2, 3, 4]
    assert rows[0].record is not None and rows[3].record is not None
    assert rows[1].record is None and rows[1].problem == f"a line over {MAX_ROW_BYTES} bytes: not read"
    assert rows[1].raw.startswith(b'{"email": "b@x.co"') and rows[1].raw.endswith(b"...\n") and len(rows[1].raw) < 300
    assert rows[2].problem == f"lastName: {MAX_FIELD_CHARS + 1} characters, over {MAX_FIELD_CHARS}"
    assert peak < 4 * MAX_ROW_BYTES, f"peak {peak} bytes"


def test_an_oversized_csv_row_or_cell_is_rejected_and_the_rows_after_it_go_on(tmp_path: Path) -> None:
    from airflow_provider_ghl.writeback.rows import MAX_ROW_BYTES

    path = tmp_path / "in.csv"
    long_line = "z" * (MAX_ROW_BYTES + 10)
    path.write_text(
        "email,firstName\n"
        "a@x.co,Ada\n"
        f"b@x.co,{long_line}\n"  # one physical line over the bound
        f'c@x.co,"{"w" * 200_000}"\n'  # one cell over the csv module's limit
        "d@x.co,Dee\n"
    )
    _, rows = _rows(path, "csv")
    assert [r.number for r in rows] == [1, 2, 3, 4]
    assert [r.record is not None for r in rows] == [True, False, False, True]
    assert rows[1].problem == f"a row over {MAX_ROW_BYTES} bytes: not read"
    assert rows[2].problem and rows[2].problem.startswith("not CSV: field larger than field limit")
    assert rows[3].record is not None and rows[3].record.fields["firstName"] == "Dee"
