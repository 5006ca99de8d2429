"""The request of every typed operation of :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`, built once.

Each function shapes its arguments into a :class:`~airflow_provider_ghl.hooks.request.Request` of the endpoint table
and sends nothing; the hook turns each into a method (and the reads also into an ``a``-prefixed async twin) with
:func:`~airflow_provider_ghl.hooks.request.operation`. The docstrings are the methods' docstrings. To add an
operation: a row in :data:`~airflow_provider_ghl.hooks.endpoints.ENDPOINTS`, a builder here, one line in the hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from airflow_provider_ghl.checks import email_or_phone, require_choice, require_int
from airflow_provider_ghl.hooks.payloads import BULK_TAG_ACTIONS
from airflow_provider_ghl.hooks.request import DateLike, Request, compact, iso_utc
from airflow_provider_ghl.hooks.search import SEARCH_MAX_PAGE_LIMIT


# ------------------------------------------------------------------------------------------------------
# Contacts
# ------------------------------------------------------------------------------------------------------
def get_contact(contact_id: str) -> Request[dict[str, Any]]:
    """Get a contact (``GET /contacts/{contactId}``).

    :param contact_id: the contact id.
    """
    return Request("get_contact", path_params={"contactId": contact_id})


def create_contact(fields: Mapping[str, Any], *, location_id: str | None = None) -> Request[dict[str, Any]]:
    """Create a contact (``POST /contacts/``); raises ``GHLDuplicateContactError`` on a duplicate.

    :param fields: contact fields in GHL's names (``firstName``, ``email``, ``customFields``, ...).
    :param location_id: location; default: the hook's.
    """
    return Request("create_contact", json=dict(fields), location_id=location_id)


def update_contact(contact_id: str, fields: Mapping[str, Any]) -> Request[dict[str, Any]]:
    """Update a contact (``PUT /contacts/{contactId}``); ``tags`` here replaces all tags.

    :param contact_id: the contact id.
    :param fields: fields to change, in GHL's names.
    """
    return Request("update_contact", path_params={"contactId": contact_id}, json=dict(fields))


def delete_contact(contact_id: str) -> Request[None]:
    """Delete a contact (``DELETE /contacts/{contactId}``).

    :param contact_id: the contact id.
    """
    return Request("delete_contact", path_params={"contactId": contact_id})


def upsert_contact(fields: Mapping[str, Any], *, location_id: str | None = None) -> Request[dict[str, Any]]:
    """Create or update the contact matching e-mail/phone (``POST /contacts/upsert``).

    :param fields: contact fields in GHL's names (``createNewIfDuplicateAllowed`` allowed).
    :param location_id: location; default: the hook's.
    :return: ``{"new": bool, "contact": {...}}`` (the body: whether it was created matters).
    """
    return Request("upsert_contact", json=dict(fields), location_id=location_id)


def get_duplicate_contact(
    *, email: str | None = None, phone: str | None = None, location_id: str | None = None
) -> Request[dict[str, Any] | None]:
    """Find the contact a new one with this e-mail / phone would duplicate
    (``GET /contacts/search/duplicate``).

    :param email: e-mail to match.
    :param phone: phone number to match (E.164, e.g. ``+15550100``).
    :param location_id: location; default: the hook's.
    :return: the contact, or None.
    """
    email, phone = email_or_phone(email, phone, fields=("email", "phone"))
    params = {"email": email, "number": phone}
    return Request("get_duplicate_contact", params=params, location_id=location_id)


def get_contacts_by_business(
    business_id: str,
    *,
    limit: int = 100,
    skip: int = 0,
    query: str | None = None,
    location_id: str | None = None,
) -> Request[dict[str, Any]]:
    """One page of a business's contacts (``GET /contacts/business/{businessId}``).

    :param business_id: the business id.
    :param limit: page size.
    :param skip: records to skip.
    :param query: text filter.
    :param location_id: location; default: the hook's.
    :return: ``{"contacts": [...], "count": N}``.
    """
    params = {"limit": str(limit), "skip": str(skip), "query": query}
    return Request(
        "get_contacts_by_business",
        path_params={"businessId": business_id},
        params=params,
        location_id=location_id,
    )


def get_contacts(
    *,
    limit: int = 100,
    query: str | None = None,
    start_after: int | None = None,
    start_after_id: str | None = None,
    location_id: str | None = None,
) -> Request[dict[str, Any]]:
    """One page of the deprecated contact list (``GET /contacts/``; gone in API v3).

    :param limit: page size (GHL allows up to 100).
    :param query: text filter.
    :param start_after: cursor: ``meta.startAfter`` of the previous page (epoch ms).
    :param start_after_id: cursor: ``meta.startAfterId`` of the previous page.
    :param location_id: location; default: the hook's.
    :return: ``{"contacts": [...], "meta": {...}}``.
    """
    params = {"limit": limit, "query": query, "startAfter": start_after, "startAfterId": start_after_id}
    return Request("get_contacts", params=params, location_id=location_id)


def search_contacts(
    *,
    query: str | None = None,
    filters: Sequence[Mapping[str, Any]] | None = None,
    sort: Sequence[Mapping[str, Any]] | None = None,
    page_limit: int = 100,
    page: int | None = None,
    search_after: Sequence[Any] | None = None,
    location_id: str | None = None,
) -> Request[dict[str, Any]]:
    """One page of ``POST /contacts/search``. Use :meth:`iter_contacts` to read everything.

    :param query: full-text query (GHL: at most 75 characters).
    :param filters: GHL filter objects, e.g. ``{"field": "tags", "operator": "contains", "value": "vip"}``.
    :param sort: e.g. ``[{"field": "dateAdded", "direction": "asc"}]``.
    :param page_limit: page size, at most 500.
    :param page: page number (only while ``page * page_limit <= 10000``).
    :param search_after: cursor (a contact's ``searchAfter``); replaces ``page``.
    :param location_id: location; default: the hook's.
    :return: ``{"contacts": [...], "total": N}``.
    """
    body: dict[str, Any] = {
        "pageLimit": require_int("page_limit", page_limit, minimum=1, maximum=SEARCH_MAX_PAGE_LIMIT)
    }
    if query:
        body["query"] = query
    if filters:
        body["filters"] = [dict(f) for f in filters]
    if sort:
        body["sort"] = [dict(s) for s in sort]
    if search_after is not None:
        body["searchAfter"] = list(search_after)  # GHL refuses page together with searchAfter
    elif page is not None:
        body["page"] = page
    return Request("search_contacts", json=body, location_id=location_id)


# ------------------------------------------------------------------------------------------------------
# Tags and bulk updates
# ------------------------------------------------------------------------------------------------------
def add_tags(contact_id: str, tags: Sequence[str]) -> Request[list[str]]:
    """Add tags to a contact (``POST /contacts/{contactId}/tags``).

    :param contact_id: the contact id.
    :param tags: tags to add.
    :return: the tags GHL reports.
    """
    return Request("add_tags", path_params={"contactId": contact_id}, json={"tags": list(tags)})


def remove_tags(contact_id: str, tags: Sequence[str]) -> Request[list[str]]:
    """Remove tags from a contact (``DELETE /contacts/{contactId}/tags``).

    :param contact_id: the contact id.
    :param tags: tags to remove.
    :return: the tags GHL reports.
    """
    return Request("remove_tags", path_params={"contactId": contact_id}, json={"tags": list(tags)})


def bulk_update_tags(
    contact_ids: Sequence[str],
    tags: Sequence[str],
    action: Literal["add", "remove"] = "add",
    *,
    remove_all_tags: bool | None = None,
    location_id: str | None = None,
) -> Request[dict[str, Any]]:
    """Add or remove tags on many contacts (``POST /contacts/bulk/tags/update/{type}``).

    :param contact_ids: contacts to change.
    :param tags: tags to add or remove.
    :param action: ``add`` or ``remove``.
    :param remove_all_tags: with ``remove``: remove every tag.
    :param location_id: location; default: the hook's.
    :return: ``{"succeded", "errorCount", "responses": [...]}`` (per-contact outcomes).
    """
    action = require_choice("action", action, BULK_TAG_ACTIONS)
    body = compact({"contacts": list(contact_ids), "tags": list(tags), "removeAllTags": remove_all_tags})
    return Request("bulk_update_tags", path_params={"type": action}, json=body, location_id=location_id)


def bulk_update_business(
    contact_ids: Sequence[str], business_id: str | None, *, location_id: str | None = None
) -> Request[dict[str, Any]]:
    """Attach contacts to a business, or detach them with ``business_id=None``
    (``POST /contacts/bulk/business``).

    :param contact_ids: contacts to change.
    :param business_id: the business, or None to remove the association.
    :param location_id: location; default: the hook's.
    :return: ``{"success": bool, "ids": [...]}``.
    """
    body = {"ids": list(contact_ids), "businessId": business_id}  # null is meaningful here
    return Request("bulk_update_business", json=body, location_id=location_id)


# ------------------------------------------------------------------------------------------------------
# Tasks
# ------------------------------------------------------------------------------------------------------
def get_tasks(contact_id: str) -> Request[list[dict[str, Any]]]:
    """List a contact's tasks (``GET /contacts/{contactId}/tasks``).

    :param contact_id: the contact id.
    """
    return Request("get_tasks", path_params={"contactId": contact_id})


def get_task(contact_id: str, task_id: str) -> Request[dict[str, Any]]:
    """Get one task (``GET /contacts/{contactId}/tasks/{taskId}``).

    :param contact_id: the contact id.
    :param task_id: the task id.
    """
    return Request("get_task", path_params={"contactId": contact_id, "taskId": task_id})


def create_task(
    contact_id: str,
    *,
    title: str,
    due_date: DateLike,
    completed: bool = False,
    body: str | None = None,
    assigned_to: str | None = None,
) -> Request[dict[str, Any]]:
    """Create a task on a contact (``POST /contacts/{contactId}/tasks``).

    :param contact_id: the contact id.
    :param title: task title.
    :param due_date: due date (datetime or ISO string).
    :param completed: whether it is already done.
    :param body: description.
    :param assigned_to: user id.
    """
    fields = {
        "title": title,
        "dueDate": iso_utc(due_date),
        "completed": completed,
        "body": body,
        "assignedTo": assigned_to,
    }
    return Request("create_task", path_params={"contactId": contact_id}, json=compact(fields))


def update_task(contact_id: str, task_id: str, fields: Mapping[str, Any]) -> Request[dict[str, Any]]:
    """Update a task (``PUT /contacts/{contactId}/tasks/{taskId}``).

    :param contact_id: the contact id.
    :param task_id: the task id.
    :param fields: ``title``, ``body``, ``dueDate``, ``completed``, ``assignedTo``.
    """
    body = {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in fields.items()}
    return Request("update_task", path_params={"contactId": contact_id, "taskId": task_id}, json=body)


def complete_task(contact_id: str, task_id: str, completed: bool = True) -> Request[dict[str, Any]]:
    """Mark a task completed or open (``PUT /contacts/{contactId}/tasks/{taskId}/completed``).

    :param contact_id: the contact id.
    :param task_id: the task id.
    :param completed: the new state.
    """
    return Request(
        "complete_task", path_params={"contactId": contact_id, "taskId": task_id}, json={"completed": completed}
    )


def delete_task(contact_id: str, task_id: str) -> Request[None]:
    """Delete a task (``DELETE /contacts/{contactId}/tasks/{taskId}``).

    :param contact_id: the contact id.
    :param task_id: the task id.
    """
    return Request("delete_task", path_params={"contactId": contact_id, "taskId": task_id})


# ------------------------------------------------------------------------------------------------------
# Notes
# ------------------------------------------------------------------------------------------------------
def get_notes(contact_id: str) -> Request[list[dict[str, Any]]]:
    """List a contact's notes (``GET /contacts/{contactId}/notes``).

    :param contact_id: the contact id.
    """
    return Request("get_notes", path_params={"contactId": contact_id})


def get_note(contact_id: str, note_id: str) -> Request[dict[str, Any]]:
    """Get one note (``GET /contacts/{contactId}/notes/{id}``).

    :param contact_id: the contact id.
    :param note_id: the note id.
    """
    return Request("get_note", path_params={"contactId": contact_id, "id": note_id})


def create_note(
    contact_id: str,
    body: str,
    *,
    user_id: str | None = None,
    title: str | None = None,
    color: str | None = None,
    pinned: bool | None = None,
) -> Request[dict[str, Any]]:
    """Add a note to a contact (``POST /contacts/{contactId}/notes``).

    :param contact_id: the contact id.
    :param body: note text.
    :param user_id: author user id.
    :param title: note title.
    :param color: note color.
    :param pinned: whether the note is pinned.
    """
    fields = {"body": body, "userId": user_id, "title": title, "color": color, "pinned": pinned}
    return Request("create_note", path_params={"contactId": contact_id}, json=compact(fields))


def update_note(contact_id: str, note_id: str, fields: Mapping[str, Any]) -> Request[dict[str, Any]]:
    """Update a note (``PUT /contacts/{contactId}/notes/{id}``).

    :param contact_id: the contact id.
    :param note_id: the note id.
    :param fields: ``body``, ``userId``, ``title``, ``color``, ``pinned``.
    """
    return Request("update_note", path_params={"contactId": contact_id, "id": note_id}, json=dict(fields))


def delete_note(contact_id: str, note_id: str) -> Request[None]:
    """Delete a note (``DELETE /contacts/{contactId}/notes/{id}``).

    :param contact_id: the contact id.
    :param note_id: the note id.
    """
    return Request("delete_note", path_params={"contactId": contact_id, "id": note_id})


# ------------------------------------------------------------------------------------------------------
# Appointments, followers, campaigns, workflows
# ------------------------------------------------------------------------------------------------------
def get_appointments(contact_id: str) -> Request[list[dict[str, Any]]]:
    """List a contact's appointments (``GET /contacts/{contactId}/appointments``).

    :param contact_id: the contact id.
    """
    return Request("get_appointments", path_params={"contactId": contact_id})


def add_followers(contact_id: str, followers: Sequence[str]) -> Request[dict[str, Any]]:
    """Add followers (user ids) to a contact (``POST /contacts/{contactId}/followers``).

    :param contact_id: the contact id.
    :param followers: user ids.
    :return: ``{"followers": [...], "followersAdded": [...]}``.
    """
    return Request("add_followers", path_params={"contactId": contact_id}, json={"followers": list(followers)})


def remove_followers(contact_id: str, followers: Sequence[str]) -> Request[dict[str, Any]]:
    """Remove followers from a contact (``DELETE /contacts/{contactId}/followers``).

    :param contact_id: the contact id.
    :param followers: user ids.
    :return: ``{"followers": [...], "followersRemoved": [...]}``.
    """
    return Request("remove_followers", path_params={"contactId": contact_id}, json={"followers": list(followers)})


def add_to_campaign(contact_id: str, campaign_id: str) -> Request[None]:
    """Add a contact to a campaign (``POST /contacts/{contactId}/campaigns/{campaignId}``).

    :param contact_id: the contact id.
    :param campaign_id: the campaign id.
    """
    return Request("add_to_campaign", path_params={"contactId": contact_id, "campaignId": campaign_id}, json={})


def remove_from_campaign(contact_id: str, campaign_id: str) -> Request[None]:
    """Remove a contact from a campaign (``DELETE /contacts/{contactId}/campaigns/{campaignId}``).

    :param contact_id: the contact id.
    :param campaign_id: the campaign id.
    """
    return Request("remove_from_campaign", path_params={"contactId": contact_id, "campaignId": campaign_id})


def remove_from_all_campaigns(contact_id: str) -> Request[None]:
    """Remove a contact from every campaign (``DELETE /contacts/{contactId}/campaigns/removeAll``).

    :param contact_id: the contact id.
    """
    return Request("remove_from_all_campaigns", path_params={"contactId": contact_id})


def add_to_workflow(contact_id: str, workflow_id: str, *, event_start_time: DateLike | None = None) -> Request[None]:
    """Add a contact to a workflow (``POST /contacts/{contactId}/workflow/{workflowId}``).

    :param contact_id: the contact id.
    :param workflow_id: the workflow id.
    :param event_start_time: when the workflow's event starts.
    """
    body = compact({"eventStartTime": iso_utc(event_start_time) if event_start_time else None})
    return Request("add_to_workflow", path_params={"contactId": contact_id, "workflowId": workflow_id}, json=body)


def remove_from_workflow(
    contact_id: str, workflow_id: str, *, event_start_time: DateLike | None = None
) -> Request[None]:
    """Remove a contact from a workflow (``DELETE /contacts/{contactId}/workflow/{workflowId}``).

    :param contact_id: the contact id.
    :param workflow_id: the workflow id.
    :param event_start_time: the event start time the contact was added with.
    """
    body = compact({"eventStartTime": iso_utc(event_start_time) if event_start_time else None})
    return Request("remove_from_workflow", path_params={"contactId": contact_id, "workflowId": workflow_id}, json=body)


# ------------------------------------------------------------------------------------------------------
# Location level
# ------------------------------------------------------------------------------------------------------
def get_custom_fields(
    *, model: Literal["contact", "opportunity", "all"] | None = None, location_id: str | None = None
) -> Request[list[dict[str, Any]]]:
    """Custom-field definitions of a location (``GET /locations/{locationId}/customFields``): join
    them with a contact's ``customFields`` (``[{id, value}]``) to get names and keys.

    :param model: ``contact``, ``opportunity`` or ``all``.
    :param location_id: location; default: the hook's.
    """
    return Request("get_custom_fields", params={"model": model}, location_id=location_id)


def search_location_tasks(
    *,
    contact_ids: Sequence[str] | None = None,
    completed: bool | None = None,
    assigned_to: Sequence[str] | None = None,
    query: str | None = None,
    business_id: str | None = None,
    limit: int = 100,
    skip: int = 0,
    location_id: str | None = None,
) -> Request[list[dict[str, Any]]]:
    """One page of the location-wide task search (``POST /locations/{locationId}/tasks/search``).

    :param contact_ids: only tasks of these contacts.
    :param completed: only completed (True) or open (False) tasks.
    :param assigned_to: only tasks assigned to these users.
    :param query: text filter.
    :param business_id: only tasks of this business.
    :param limit: page size.
    :param skip: records to skip.
    :param location_id: location; default: the hook's.
    """
    body = compact(
        {
            "contactId": list(contact_ids) if contact_ids else None,
            "completed": completed,
            "assignedTo": list(assigned_to) if assigned_to else None,
            "query": query,
            "businessId": business_id,
            "limit": limit,
            "skip": skip,
        }
    )
    return Request("search_location_tasks", json=body, location_id=location_id)


# ------------------------------------------------------------------------------------------------------
# Agency level
# ------------------------------------------------------------------------------------------------------
def get_installed_locations(
    company_id: str,
    app_id: str,
    *,
    is_installed: bool | None = None,
    skip: int | None = None,
    limit: int | None = None,
    page_size: int | None = None,
    page_token: str | None = None,
) -> Request[dict[str, Any]]:
    """One page of the company's locations and whether the app is installed in each (agency token, scope
    ``oauth.readonly``): v2 ``GET /oauth/installedLocations`` pages by ``skip``/``limit``, v3
    ``GET /oauth/installed-locations`` by ``pageSize``/``pageToken``. Prefer
    :meth:`~airflow_provider_ghl.hooks.installs.GHLInstallsMixin.iter_installed_locations`, which walks them.

    :param company_id: the agency's company id.
    :param app_id: the Marketplace app's id.
    :param is_installed: only the locations where the app is (True) or is not (False) installed.
    :param skip: v2: records to skip.
    :param limit: v2: records per page (at most 100).
    :param page_size: v3: records per page (at most 100).
    :param page_token: v3: the ``nextPageToken`` of the previous page.
    """
    flag = None if is_installed is None else ("true" if is_installed else "false")
    params = {
        "companyId": company_id,
        "appId": app_id,
        "isInstalled": flag,
        "skip": skip,
        "limit": limit,
        "pageSize": page_size,
        "pageToken": page_token,
    }
    return Request("get_installed_locations", params=compact(params))
