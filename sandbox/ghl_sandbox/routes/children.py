"""A contact's tasks, notes and appointments (generated on first access, see :meth:`Location.children`).

Tasks and notes follow one pattern (list, create, get, update, delete); :data:`CHILD_KINDS` says how each
differs, and :func:`_add_child_kind` registers the five routes of a kind from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ghl_sandbox import models as m
from ghl_sandbox import writes
from ghl_sandbox.routes.common import ok, own_contact, sandbox_of
from ghl_sandbox.versions import success

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
    return writes.children_of(loc, contact, kind)


def _add_child_kind(kind: str, spec: ChildKind) -> None:
    one, param = spec.one, spec.param
    base, item = f"/contacts/{{contactId}}/{kind}", f"/contacts/{{contactId}}/{kind}/{{{param}}}"

    async def list_children(request: Request, contactId: str) -> JSONResponse:
        return ok({kind: list(_children(request, contactId, kind).values())})

    async def get_child(request: Request, contactId: str) -> JSONResponse:
        loc, contact = own_contact(request, contactId)
        return ok({one: writes.child(loc, contact, kind, request.path_params[param])})

    async def create_child(request: Request, contactId: str, dto: m.DTO) -> JSONResponse:
        loc, contact = own_contact(request, contactId)
        fields = dto.model_dump(exclude_unset=True)
        return ok({one: writes.create_child(sandbox_of(request), loc, contact, kind, fields)}, 201)

    async def update_child(request: Request, contactId: str, dto: m.DTO) -> JSONResponse:
        loc, contact = own_contact(request, contactId)
        fields = dto.model_dump(exclude_unset=True)
        return ok({one: writes.update_child(loc, contact, kind, request.path_params[param], fields)})

    async def delete_child(request: Request, contactId: str) -> JSONResponse:
        loc, contact = own_contact(request, contactId)
        writes.delete_child(loc, contact, kind, request.path_params[param])
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
    loc, contact = own_contact(request, contactId)
    return ok({"task": writes.update_child(loc, contact, "tasks", taskId, {"completed": dto.completed})})


@router.get("/contacts/{contactId}/appointments")
async def get_appointments(request: Request, contactId: str) -> JSONResponse:
    events = _children(request, contactId, "events")
    return ok({"events": list(events.values())})
