"""What a contact belongs to: tags, followers, campaigns and workflows, one contact at a time or in bulk."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ghl_sandbox import models as m
from ghl_sandbox import writes
from ghl_sandbox.errors import SandboxHTTPError
from ghl_sandbox.routes.common import (
    check_time,
    ok,
    own_contact,
    own_location,
    require_known,
    sandbox_of,
)
from ghl_sandbox.versions import is_v3, success

router = APIRouter()


@router.post("/contacts/{contactId}/tags", status_code=201)
async def add_tags(request: Request, contactId: str, dto: m.TagsDTO) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    return ok({"tags": writes.add_tags(loc, contact, dto.tags)}, 201)


@router.delete("/contacts/{contactId}/tags")
async def remove_tags(request: Request, contactId: str, dto: m.TagsDTO) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    return ok({"tags": writes.remove_tags(loc, contact, dto.tags)})


@router.post("/contacts/{contactId}/followers", status_code=201)
async def add_followers(request: Request, contactId: str, dto: m.FollowersDTO) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    followers = contact.data.get("followers", [])
    added = [f for f in dict.fromkeys(dto.followers) if f not in followers]
    writes.set_field(loc, contact, "followers", followers + added)
    return ok({"followers": contact.data["followers"], "followersAdded": added}, 201)


@router.delete("/contacts/{contactId}/followers")
async def remove_followers(request: Request, contactId: str, dto: m.FollowersDTO) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    before = contact.data.get("followers", [])
    removed = [f for f in before if f in dto.followers]
    writes.set_field(loc, contact, "followers", [f for f in before if f not in dto.followers])
    return ok({"followers": contact.data["followers"], "followersRemoved": removed})


def _set_membership(request: Request, contact_id: str, kind: str, group_id: str, *, member: bool) -> None:
    """Put a contact in, or take it out of, a campaign or workflow of its location."""
    loc, contact = own_contact(request, contact_id)
    ids, members = (
        (loc.campaigns, loc.campaign_members) if kind == "campaign" else (loc.workflows, loc.workflow_members)
    )
    require_known(ids, group_id, kind.capitalize())
    group = members.setdefault(group_id, set())
    if member:
        group.add(contact.id)
    else:
        group.discard(contact.id)


def _leave_every_campaign(request: Request, contactId: str) -> JSONResponse:
    loc, contact = own_contact(request, contactId)
    for members in loc.campaign_members.values():
        members.discard(contact.id)
    return ok(success(request))


# removeAll must be registered before {campaignId}, or the literal would be taken for an id.
@router.delete("/contacts/{contactId}/campaigns/removeAll")
async def remove_from_all_campaigns(request: Request, contactId: str) -> JSONResponse:
    if is_v3(request):
        # v3 renamed it remove-all: here "removeAll" is just an unknown campaign id.
        return await remove_from_campaign(request, contactId, "removeAll")
    return _leave_every_campaign(request, contactId)


@router.post("/contacts/{contactId}/campaigns/{campaignId}", status_code=201)
async def add_to_campaign(
    request: Request, contactId: str, campaignId: str, dto: m.AddContactToCampaignDto | None = None
) -> JSONResponse:
    _set_membership(request, contactId, "campaign", campaignId, member=True)
    return ok(success(request), 201)


@router.delete("/contacts/{contactId}/campaigns/{campaignId}")
async def remove_from_campaign(request: Request, contactId: str, campaignId: str) -> JSONResponse:
    if campaignId == "remove-all" and is_v3(request):
        return _leave_every_campaign(request, contactId)
    _set_membership(request, contactId, "campaign", campaignId, member=False)
    return ok(success(request))


@router.post("/contacts/{contactId}/workflow/{workflowId}")
async def add_to_workflow(
    request: Request, contactId: str, workflowId: str, dto: m.CreateWorkflowDto | None = None
) -> JSONResponse:
    check_time(dto.eventStartTime if dto else None, "eventStartTime")
    _set_membership(request, contactId, "workflow", workflowId, member=True)
    return ok(success(request))


@router.delete("/contacts/{contactId}/workflow/{workflowId}")
async def remove_from_workflow(
    request: Request, contactId: str, workflowId: str, dto: m.CreateWorkflowDto | None = None
) -> JSONResponse:
    _set_membership(request, contactId, "workflow", workflowId, member=False)
    return ok(success(request))


@router.post("/contacts/bulk/tags/update/{type}", status_code=201)
async def bulk_update_tags(request: Request, type: str, dto: m.UpdateTagsDTO) -> JSONResponse:
    sb = sandbox_of(request)
    if type not in ("add", "remove"):
        raise SandboxHTTPError(422, ["type must be one of the following values: add, remove"])
    loc = own_location(request, dto.locationId)
    responses: list[dict[str, Any]] = []
    errors = 0
    for cid in dto.contacts:
        contact = loc.contacts.get(cid)
        if contact is None:
            errors += 1
            reason = "contact does not belong to location" if sb.store.find_contact(cid) else "contact not found"
            responses.append({"contactId": cid, "message": reason, "type": "error"})
            continue
        old = list(contact.data.get("tags", []))
        if type == "add":
            new = old + [t for t in dict.fromkeys(dto.tags) if t not in old]
        else:
            new = [] if dto.removeAllTags else [t for t in old if t not in dto.tags]
        writes.set_tags(loc, contact, new)
        responses.append(
            {
                "contactId": cid,
                "message": "Tags updated",
                "type": "success",
                "oldTags": old,
                "tagsAdded": [t for t in new if t not in old],
                "tagsRemoved": [t for t in old if t not in new],
            }
        )
    return ok({**success(request, errors == 0), "errorCount": errors, "responses": responses}, 201)


@router.post("/contacts/bulk/business")
async def bulk_update_business(request: Request, dto: m.ContactsBusinessUpdate) -> JSONResponse:
    loc = own_location(request, dto.locationId)
    if dto.businessId is not None:
        require_known([b["id"] for b in loc.businesses], dto.businessId, "Business")
    unknown = [cid for cid in dto.ids if cid not in loc.contacts]
    if unknown:
        raise SandboxHTTPError(400, f"Contacts not found in this location: {', '.join(unknown)}")
    for cid in dto.ids:
        writes.set_field(loc, loc.contacts[cid], "businessId", dto.businessId or "")
    return ok({"success": True, "ids": dto.ids})
