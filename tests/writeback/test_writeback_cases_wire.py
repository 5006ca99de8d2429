"""GHLWriteBackContactsOperator over the wire, case by case: duplicate on create, tags replaced, a token without the
custom-field scope, bad arguments, the failed-rows ratio, a finished run, gzip input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.exceptions import GHLConfigError, GHLInputError, GHLScopeError, GHLWriteBackRowsFailed
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator
from ghl_sandbox.testing import SandboxServer

CONN_ID = "ghl_sync_cases"


@pytest.fixture
def conn(clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(clean_sandbox.airflow_connection(0)))
    return CONN_ID


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _sync(conn_id: str, input_path: Path, results: Path, **kwargs: Any) -> dict[str, Any]:
    return GHLWriteBackContactsOperator(
        task_id="sync",
        ghl_conn_id=conn_id,
        input_path=str(input_path),
        results_path=f"file://{results}",
        retry_backoff=0.01,
        hook_params={"retry_backoff": 0.01},
        **kwargs,
    ).execute(context={})


def _rows(results: Path) -> list[dict[str, Any]]:
    manifest = json.loads((results / "_manifest.json").read_text())
    return [json.loads(line) for name in manifest["results"] for line in (results / name).read_text().splitlines()]


def _contact(conn_id: str, index: int = 0) -> dict[str, Any]:
    return sorted(GHLHook(conn_id).iter_contacts(page_limit=500), key=lambda c: c["id"])[index]


def test_a_duplicate_refused_on_create_updates_the_contact_ghl_names(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    existing = _contact(conn)
    before = len(clean_sandbox.contact_ids(clean_sandbox.location_ids[0]))
    # Matched on the phone only: no contact has it, so the row is created, and GHL refuses the e-mail's duplicate.
    record = {"email": existing["email"], "phone": "+15551230000", "firstName": "Dupe"}
    counts = _sync(conn, _write(tmp_path / "in.jsonl", [record]), tmp_path / "out", match_on=["id", "phone"])

    assert (counts["create"], counts["update"]) == (0, 1)
    [row] = _rows(tmp_path / "out")
    assert row["contact_id"] == existing["id"] and row["matched_by"] == "duplicate:email"
    assert sorted(row["changed"]) == ["firstName", "phone"]
    assert len(clean_sandbox.contact_ids(clean_sandbox.location_ids[0])) == before
    after = GHLHook(conn).get_contact(existing["id"])
    assert (after["firstName"], after["phone"]) == ("Dupe", "+15551230000")


def test_tags_mode_replace_makes_the_tags_equal_through_the_tag_endpoints(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    existing = next(c for c in GHLHook(conn).iter_contacts(page_limit=500) if len(c["tags"]) >= 2)
    keep = existing["tags"][0]
    record = {"id": existing["id"], "tags": [keep, "fresh-tag"]}
    clean_sandbox.clear_stats()
    counts = _sync(conn, _write(tmp_path / "in.jsonl", [record]), tmp_path / "out", tags_mode="replace")

    assert counts["update"] == 1 and counts["writes"] == 2
    routes = clean_sandbox.stats()["requests_by_route"]
    assert routes.get("POST /contacts/{contactId}/tags") == 1
    assert routes.get("DELETE /contacts/{contactId}/tags") == 1
    assert "PUT /contacts/{contactId}" not in routes  # tags never go through the update
    assert sorted(GHLHook(conn).get_contact(existing["id"])["tags"]) == sorted([keep, "fresh-tag"])

    clean_sandbox.clear_stats()  # and once equal, nothing to do
    again = _sync(conn, tmp_path / "in.jsonl", tmp_path / "again", tags_mode="replace")
    assert again["skip"] == 1 and clean_sandbox.stats()["writes"] == 0


def test_without_the_custom_field_scope_values_by_key_are_written_uncompared(
    clean_sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = clean_sandbox.issue_token(0, scopes=["contacts.readonly", "contacts.write"])
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(clean_sandbox.airflow_connection(0, private_token=token))
    )
    existing = next(c for c in GHLHook(CONN_ID).iter_contacts(page_limit=500) if c["customFields"])
    current = existing["customFields"][0]
    records = [
        # By id the value is still compared (equal: nothing to write); by key it cannot be.
        {"id": existing["id"], "customFields": [{"id": current["id"], "value": current["value"]}]},
        {"phone": existing["phone"], "customFields": {"contact.referral_code": "REF-1"}},
    ]
    counts = _sync(CONN_ID, _write(tmp_path / "in.jsonl", records), tmp_path / "out")

    assert (counts["skip"], counts["update"]) == (1, 1)
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    [degraded] = manifest["degraded"]
    assert degraded["missing_scope"] == "locations/customFields.readonly"
    assert "written as given" in degraded["lost"]
    assert _rows(tmp_path / "out")[1]["changed"] == ["customFields.contact.referral_code"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"input_path": "/no/such/file.csv"}, "input_path"),
        ({"input_path": "relative.csv"}, "input_path"),
        ({"match_on": ["email", "name"]}, "match_on"),
        ({"match_on": []}, "match_on"),
        ({"tags_mode": "merge"}, "tags_mode"),
        ({"max_failed_ratio": 1.5}, "max_failed_ratio"),
        ({"rows_per_file": 0}, "rows_per_file"),
        ({"dry_run": "maybe"}, "dry_run"),
        ({"results_path": "nowhere"}, "results_path"),
        ({"max_workers": 0}, "max_workers"),
        ({"retry_backoff": -1}, "retry_backoff"),
    ],
)
def test_bad_arguments_fail_naming_the_field_before_any_request(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    good = _write(tmp_path / "in.jsonl", [{"email": "a@b.co"}])
    args: dict[str, Any] = {"input_path": str(good), "results_path": f"file://{tmp_path}/out", **kwargs}
    clean_sandbox.clear_stats()
    op = GHLWriteBackContactsOperator(task_id="sync", ghl_conn_id=conn, **args)
    with pytest.raises(GHLInputError) as info:
        op.execute(context={})
    assert info.value.field == field
    assert clean_sandbox.stats()["requests_total"] == 0
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("in.xlsx", b"x", "name it .jsonl, .ndjson or .csv"),
        ("in.csv", b"email,favourite\na@b.co,x\n", "column 'favourite' is not a contact field"),
        ("in.csv", b"email,email\na@b.co,a@b.co\n", "column 'email' appears twice"),
        ("in.csv", b"", "no header line"),
    ],
)
def test_an_unusable_input_file_is_refused_before_any_request(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    (tmp_path / name).write_bytes(content)
    clean_sandbox.clear_stats()
    with pytest.raises(GHLInputError, match="input_path") as info:
        _sync(conn, tmp_path / name, tmp_path / "out")
    assert problem in str(info.value)
    assert clean_sandbox.stats()["requests_total"] == 0


def test_over_max_failed_ratio_the_task_fails_after_writing_the_results(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    records = [{"email": "fine.row@sync.example.com"}, {"email": "not an e-mail"}, {"firstName": "keyless"}]
    source = _write(tmp_path / "in.jsonl.gz", records)
    with pytest.raises(GHLWriteBackRowsFailed) as info:
        _sync(conn, source, tmp_path / "out")  # max_failed_ratio=0
    assert info.value.counts["failed"] == 2 and info.value.counts["create"] == 1
    manifest = json.loads((tmp_path / "out" / "_manifest.json").read_text())
    dead = gzip.decompress((tmp_path / "out" / manifest["dead_letter"][0]).read_bytes())
    assert dead == gzip.decompress(source.read_bytes()).split(b"\n", 1)[1]  # rows 2 and 3 as they came
    assert [r["error"] is not None for r in _rows(tmp_path / "out")] == [False, True, True]

    # The finished run is not repeated: nothing is sent, and it is judged the same way.
    clean_sandbox.clear_stats()
    with pytest.raises(GHLWriteBackRowsFailed):
        _sync(conn, source, tmp_path / "out")
    assert clean_sandbox.stats()["requests_total"] == 0
    counts = _sync(conn, source, tmp_path / "out", max_failed_ratio=0.7)
    assert counts["failed"] == 2 and clean_sandbox.stats()["requests_total"] == 0


def test_children_are_created_once_and_an_unknown_id_is_rejected(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    existing = _contact(conn, 3)
    task = {"title": "Sync check", "dueDate": "2027-02-01T08:00:00+01:00", "body": "b"}
    records = [
        {"id": existing["id"], "tasks": [task, task], "notes": [{"body": "From the warehouse"}]},
        {"id": "NoSuchContactId123"},
    ]
    source = _write(tmp_path / "in.jsonl", records)
    counts = _sync(conn, source, tmp_path / "out", max_failed_ratio=0.5)
    assert (counts["update"], counts["reject"], counts["writes"]) == (1, 1, 2)
    rows = _rows(tmp_path / "out")
    assert rows[0]["changed"] == ["tasks", "notes"] and rows[0]["writes"] == {"task_create": 1, "note_create": 1}
    assert "NoSuchContactId123" in rows[1]["error"]

    clean_sandbox.clear_stats()
    again = _sync(conn, source, tmp_path / "again", max_failed_ratio=0.5)
    assert again["skip"] == 1 and clean_sandbox.stats()["writes"] == 0
    tasks = [t for t in GHLHook(conn).get_tasks(existing["id"]) if t["title"] == "Sync check"]
    assert len(tasks) == 1 and tasks[0]["dueDate"] == "2027-02-01T07:00:00.000Z"


def test_a_finished_dry_run_is_not_taken_for_the_apply(conn: str, clean_sandbox: SandboxServer, tmp_path: Path) -> None:
    source = _write(tmp_path / "in.jsonl", [{"email": "planned.only@sync.example.com"}])
    assert _sync(conn, source, tmp_path / "out", dry_run=True)["create"] == 1
    clean_sandbox.clear_stats()
    with pytest.raises(GHLConfigError, match="finished run of something else"):
        _sync(conn, source, tmp_path / "out")
    assert clean_sandbox.stats()["writes"] == 0


def test_a_read_only_token_can_plan_but_not_apply(
    clean_sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = clean_sandbox.issue_token(0, scopes=["contacts.readonly", "locations/customFields.readonly"])
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(clean_sandbox.airflow_connection(0, private_token=token))
    )
    existing = _contact(CONN_ID)
    source = _write(tmp_path / "in.jsonl", [{"id": existing["id"], "firstName": "Planned"}])
    plan = _sync(CONN_ID, source, tmp_path / "plan", dry_run=True)
    assert plan["update"] == 1 and _rows(tmp_path / "plan")[0]["changed"] == ["firstName"]
    # Applying needs contacts.write: the task fails (a row cannot fix a token), nothing is written.
    with pytest.raises(GHLScopeError):
        _sync(CONN_ID, source, tmp_path / "apply")
    assert clean_sandbox.stats()["writes"] == 0
    assert not (tmp_path / "apply" / "_manifest.json").exists()


def test_an_unfinished_run_of_another_file_is_not_continued(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    first = _write(tmp_path / "first.jsonl", [{"email": "first@sync.example.com"}])
    other = _write(tmp_path / "other.jsonl", [{"email": "other@sync.example.com"}])
    out = tmp_path / "out"
    _sync(conn, first, out)
    (out / "_manifest.json").unlink()  # as if the first run had been killed before its manifest
    (out / "_checkpoint.json").write_text(
        json.dumps({"identity": {"input_path": str(first)}, "datasets": {"results": {"cursor": [1]}}})
    )
    clean_sandbox.clear_stats()
    with pytest.raises(GHLConfigError, match="unfinished run of something else"):
        _sync(conn, other, out)
    assert clean_sandbox.stats()["requests_total"] == 0


def test_an_apply_bound_to_its_plan_refuses_an_input_changed_since(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """#21: a reviewed plan is what gets applied. The input is changed between the dry run and the apply (as a
    writer of the drop folder could): the apply fails naming plan_path, with no request and nothing written."""
    contact = _contact(conn)
    source = _write(tmp_path / "in.jsonl", [{"id": contact["id"], "firstName": "Reviewed"}])
    plan = _sync(conn, source, tmp_path / "plan", dry_run=True)
    assert plan["update"] == 1 and plan["dry_run"] is True
    digest = json.loads((tmp_path / "plan" / "_manifest.json").read_text())["input_sha256"]

    _write(source, [{"id": contact["id"], "firstName": "Planted"}, {"email": "new@evil.example", "firstName": "X"}])
    clean_sandbox.clear_stats()
    with pytest.raises(GHLInputError, match="input changed since it was planned") as err:
        _sync(conn, source, tmp_path / "apply", plan_path=f"file://{tmp_path / 'plan'}")
    assert err.value.field == "plan_path" and "input_sha256" in str(err.value)
    assert clean_sandbox.stats()["requests_total"] == 0 and not (tmp_path / "apply").exists()
    assert _contact(conn)["firstName"] == contact["firstName"]

    # Planned again, the apply carries out exactly that plan.
    replan = _sync(conn, source, tmp_path / "plan2", dry_run=True)
    assert json.loads((tmp_path / "plan2" / "_manifest.json").read_text())["input_sha256"] != digest
    done = _sync(conn, source, tmp_path / "apply", plan_path=f"file://{tmp_path / 'plan2'}", max_failed_ratio=1)
    assert (done["update"], done["create"]) == (replan["update"], replan["create"]) == (1, 1)
    assert _contact(conn)["firstName"] == "Planted"


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        ("missing", "no finished plan"),
        ("applied", "another run: dry_run differ"),
        ("other_mode", "another run: tags_mode differ"),
    ],
)
def test_plan_path_must_be_the_finished_dry_run_of_this_apply(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path, plan: str, problem: str
) -> None:
    source = _write(tmp_path / "in.jsonl", [{"id": _contact(conn)["id"], "firstName": "Same"}])
    _sync(conn, source, tmp_path / "applied")
    _sync(conn, source, tmp_path / "other_mode", dry_run=True, tags_mode="replace")
    clean_sandbox.clear_stats()
    with pytest.raises(GHLInputError, match=problem) as err:
        _sync(conn, source, tmp_path / "apply", plan_path=f"file://{tmp_path / plan}")
    assert err.value.field == "plan_path"
    assert clean_sandbox.stats()["requests_total"] == 0 and not (tmp_path / "apply").exists()
    with pytest.raises(GHLInputError, match="plan_path is for the apply"):
        _sync(conn, source, tmp_path / "x", dry_run=True, plan_path=f"file://{tmp_path / 'applied'}")
