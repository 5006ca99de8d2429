"""What payloads lack comes from the sandbox over HTTP, through the hook: one request per missing record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.webhooks.apply import HookRecordSource, drain
from airflow_provider_ghl.webhooks.inbox_sqlite import SQLiteInbox
from ghl_sandbox.testing import SandboxServer
from tests.webhooks.events import event, read_dataset, store

from ghl_layout import WEBHOOK_BATCHES


@pytest.fixture
def hook(clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> GHLHook:
    monkeypatch.setenv(
        "AIRFLOW_CONN_GHL_WIRE", json.dumps(clean_sandbox.airflow_connection(0, budget_backend="process"))
    )
    return GHLHook(ghl_conn_id="ghl_wire")


def routes(sandbox: SandboxServer) -> dict[str, int]:
    return dict(sandbox.stats()["requests_by_route"])


def test_only_what_payloads_lack_is_asked_for(hook: GHLHook, clean_sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox = clean_sandbox
    location = sandbox.location_ids[0]
    tagged, gone, with_task = sandbox.contact_ids(location)[:3]
    task = hook.create_task(with_task, title="Send the quote", due_date="2026-12-09T10:00:00Z")
    done = hook.create_task(with_task, title="Done already", due_date="2026-12-09T10:00:00Z")
    hook.complete_task(with_task, done["id"], completed=True)
    hook.delete_contact(gone)
    inbox = SQLiteInbox(str(tmp_path / "inbox.db"))
    store(
        inbox,
        # A tag update carrying only the tags: the contact comes from GET /contacts/{id}.
        event("ContactTagUpdate", 1, location, id=tagged, tags=["from-webhook"]),
        # The same for a contact deleted since: nothing to write, said in the manifest.
        event("ContactTagUpdate", 1, location, id=gone, tags=["x"]),
        # A task without its contact: found by the location's task search, by title.
        event("TaskCreate", 2, location, id=task["id"], title="Send the quote", dueDate="2026-12-09T10:00:00Z"),
        # A completion with only the ids: the task from GET /contacts/{id}/tasks/{taskId}.
        event("TaskComplete", 3, location, id=done["id"], contactId=with_task),
        # Complete payloads need nothing.
        event("NoteCreate", 4, location, id="n1", contactId=with_task, body="hi"),
    )
    sandbox.clear_stats()

    [result] = drain(
        inbox,
        location,
        ObjectStoragePath(WEBHOOK_BATCHES.path(f"file://{tmp_path}", location)),
        source=HookRecordSource(hook, location),
        requests=lambda: hook.request_stats.requests,
    )

    assert routes(sandbox) == {
        "GET /contacts/{contactId}": 2,
        "POST /locations/{locationId}/tasks/search": 1,
        "GET /contacts/{contactId}/tasks/{taskId}": 1,
    }
    manifest = result.manifest
    assert (manifest["looked_up"], manifest["requests"]) == (4, 4)
    assert manifest["unresolved"] == [["contacts", gone]]
    out = Path(result.folder.path)
    [contact] = read_dataset(out, "contacts")
    # The API's contact (its current state, at least as new as the event), as of the event.
    assert contact["id"] == tagged and contact["email"] and contact["_event_type"] == "ContactTagUpdate"
    tasks = {t["id"]: t for t in read_dataset(out, "tasks")}
    assert tasks[task["id"]]["contactId"] == with_task
    assert tasks[task["id"]]["title"] == "Send the quote"
    assert tasks[done["id"]]["completed"] is True and tasks[done["id"]]["contactId"] == with_task
    assert [n["id"] for n in read_dataset(out, "notes")] == ["n1"]


def test_a_task_without_contact_or_title_costs_one_walk_for_the_batch(
    hook: GHLHook, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox = clean_sandbox
    location = sandbox.location_ids[0]
    owners = sandbox.contact_ids(location)[:2]
    tasks: list[dict[str, Any]] = [
        hook.create_task(c, title=f"t{i}", due_date="2026-12-09T10:00:00Z") for i, c in enumerate(owners * 2)
    ]
    inbox = SQLiteInbox(str(tmp_path / "inbox.db"))
    store(inbox, *(event("TaskComplete", 1, location, id=t["id"]) for t in tasks))
    sandbox.clear_stats()

    [result] = drain(
        inbox,
        location,
        ObjectStoragePath(WEBHOOK_BATCHES.path(f"file://{tmp_path}", location)),
        source=HookRecordSource(hook, location),
    )

    searches = routes(sandbox)["POST /locations/{locationId}/tasks/search"]
    total = len(list(hook.iter_location_tasks(page_limit=100)))
    assert searches == -(-total // 100)  # one walk of the location's tasks, whatever the batch holds
    found = {t["id"]: t["contactId"] for t in read_dataset(Path(result.folder.path), "tasks")}
    assert found == {t["id"]: c for t, c in zip(tasks, owners * 2, strict=True)}
