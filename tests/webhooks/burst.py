"""A burst of GHL changes made in the sandbox (each with its webhook), and the check that applied batches hold
exactly the final state of every record it changed."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from ghl_sandbox.events import CONTACT_FIELDS
from ghl_sandbox.testing import SandboxServer

from ghl_layout import WEBHOOK_BATCHES

#: Relative weights of the changes after the creates.
WEIGHTS = {
    "contact.update": 25,
    "tags.add": 15,
    "tags.remove": 5,
    "contact.delete": 10,
    "note.create": 15,
    "note.update": 5,
    "task.create": 15,
    "task.complete": 10,
}


@dataclass
class Burst:
    """Changes to one location through the sandbox's admin route (``POST /_sandbox/changes``), one at a time.

    Admin changes are not API requests: they do not count in the sandbox's request stats, so what the stats
    show during a burst is the apply's own API use. Contacts for updates, deletions and children are taken from
    separate pools, so no child outlives its contact.

    :param sandbox: the sandbox.
    :param location_id: the location.
    :param seed: the choice of changes.
    """

    sandbox: SandboxServer
    location_id: str
    seed: int = 13
    creates: int = 30
    made: int = 0
    contacts: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)  # note id -> contact id
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> contact id
    open_tasks: list[str] = field(default_factory=list)
    tagged: dict[str, list[str]] = field(default_factory=dict)  # contact id -> tags this burst added

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.previous: tuple[str, str, str | None] | None = None
        existing = sorted(self.sandbox.contact_ids(self.location_id))
        self.editable = existing[:60]
        self.deletable = existing[60:80]
        self.parents = existing[80:120]

    def send(self, count: int) -> None:
        """Make the next ``count`` changes, each in its own request (so successive changes of one record have
        distinct millisecond timestamps, as GHL's would)."""
        for _ in range(count):
            change = self._next()
            [result] = self.sandbox.changes(self.location_id, [change])
            self._record(change, result)
            self.made += 1
            time.sleep(0.002)

    def _next(self) -> dict[str, Any]:
        n = self.made
        if n < self.creates:
            fields = {"firstName": f"Burst{n}", "lastName": "Webhook", "email": f"burst{n}.{self.seed}@example.com"}
            return {"op": "contact.create", "fields": fields}
        feasible = {
            op: w
            for op, w in WEIGHTS.items()
            if (op != "contact.delete" or len(self.deleted) < len(self.deletable))
            and (op != "tags.remove" or any(self.tagged.values()))
            and (op != "note.update" or self.notes)
            and (op != "task.complete" or self.open_tasks)
        }
        op = self.rng.choices(list(feasible), weights=list(feasible.values()))[0]
        alive = sorted((set(self.editable) | self.contacts | set(self.deletable)) - self.deleted - set(self.parents))
        # Every other change follows up the record the previous one changed: two changes of one record, close
        # enough for a reordered delivery to swap them (the later must still win).
        follow = self.previous if self.rng.random() < 0.5 else None
        if follow is not None:
            kind, rid, cid = follow
            if kind == "contact" and rid not in self.deleted and rid not in self.parents:
                op = self.rng.choice(
                    ["contact.update", "tags.add"] + (["contact.delete"] if rid in self.deletable else [])
                )
                alive = [rid]
            elif kind == "note":
                return {"op": "note.update", "id": rid, "contactId": cid, "fields": {"body": f"note {n} (edited)"}}
            elif kind == "task" and rid in self.open_tasks:
                self.open_tasks.remove(rid)
                return {"op": "task.complete", "id": rid, "contactId": cid}
        target = self.rng.choice(alive)
        if op == "contact.update":
            return {"op": op, "id": target, "fields": {"firstName": f"Changed{n}", "city": f"C{n}"}}
        if op == "tags.add":
            return {"op": op, "id": target, "tags": [f"burst-{n}"]}
        if op == "tags.remove":
            cid = self.rng.choice(sorted(c for c, tags in self.tagged.items() if tags))
            return {"op": op, "id": cid, "tags": [self.tagged[cid][0]]}
        if op == "contact.delete":
            candidates = [target] if target in self.deletable else sorted(set(self.deletable) - self.deleted)
            return {"op": op, "id": self.rng.choice(candidates)}
        if op == "note.create":
            return {"op": op, "contactId": self.rng.choice(self.parents), "fields": {"body": f"note {n}"}}
        if op == "note.update":
            nid = self.rng.choice(sorted(self.notes))
            return {"op": op, "id": nid, "contactId": self.notes[nid], "fields": {"body": f"note {n} (edited)"}}
        if op == "task.create":
            task: dict[str, Any] = {"title": f"task {n}", "dueDate": "2026-12-20T10:00:00Z", "completed": False}
            return {"op": op, "contactId": self.rng.choice(self.parents), "fields": task}
        tid = self.open_tasks.pop(self.rng.randrange(len(self.open_tasks)))
        return {"op": "task.complete", "id": tid, "contactId": self.tasks[tid]}

    def _record(self, change: dict[str, Any], result: dict[str, Any]) -> None:
        op, rid = change["op"], result["id"]
        self.previous = (op.split(".")[0].replace("tags", "contact"), rid, result.get("contactId"))
        if op.startswith(("contact.", "tags.")):
            self.contacts.add(rid)
            if op == "contact.delete":
                self.deleted.add(rid)
                self.tagged.pop(rid, None)
            elif op == "tags.add":
                self.tagged.setdefault(rid, []).extend(change["tags"])
            elif op == "tags.remove":
                self.tagged[rid].remove(change["tags"][0])
        elif op == "note.create":
            self.notes[rid] = result["contactId"]
        elif op == "task.create":
            self.tasks[rid] = result["contactId"]
            self.open_tasks.append(rid)


def applied_state(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """The current state a reader gets from a location's JSON Lines batches: each record's last row, batches in
    name order; a contact tombstone or a ``_deleted`` child row ends the record (kept, marked ``_deleted``)."""
    state: dict[tuple[str, str], dict[str, Any]] = {}
    for batch in WEBHOOK_BATCHES.batches(folder):
        manifest = json.loads((batch / "_manifest.json").read_text())
        for dataset, summary in manifest["datasets"].items():
            kind = "contacts" if dataset == "tombstones" else dataset
            for name in summary["files"]:
                for line in (batch / name).read_text().splitlines():
                    record = json.loads(line)
                    if dataset == "tombstones":
                        record["_deleted"] = True
                    state[(kind, record["id"])] = record
    return state


def committed_manifests(folder: Path) -> list[dict[str, Any]]:
    return [json.loads((b / "_manifest.json").read_text()) for b in WEBHOOK_BATCHES.batches(folder)]


def _get(sandbox: SandboxServer, path: str) -> requests.Response:
    """A GET with location 0's token, waiting out the sandbox's rate budget (the checks read many records)."""
    while True:
        answer = requests.get(f"{sandbox.base_url}{path}", headers=sandbox.headers(0), timeout=30)
        if answer.status_code != 429:
            return answer
        time.sleep(float(answer.headers.get("Retry-After") or 0.5))


def assert_final_state(state: dict[tuple[str, str], dict[str, Any]], burst: Burst) -> None:
    """The applied state holds exactly the records ``burst`` changed, each as the sandbox has it now (read
    through the API: call this after measuring the apply's own requests)."""
    sandbox = burst.sandbox
    expected = {("contacts", c) for c in burst.contacts}
    expected |= {("notes", n) for n in burst.notes} | {("tasks", t) for t in burst.tasks}
    assert set(state) == expected, (sorted(set(state) - expected)[:5], sorted(expected - set(state))[:5])
    for cid in sorted(burst.contacts):
        record = state[("contacts", cid)]
        answer = _get(sandbox, f"/contacts/{cid}")
        if cid in burst.deleted:
            assert record.get("_deleted") is True and record["detectedAt"], record
            assert answer.status_code in (400, 404), answer.text
            continue
        assert not record.get("_deleted"), record
        contact = answer.json()["contact"]
        for name in CONTACT_FIELDS:
            if name in contact and name != "customFields":
                assert record.get(name) == contact[name], (cid, name, record.get(name), contact[name])
        assert sorted(record["tags"]) == sorted(contact["tags"])
    for nid, cid in burst.notes.items():
        answer = _get(sandbox, f"/contacts/{cid}/notes/{nid}")
        assert answer.status_code == 200, (nid, answer.text)
        note = answer.json()["note"]
        record = state[("notes", nid)]
        assert (record["body"], record["contactId"], record["_deleted"]) == (note["body"], cid, False)
    for tid, cid in burst.tasks.items():
        task = _get(sandbox, f"/contacts/{cid}/tasks/{tid}").json()["task"]
        record = state[("tasks", tid)]
        assert (record["title"], record["contactId"]) == (task["title"], cid)
        # TaskCreate does not carry `completed` (GHL documents no such field): absent is an open task.
        assert record.get("completed", False) == task["completed"], (tid, record, task)


def event_count(manifests: Iterable[dict[str, Any]]) -> int:
    return sum(m["events"] for m in manifests)
