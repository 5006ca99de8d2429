"""``/_sandbox/webhooks`` and ``/_sandbox/changes``: steer the webhook deliveries, make changes without the API.

``POST /_sandbox/changes`` is how a test makes a burst of GHL-like changes (as GHL's own users would, in its
UI) without spending the API budget: each change goes through the same write functions (:mod:`..writes`) as
the API route of its kind, so it stores the same data and sends the same webhook. The whole list is checked
before the first change is made: a refused list changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ghl_sandbox import models as m
from ghl_sandbox import writes
from ghl_sandbox.data import Location
from ghl_sandbox.errors import SandboxHTTPError
from ghl_sandbox.routes.common import ok, sandbox_of
from ghl_sandbox.settings import WebhookSubscription
from ghl_sandbox.state import Sandbox

router = APIRouter()


@router.get("/_sandbox/webhooks")
async def get_webhooks(request: Request) -> JSONResponse:
    return ok(sandbox_of(request).webhooks.view())


@router.put("/_sandbox/webhooks")
async def put_webhooks(request: Request, settings: WebhookSubscription) -> JSONResponse:
    hooks = sandbox_of(request).webhooks
    hooks.configure(settings)
    return ok(hooks.view())


class WaitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float = Field(default=30.0, ge=0, le=600)


@router.post("/_sandbox/webhooks/wait")
async def wait_webhooks(request: Request, body: WaitBody | None = None) -> JSONResponse:
    """Answer once every queued delivery is accepted or given up, or after ``timeout`` s (``idle`` false)."""
    hooks = sandbox_of(request).webhooks
    idle = await hooks.wait_idle((body or WaitBody()).timeout)
    return ok({"idle": idle, "stats": hooks.stats()})


@router.get("/_sandbox/webhooks/events")
async def recent_events(request: Request, limit: int = 1000) -> JSONResponse:
    """The latest events made (delivered or not): webhookId, type, locationId and the record's id, oldest first."""
    events = list(sandbox_of(request).webhooks.recent)
    return ok({"events": events[-limit:] if limit > 0 else []})


# -- POST /_sandbox/changes -----------------------------------------------------------------------------------
ContactOp = Literal["contact.create", "contact.update", "contact.delete", "tags.add", "tags.remove"]
ChildOp = Literal[
    "note.create", "note.update", "note.delete",
    "task.create", "task.update", "task.complete", "task.delete",
    "appointment.create", "appointment.update", "appointment.delete",
]  # fmt: skip
KINDS = {"note": "notes", "task": "tasks", "appointment": "events"}


class AppointmentFields(m.DTO):
    title: str | None = None
    startTime: str | None = None
    endTime: str | None = None
    appointmentStatus: str | None = None
    assignedUserId: str | None = None
    calendarId: str | None = None
    address: str | None = None
    notes: str | None = None
    users: list[str] | None = None


# The body model of each op's ``fields``: the DTO its API route takes.
FIELD_MODELS: dict[str, type[m.DTO]] = {
    "contact.create": m.CreateContactDto,
    "contact.update": m.UpdateContactDto,
    "note.create": m.NotesDTO,
    "note.update": m.UpdateNoteDTO,
    "task.create": m.CreateTaskParams,
    "task.update": m.UpdateTaskBody,
    "appointment.create": AppointmentFields,
    "appointment.update": AppointmentFields,
}


class Change(BaseModel):
    """One change. ``id``/``contactId`` may be ``"$N"``: the id made by change N (from 0) of the same list."""

    model_config = ConfigDict(extra="forbid")
    op: ContactOp | ChildOp
    id: str | None = None
    contactId: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] | None = None


class Changes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locationId: str
    changes: list[Change] = Field(max_length=10_000)


class _Plan:
    """Checks a list of changes against the location, as they would apply one after the other."""

    def __init__(self, loc: Location) -> None:
        self.loc = loc
        self.made: dict[int, str] = {}  # change index -> placeholder of the id it will make
        self.contacts_gone: set[str] = set()
        self.contacts_new: set[str] = set()
        self.children: dict[str, set[str]] = {}  # contact ref -> child refs alive

    def ref(self, value: str | None, where: str) -> str:
        if not value:
            raise ValueError(f"{where} is required")
        if value.startswith("$"):
            n = value[1:]
            if not n.isdigit() or int(n) not in self.made:
                raise ValueError(f"{where}: {value} names no earlier change that makes an id")
            return self.made[int(n)]
        return value

    def contact(self, value: str | None, where: str) -> str:
        cid = self.ref(value, where)
        if cid in self.contacts_gone or not (cid in self.contacts_new or cid in self.loc.contacts):
            raise ValueError(f"{where}: no contact {value} in location {self.loc.id}")
        return cid

    def child_ids(self, cid: str, kind: str) -> set[str]:
        key = f"{kind}:{cid}"
        if key not in self.children:
            contact = self.loc.contacts.get(cid)
            self.children[key] = set(writes.children_of(self.loc, contact, kind)) if contact else set()
        return self.children[key]

    def check(self, index: int, change: Change) -> None:
        op, where = change.op, f"changes[{index}]"
        fields = change.fields
        if op in FIELD_MODELS:
            body = {**fields, "locationId": self.loc.id} if op == "contact.create" else fields
            # Applied as the API route would: the DTO's reading of the fields, not the raw JSON.
            dumped = FIELD_MODELS[op].model_validate(body).model_dump(exclude_unset=True)
            change.fields = fields = {k: v for k, v in dumped.items() if k != "locationId"}
        elif fields:
            raise ValueError(f"{where}.fields: {op} takes none")
        for name in ("dueDate", "startTime", "endTime"):
            writes.check_time(fields.get(name), f"{where}.fields.{name}")
        if op.startswith("contact."):
            writes.check_contact_fields(self.loc, fields)
        if op == "contact.create":
            self.made[index] = f"${index}"
            self.contacts_new.add(f"${index}")
            return
        if op.startswith(("contact.", "tags.")):
            cid = self.contact(change.id, f"{where}.id")
            if op.startswith("tags.") and change.tags is None:
                raise ValueError(f"{where}.tags is required")
            if op == "contact.delete":
                self.contacts_gone.add(cid)
            return
        kind = KINDS[op.split(".")[0]]
        cid = self.contact(change.contactId, f"{where}.contactId")
        alive = self.child_ids(cid, kind)
        if op.endswith(".create"):
            self.made[index] = f"${index}"
            alive.add(f"${index}")
            return
        child_id = self.ref(change.id, f"{where}.id")
        if child_id not in alive:
            raise ValueError(f"{where}.id: contact {change.contactId} has no {op.split('.')[0]} {change.id}")
        if op.endswith(".delete"):
            alive.discard(child_id)


def _apply(sb: Sandbox, loc: Location, change: Change, made: dict[str, str]) -> dict[str, Any]:
    """Make one (checked) change through the write functions; what it made or changed."""

    def real(value: str | None) -> str:
        return made.get(value or "", value or "")

    op, fields = change.op, change.fields
    if op == "contact.create":
        contact = writes.create_contact(sb, loc, fields)
        return {"op": op, "id": contact.id}
    if op.startswith(("contact.", "tags.")):
        contact = loc.contacts[real(change.id)]
        if op == "contact.update":
            writes.update_contact(loc, contact, fields)
        elif op == "contact.delete":
            writes.delete_contact(loc, contact)
        elif op == "tags.add":
            writes.add_tags(loc, contact, change.tags or [])
        else:
            writes.remove_tags(loc, contact, change.tags or [])
        return {"op": op, "id": contact.id}
    kind = KINDS[op.split(".")[0]]
    contact = loc.contacts[real(change.contactId)]
    if op.endswith(".create"):
        record = writes.create_child(sb, loc, contact, kind, fields)
        return {"op": op, "id": record["id"], "contactId": contact.id}
    child_id = real(change.id)
    if op.endswith(".delete"):
        writes.delete_child(loc, contact, kind, child_id)
    else:
        update = {"completed": True} if op == "task.complete" else fields
        writes.update_child(loc, contact, kind, child_id, update)
    return {"op": op, "id": child_id, "contactId": contact.id}


@router.post("/_sandbox/changes")
async def make_changes(request: Request, body: Changes) -> JSONResponse:
    """Make a list of changes in one location, in order, each with the webhook GHL sends for it."""
    sb = sandbox_of(request)
    loc = sb.store.locations.get(body.locationId)
    if loc is None:
        raise SandboxHTTPError(422, [f"locationId: unknown location {body.locationId!r}"])
    plan = _Plan(loc)
    for index, change in enumerate(body.changes):
        try:
            plan.check(index, change)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise SandboxHTTPError(422, [f"changes[{index}].fields.{field}: {first['msg']}"]) from None
        except ValueError as exc:
            raise SandboxHTTPError(422, [str(exc)]) from None
        except SandboxHTTPError as exc:
            raise SandboxHTTPError(422, [f"changes[{index}]: {exc.body['message']}"]) from None
    events_before = sb.webhooks.counts["events"]
    made: dict[str, str] = {}
    results = []
    for index, change in enumerate(body.changes):
        result = _apply(sb, loc, change, made)
        if change.op.endswith(".create"):
            made[f"${index}"] = result["id"]
        results.append(result)
    return ok({"results": results, "events": sb.webhooks.counts["events"] - events_before})
