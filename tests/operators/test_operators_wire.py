"""Every per-endpoint operator against the sandbox over HTTP: what it sends, what it returns, safe re-runs."""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.exceptions import GHLApiError, GHLDuplicateContactError, GHLInputError, GHLNotFoundError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.links import CONTACT_URL_XCOM_KEY
from airflow_provider_ghl.operators.associations import (
    GHLAddFollowersOperator,
    GHLAddToCampaignOperator,
    GHLAddToWorkflowOperator,
    GHLGetAppointmentsOperator,
    GHLRemoveFollowersOperator,
    GHLRemoveFromAllCampaignsOperator,
    GHLRemoveFromCampaignOperator,
    GHLRemoveFromWorkflowOperator,
)
from airflow_provider_ghl.operators.base import REQUESTS_XCOM_KEY
from airflow_provider_ghl.operators.contacts import (
    GHLBulkUpdateBusinessOperator,
    GHLCreateContactOperator,
    GHLDeleteContactOperator,
    GHLGetContactOperator,
    GHLGetContactsByBusinessOperator,
    GHLGetDuplicateContactOperator,
    GHLSearchContactsOperator,
    GHLUpdateContactOperator,
    GHLUpsertContactOperator,
)
from airflow_provider_ghl.operators.notes import (
    GHLCreateNoteOperator,
    GHLDeleteNoteOperator,
    GHLGetNoteOperator,
    GHLGetNotesOperator,
    GHLUpdateNoteOperator,
)
from airflow_provider_ghl.operators.tags import GHLAddTagsOperator, GHLBulkUpdateTagsOperator, GHLRemoveTagsOperator
from airflow_provider_ghl.operators.tasks import (
    GHLCompleteTaskOperator,
    GHLCreateTaskOperator,
    GHLDeleteTaskOperator,
    GHLGetTaskOperator,
    GHLGetTasksOperator,
    GHLUpdateTaskOperator,
)
from ghl_sandbox.testing import SandboxServer

Run = Callable[[Any], tuple[Any, dict[str, Any]]]


def _lines(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode().splitlines()]


@pytest.fixture
def hook(ghl_conn: str) -> GHLHook:
    return GHLHook(ghl_conn)


@pytest.fixture
def contact_id(ops_sandbox: SandboxServer, location: dict[str, Any]) -> str:
    return ops_sandbox.contact_ids(location["id"])[0]


def test_create_contact_is_safe_to_rerun(
    ghl_conn: str, hook: GHLHook, location: dict[str, Any], run_operator: Run
) -> None:
    fields = {"firstName": "Ada", "email": "ada@example.com", "tags": ["new"]}
    created, xcom = run_operator(GHLCreateContactOperator(task_id="c", ghl_conn_id=ghl_conn, fields=fields))
    contact_id = created["contact"]["id"]
    assert created["action"] == "created" and created["contact"]["tags"] == ["new"]
    assert xcom[CONTACT_URL_XCOM_KEY] == (
        f"https://app.gohighlevel.com/v2/location/{location['id']}/contacts/detail/{contact_id}"
    )

    with pytest.raises(GHLDuplicateContactError, match="if_exists"):
        run_operator(GHLCreateContactOperator(task_id="c", ghl_conn_id=ghl_conn, fields=fields))
    skipped, _ = run_operator(
        GHLCreateContactOperator(task_id="c", ghl_conn_id=ghl_conn, fields=fields, if_exists="skip")
    )
    assert (skipped["action"], skipped["contact"]["id"]) == ("skipped", contact_id)

    hook.add_tags(contact_id, ["kept"])
    again = {"firstName": "Augusta", "email": "ada@example.com", "tags": ["returning"]}
    updated, _ = run_operator(
        GHLCreateContactOperator(task_id="c", ghl_conn_id=ghl_conn, fields=again, if_exists="update")
    )
    assert (updated["action"], updated["contact"]["id"]) == ("updated", contact_id)
    stored = hook.get_contact(contact_id)
    assert stored["firstName"] == "Augusta"
    assert set(stored["tags"]) == {"new", "kept", "returning"}  # added, never replaced
    assert len([c for c in hook.iter_contacts() if c.get("email") == "ada@example.com"]) == 1


def test_every_operator_logs_one_summary_line(
    ghl_conn: str, location: dict[str, Any], run_operator: Run, capfd: pytest.CaptureFixture[str]
) -> None:
    fields = {"firstName": "Grace", "email": "grace@example.com"}
    run_operator(GHLCreateContactOperator(task_id="c", ghl_conn_id=ghl_conn, fields=fields))
    out, err = capfd.readouterr()
    sys.stdout.write(out + err)  # still seen by the checks on what reached the logs
    lines = re.findall(r"GHL summary: [^\[\n]*", out + err)
    assert len(lines) == 1, lines
    assert re.fullmatch(
        rf"GHL summary: location={location['id']} requests=[1-9]\d* responses_429=0 records=- seconds=\d+\.\d",
        lines[0].strip(),
    ), lines[0]


def test_create_contact_duplicate_found_only_by_create(
    ghl_conn: str, hook: GHLHook, location: dict[str, Any], run_operator: Run
) -> None:
    """A contact the lookup cannot see (no e-mail/phone in the new fields' lookup) but create refuses is handled
    through the duplicate error's contact id."""
    existing = hook.create_contact({"firstName": "Bo", "phone": "+15550100"})
    op = GHLCreateContactOperator(task_id="c", ghl_conn_id=ghl_conn, fields={"phone": "+15550100"}, if_exists="skip")
    result, _ = run_operator(op)
    assert (result["action"], result["contact"]["id"]) == ("skipped", existing["id"])


def test_get_update_upsert_delete_contact(
    ghl_conn: str, hook: GHLHook, contact_id: str, location: dict[str, Any], run_operator: Run
) -> None:
    got, xcom = run_operator(GHLGetContactOperator(task_id="g", ghl_conn_id=ghl_conn, contact_id=contact_id))
    assert got["id"] == contact_id and xcom[CONTACT_URL_XCOM_KEY].endswith(f"/contacts/detail/{contact_id}")
    tags_before = got.get("tags", [])

    updated, _ = run_operator(
        GHLUpdateContactOperator(task_id="u", ghl_conn_id=ghl_conn, contact_id=contact_id, fields='{"city": "Oslo"}')
    )
    assert updated["city"] == "Oslo" and updated.get("tags", []) == tags_before

    upsert = {"email": "upsert@example.com", "firstName": "Up"}
    first, _ = run_operator(GHLUpsertContactOperator(task_id="s", ghl_conn_id=ghl_conn, fields=upsert))
    second, xcom = run_operator(GHLUpsertContactOperator(task_id="s", ghl_conn_id=ghl_conn, fields=upsert))
    assert (first["action"], second["action"]) == ("created", "updated")
    assert first["contact"]["id"] == second["contact"]["id"]
    assert xcom[CONTACT_URL_XCOM_KEY].endswith(first["contact"]["id"])

    found, _ = run_operator(
        GHLGetDuplicateContactOperator(task_id="d", ghl_conn_id=ghl_conn, contact_email="upsert@example.com")
    )
    assert found["id"] == first["contact"]["id"]
    none, xcom = run_operator(
        GHLGetDuplicateContactOperator(task_id="d", ghl_conn_id=ghl_conn, contact_phone="+19999999")
    )
    assert none is None and CONTACT_URL_XCOM_KEY not in xcom

    victim = first["contact"]["id"]
    deleted, xcom = run_operator(GHLDeleteContactOperator(task_id="x", ghl_conn_id=ghl_conn, contact_id=victim))
    assert deleted == {"contact_id": victim, "deleted": True} and set(xcom) == {REQUESTS_XCOM_KEY}
    # The try's requests, for the status page: one DELETE, answered, and the daily budget it reported.
    record = xcom[REQUESTS_XCOM_KEY]
    assert (record["requests"], record["responses_429"], record["daily_limit"]) == (1, 0, 200_000)
    assert 0 < record["daily_remaining"] < 200_000
    with pytest.raises(GHLNotFoundError):
        run_operator(GHLDeleteContactOperator(task_id="x", ghl_conn_id=ghl_conn, contact_id=victim))
    again, _ = run_operator(
        GHLDeleteContactOperator(task_id="x", ghl_conn_id=ghl_conn, contact_id=victim, missing_ok=True)
    )
    assert again == {"contact_id": victim, "deleted": False}
    missing, _ = run_operator(
        GHLGetContactOperator(task_id="g", ghl_conn_id=ghl_conn, contact_id=victim, missing_ok=True)
    )
    assert missing is None


def test_search_contacts_ids_file_and_window(
    ghl_conn: str, ops_sandbox: SandboxServer, location: dict[str, Any], run_operator: Run, tmp_path: Path
) -> None:
    every = set(ops_sandbox.contact_ids(location["id"]))
    result, _ = run_operator(GHLSearchContactsOperator(task_id="s", ghl_conn_id=ghl_conn, page_limit=37))
    assert result["total"] == result["count"] == len(every) and set(result["ids"]) == every

    out = tmp_path / "search" / "all.jsonl.gz"
    written, _ = run_operator(
        GHLSearchContactsOperator(task_id="s", ghl_conn_id=ghl_conn, page_limit=50, output_path=f"file://{out}")
    )
    assert written["output_path"] == f"file://{out}" and written["count"] == len(every)
    assert {c["id"] for c in _lines(out)} == every
    assert [p.name for p in out.parent.iterdir()] == ["all.jsonl.gz"]  # no temp file left behind

    before = datetime.now(UTC) - timedelta(seconds=1)
    touched = ops_sandbox.touch_contacts(location["id"], count=4)
    window, _ = run_operator(
        GHLSearchContactsOperator(
            task_id="s", ghl_conn_id=ghl_conn, since=before.isoformat(), until=datetime.now(UTC) + timedelta(seconds=5)
        )
    )
    assert sorted(window["ids"]) == sorted(touched)

    email = GHLHook(ghl_conn).get_contact(touched[0])["email"]
    by_email = GHLSearchContactsOperator(
        task_id="s", ghl_conn_id=ghl_conn, filters=json.dumps([{"field": "email", "operator": "eq", "value": email}])
    )
    assert run_operator(by_email)[0]["ids"] == [touched[0]]


def test_search_contacts_refuses_an_xcom_that_would_be_too_big(
    ghl_conn: str, monkeypatch: pytest.MonkeyPatch, run_operator: Run, tmp_path: Path
) -> None:
    monkeypatch.setattr("airflow_provider_ghl.operators.contacts.MAX_XCOM_IDS", 10)
    with pytest.raises(GHLInputError, match=r"output_path: \d+ contacts match"):
        run_operator(GHLSearchContactsOperator(task_id="s", ghl_conn_id=ghl_conn))
    assert not list(tmp_path.iterdir())


def test_business_operators(ghl_conn: str, hook: GHLHook, ops_sandbox: SandboxServer, location: dict[str, Any],
                            run_operator: Run, tmp_path: Path) -> None:  # fmt: skip
    ids = ops_sandbox.contact_ids(location["id"])[:3]
    business = location["businesses"][1]["id"]
    attached, _ = run_operator(
        GHLBulkUpdateBusinessOperator(task_id="b", ghl_conn_id=ghl_conn, contact_ids=ids, business_id=business)
    )
    assert attached == {"count": 3, "business_id": business}
    out = tmp_path / "business.jsonl"
    listed, _ = run_operator(
        GHLGetContactsByBusinessOperator(task_id="l", ghl_conn_id=ghl_conn, business_id=business, output_path=str(out))
    )
    assert set(ids) <= set(listed["ids"]) and listed["count"] == len(_lines(out))
    run_operator(
        GHLBulkUpdateBusinessOperator(task_id="b", ghl_conn_id=ghl_conn, contact_ids=ids[:1], business_id=None)
    )
    assert hook.get_contact(ids[0]).get("businessId") in (None, "")
    with pytest.raises(GHLApiError, match="not found"):
        run_operator(
            GHLBulkUpdateBusinessOperator(task_id="b", ghl_conn_id=ghl_conn, contact_ids=["nope"], business_id=business)
        )


def test_tag_operators(ghl_conn: str, hook: GHLHook, ops_sandbox: SandboxServer, location: dict[str, Any],
                       run_operator: Run) -> None:  # fmt: skip
    ids = ops_sandbox.contact_ids(location["id"])[:3]
    added, xcom = run_operator(GHLAddTagsOperator(task_id="a", ghl_conn_id=ghl_conn, contact_id=ids[0], tags="vip"))
    assert "vip" in added["tags"] and xcom[CONTACT_URL_XCOM_KEY].endswith(ids[0])
    removed, _ = run_operator(GHLRemoveTagsOperator(task_id="r", ghl_conn_id=ghl_conn, contact_id=ids[0], tags=["vip"]))
    assert "vip" not in removed["tags"] and "vip" not in hook.get_contact(ids[0])["tags"]

    bulk, _ = run_operator(GHLBulkUpdateTagsOperator(task_id="b", ghl_conn_id=ghl_conn, contact_ids=ids, tags=["q4"]))
    assert bulk == {"action": "add", "succeeded": 3, "failed": []}
    assert all("q4" in hook.get_contact(i)["tags"] for i in ids)
    bad = [*ids[:1], "no-such-contact"]
    with pytest.raises(GHLApiError, match=r"1 contact\(s\): no-such-contact: contact not found"):
        run_operator(
            GHLBulkUpdateTagsOperator(task_id="b", ghl_conn_id=ghl_conn, contact_ids=bad, tags=["q4"], action="remove")
        )
    partial, _ = run_operator(
        GHLBulkUpdateTagsOperator(
            task_id="b", ghl_conn_id=ghl_conn, contact_ids=bad, tags=[], action="remove", remove_all_tags=True,
            fail_on_error=False,
        )
    )  # fmt: skip
    assert partial["succeeded"] == 1 and partial["failed"][0]["contactId"] == "no-such-contact"
    assert hook.get_contact(ids[0])["tags"] == []


def test_task_operators(ghl_conn: str, hook: GHLHook, contact_id: str, run_operator: Run, tmp_path: Path) -> None:
    base = {"ghl_conn_id": ghl_conn, "contact_id": contact_id}
    task, xcom = run_operator(
        GHLCreateTaskOperator(task_id="c", **base, title="Call", due_date="2030-01-02T03:04:05Z", body="about it")
    )
    assert (task["title"], task["dueDate"], task["completed"]) == ("Call", "2030-01-02T03:04:05.000Z", False)
    assert xcom[CONTACT_URL_XCOM_KEY].endswith(contact_id)
    tid = task["id"]

    out = tmp_path / "tasks.jsonl"
    listed, _ = run_operator(GHLGetTasksOperator(task_id="l", **base, output_path=str(out)))
    assert tid in listed["ids"] and listed["count"] == len(_lines(out)) == len(hook.get_tasks(contact_id))
    got, _ = run_operator(GHLGetTaskOperator(task_id="g", **base, ghl_task_id=tid))
    assert got["body"] == "about it"
    updated, _ = run_operator(
        GHLUpdateTaskOperator(
            task_id="u", **base, ghl_task_id=tid, fields={"title": "Call twice", "dueDate": datetime(2031, 1, 1)}
        )
    )
    assert (updated["title"], updated["dueDate"]) == ("Call twice", "2031-01-01T00:00:00.000Z")
    done, _ = run_operator(GHLCompleteTaskOperator(task_id="k", **base, ghl_task_id=tid))
    assert done["completed"] is True
    reopened, _ = run_operator(GHLCompleteTaskOperator(task_id="k", **base, ghl_task_id=tid, completed=False))
    assert reopened["completed"] is False
    gone, _ = run_operator(GHLDeleteTaskOperator(task_id="x", **base, ghl_task_id=tid))
    assert gone == {"contact_id": contact_id, "task_id": tid, "deleted": True}
    again, _ = run_operator(GHLDeleteTaskOperator(task_id="x", **base, ghl_task_id=tid, missing_ok=True))
    assert again["deleted"] is False
    with pytest.raises(GHLNotFoundError):
        run_operator(GHLDeleteTaskOperator(task_id="x", **base, ghl_task_id=tid))


def test_note_operators(ghl_conn: str, hook: GHLHook, contact_id: str, run_operator: Run, tmp_path: Path) -> None:
    base = {"ghl_conn_id": ghl_conn, "contact_id": contact_id}
    note, xcom = run_operator(
        GHLCreateNoteOperator(task_id="c", **base, body="Met at the fair", title="Fair", pinned=True)
    )
    assert (note["body"], note["title"], note["pinned"]) == ("Met at the fair", "Fair", True)
    assert xcom[CONTACT_URL_XCOM_KEY].endswith(contact_id)
    nid = note["id"]
    out = tmp_path / "notes.jsonl"
    listed, _ = run_operator(GHLGetNotesOperator(task_id="l", **base, output_path=f"file://{out}"))
    assert nid in listed["ids"] and {n["id"] for n in _lines(out)} == set(listed["ids"])
    assert run_operator(GHLGetNoteOperator(task_id="g", **base, note_id=nid))[0]["title"] == "Fair"
    updated, _ = run_operator(GHLUpdateNoteOperator(task_id="u", **base, note_id=nid, fields={"body": "Met twice"}))
    assert updated["body"] == "Met twice"
    assert run_operator(GHLDeleteNoteOperator(task_id="x", **base, note_id=nid))[0]["deleted"] is True
    assert run_operator(GHLDeleteNoteOperator(task_id="x", **base, note_id=nid, missing_ok=True))[0]["deleted"] is False
    with pytest.raises(GHLNotFoundError):
        run_operator(GHLGetNoteOperator(task_id="g", **base, note_id=nid))


def test_appointments_followers_campaigns_workflows(
    ghl_conn: str, hook: GHLHook, contact_id: str, location: dict[str, Any], run_operator: Run
) -> None:
    base = {"ghl_conn_id": ghl_conn, "contact_id": contact_id}
    appointments, _ = run_operator(GHLGetAppointmentsOperator(task_id="a", **base))
    expected = [a["id"] for a in hook.get_appointments(contact_id)]
    assert appointments == {"count": len(expected), "ids": expected}

    users = location["users"][:2]
    added, _ = run_operator(GHLAddFollowersOperator(task_id="f", **base, followers=users))
    assert set(users) <= set(added["followers"]) and set(added["added"]) <= set(users)
    removed, _ = run_operator(GHLRemoveFollowersOperator(task_id="f", **base, followers=users[:1]))
    assert removed["removed"] == users[:1] and users[0] not in removed["followers"]

    campaign, other = location["campaigns"][:2]
    assert run_operator(GHLAddToCampaignOperator(task_id="c", **base, campaign_id=campaign))[0]["member"] is True
    run_operator(GHLAddToCampaignOperator(task_id="c", **base, campaign_id=other))
    assert run_operator(GHLRemoveFromCampaignOperator(task_id="c", **base, campaign_id=campaign))[0]["member"] is False
    all_out, _ = run_operator(GHLRemoveFromAllCampaignsOperator(task_id="c", **base))
    assert all_out == {"contact_id": contact_id, "removed_from_all_campaigns": True}
    with pytest.raises(GHLNotFoundError):
        run_operator(GHLAddToCampaignOperator(task_id="c", **base, campaign_id="no-such-campaign"))

    workflow = location["workflows"][0]
    joined, xcom = run_operator(
        GHLAddToWorkflowOperator(task_id="w", **base, workflow_id=workflow, event_start_time="2030-06-01T09:00:00Z")
    )
    assert joined == {"contact_id": contact_id, "workflow_id": workflow, "member": True}
    assert xcom[CONTACT_URL_XCOM_KEY].endswith(contact_id)
    left, _ = run_operator(GHLRemoveFromWorkflowOperator(task_id="w", **base, workflow_id=workflow))
    assert left["member"] is False


def test_contact_link_follows_the_app_url_of_the_connection(
    ops_sandbox: SandboxServer, location: dict[str, Any], contact_id: str, monkeypatch: pytest.MonkeyPatch,
    run_operator: Run,
) -> None:  # fmt: skip
    conn = ops_sandbox.airflow_connection(0, app_url="agency.example.com/")
    monkeypatch.setenv("AIRFLOW_CONN_GHL_WHITELABEL", json.dumps(conn))
    _, xcom = run_operator(GHLGetContactOperator(task_id="g", ghl_conn_id="ghl_whitelabel", contact_id=contact_id))
    assert xcom[CONTACT_URL_XCOM_KEY] == (
        f"https://agency.example.com/v2/location/{location['id']}/contacts/detail/{contact_id}"
    )


def test_list_xcom_keeps_the_first_ids_and_says_so(
    ghl_conn: str, ops_sandbox: SandboxServer, location: dict[str, Any], run_operator: Run,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    ids = ops_sandbox.contact_ids(location["id"])[:3]
    business = location["businesses"][0]["id"]
    GHLHook(ghl_conn).bulk_update_business(ids, business)
    monkeypatch.setattr("airflow_provider_ghl.operators.base.MAX_XCOM_IDS", 2)
    listed, _ = run_operator(GHLGetContactsByBusinessOperator(task_id="l", ghl_conn_id=ghl_conn, business_id=business))
    assert listed["count"] >= 3 and len(listed["ids"]) == 2 and listed["ids_truncated"] is True
    out, err = capfd.readouterr()
    assert "set output_path" in caplog.text + out + err  # the task logger may write to the console directly
