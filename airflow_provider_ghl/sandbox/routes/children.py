"""A contact's tasks, notes and appointments (generated on first access, see :meth:`Location.children`).

Tasks and notes follow one pattern (list, create, get, update, delete); :data:`CHILD_KINDS` says how each
differs, and :func:`_add_child_kind` registers the five routes of a kind from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from airflow_provider_ghl.sandbox import models as m
from airflow_provider_ghl.sandbox.data import iso, new_id
from airflow_provider_ghl.sandbox.errors import SandboxHTTPError
from airflow_provider_ghl.sandbox.routes.common import check_time, ok, own_contact, sandbox_of
from airflow_provider_ghl.sandbox.versions import success

Records = dict[str, dict[str, Any]]

router = APIRouter()


@dataclasses.dataclass(frozen=True)
class ChildKind:
    """How one kind of a contact's records is named and validated.

    :param one: the singular, as body key and in messages ("task").
    :param param: the path parameter of one record's id.
    :param create: the body model of a create.
    :param update: the body model of an update.
    """

    one: str
    param: str
    create: type[m.DTO]
    update: type[m.DTO]


CHILD_KINDS: dict[str, ChildKind] = {
    "tasks": ChildKind(one="task", param="taskId", create=m.CreateTaskParams, update=m.UpdateTaskBody),
    "notes": ChildKind(one="note", param="id", create=m.NotesDTO, update=m.UpdateNoteDTO),
}


def _children(request: Request, contact_id: str, kind: str) -> Records:
    """The records of ``kind`` (``tasks``, ``notes``, ``events``) of a contact of the token's location."""
    loc, contact = own_contact(request, contact_id)
    records: Records = getattr(loc.children(contact), kind)
    return records


def _child(items: Records, kind: str, child_id: str) -> dict[str, Any]:
    if child_id not in items:
        raise SandboxHTTPError(400, f"{CHILD_KINDS[kind].one.capitalize()} with id {child_id} not found")
    return items[child_id]


def _add_child_kind(kind: str, spec: ChildKind) -> None:
    one, param = spec.one, spec.param
    base, item = f"/contacts/{{contactId}}/{kind}", f"/contacts/{{contactId}}/{kind}/{{{param}}}"

    async def list_children(request: Request, contactId: str) -> JSONResponse:
        return ok({kind: list(_children(request, contactId, kind).values())})

    async def get_child(request: Request, contactId: str) -> JSONResponse:
        items = _children(request, contactId, kind)
        return ok({one: _child(items, kind, request.path_params[param])})

    async def create_child(request: Request, contactId: str, dto: m.DTO) -> JSONResponse:
        sb = sandbox_of(request)
        items = _children(request, contactId, kind)
        fields = dto.model_dump(exclude_unset=True)
        check_time(fields.get("dueDate"), "dueDate")
        record = {"id": new_id(sb.store.rng), **fields, "contactId": contactId}
        if kind == "notes":
            record = {"title": "", "color": "", "pinned": False, "userId": "", **record}
            record["dateAdded"] = iso(sb.store.now_ms())
        items[record["id"]] = record
        return ok({one: record}, 201)

    async def update_child(request: Request, contactId: str, dto: m.DTO) -> JSONResponse:
        items = _children(request, contactId, kind)
        record = _child(items, kind, request.path_params[param])
        fields = dto.model_dump(exclude_unset=True)
        check_time(fields.get("dueDate"), "dueDate")
        record.update(fields)
        return ok({one: record})

    async def delete_child(request: Request, contactId: str) -> JSONResponse:
        items = _children(request, contactId, kind)
        _child(items, kind, request.path_params[param])
        del items[request.path_params[param]]
        return ok(success(request))

    # The body model differs per kind; FastAPI reads it from the annotation, so bind the concrete class.
    create_child.__annotations__["dto"] = spec.create
    update_child.__annotations__["dto"] = spec.update
    router.add_api_route(base, list_children, methods=["GET"], name=f"list_{kind}")
    router.add_api_route(base, create_child, methods=["POST"], status_code=201, name=f"create_{one}")
    router.add_api_route(item, get_child, methods=["GET"], name=f"get_{one}")
    router.add_api_route(item, update_child, methods=["PUT"], name=f"update_{one}")
    router.add_api_route(item, delete_child, methods=["DELETE"], name=f"delete_{one}")


for _kind, _spec in CHILD_KINDS.items():
    _add_child_kind(_kind, _spec)


@router.put("/contacts/{contactId}/tasks/{taskId}/completed")
async def complete_task(request: Request, contactId: str, taskId: str, dto: m.UpdateTaskStatusParams) -> JSONResponse:
    task = _child(_children(request, contactId, "tasks"), "tasks", taskId)
    task["completed"] = dto.completed
    return ok({"task": task})


@router.get("/contacts/{contactId}/appointments")
async def get_appointments(request: Request, contactId: str) -> JSONResponse:
    events = _children(request, contactId, "events")
    return ok({"events": list(events.values())})
