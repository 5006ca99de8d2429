"""The GHL sandbox: a FastAPI app that answers like services.leadconnectorhq.com for the Contacts API.

Every API request passes one funnel (:class:`SandboxASGI`) before its route: injected latency, the required
``Version`` header, bearer auth, the rate budget (with ``X-RateLimit-*`` headers on every response) and
faults. Routes hold only GHL's behaviour. ``/_sandbox/*`` admin routes skip the funnel.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import Match

from airflow_provider_ghl.sandbox import models as m
from airflow_provider_ghl.sandbox.auth import Principal, TokenRegistry
from airflow_provider_ghl.sandbox.config import Faults, SandboxConfig
from airflow_provider_ghl.sandbox.data import (
    Contact,
    Location,
    Store,
    is_positive_int,
    iso,
    new_id,
    parse_time,
)
from airflow_provider_ghl.sandbox.errors import SandboxHTTPError, error_body, install_error_handlers
from airflow_provider_ghl.sandbox.ratelimit import RateLimiter
from airflow_provider_ghl.sandbox.search import SearchError, cursor_of, search

API_VERSIONS = {"2021-07-28", "2021-04-15", "v3"}
NO_AUTH_PATHS = {"/oauth/token"}
# POSTs that only read: a fault on them needs no before/after-write care.
READ_POSTS = {"/contacts/search", "/locations/{locationId}/tasks/search"}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FORBIDDEN_LOCATION = "The token does not have access to this location."

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[None]]], Awaitable[None]]


class Sandbox:
    """All sandbox state: data, tokens, rate budgets, faults and statistics."""

    def __init__(self, config: SandboxConfig) -> None:
        self.base_url = ""
        # The data's "now" is fixed once, at start and to the second: a reset then brings back the very same
        # contacts, dates included, instead of re-reading the clock.
        if config.anchor is None:
            config = config.replace(anchor=datetime.now(UTC).replace(microsecond=0))
        # What ``POST /_sandbox/reset`` returns to; its changes apply to this, never pile up across resets.
        self.start_config = config
        self.reset(config)

    def reset(self, config: SandboxConfig) -> None:
        self.config = config
        self.store = Store(seed=config.seed, locations=config.locations, contacts=config.contacts, anchor=config.anchor)
        self.tokens = TokenRegistry(self.store, config.token_ttl)
        self.limiter = RateLimiter(config.max_requests, config.interval_ms, config.daily_limit)
        self.set_faults(config.faults.model_copy())
        self.rng = random.Random(f"faults:{config.seed}")
        self.reset_stats()

    def reset_stats(self) -> None:
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.fault_counts: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_concurrency = 0
        self.writes = 0
        self.tokens.refresh_reused = 0
        self.tokens.refreshed = 0

    def set_faults(self, faults: Faults) -> None:
        self.faults = faults
        self.storm_until = time.monotonic() + faults.storm_seconds if faults.storm_seconds else 0.0

    def info(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "api_version": "2021-07-28",
            "company_id": self.store.company_id,
            "oauth": {
                "client_id": self.tokens.client_id,
                "client_secret": self.tokens.client_secret,
                "company_refresh_token": self.tokens.company_refresh,
            },
            "locations": [
                {
                    "id": loc.id,
                    "name": loc.name,
                    "private_token": loc.private_token,
                    "refresh_token": self.tokens.initial_refresh[loc.id],
                    "contacts": len(loc.contacts),
                    # Ids GHL's other APIs (users, businesses, campaigns, workflows) would list; routes take them.
                    "users": loc.users,
                    "businesses": loc.businesses,
                    "campaigns": loc.campaigns,
                    "workflows": loc.workflows,
                }
                for loc in self.store.locations.values()
            ],
            "limits": {
                "max_requests": self.limiter.max_requests,
                "interval_ms": self.limiter.interval_ms,
                "daily_limit": self.limiter.daily_limit,
                "token_ttl": self.tokens.token_ttl,
            },
            "seed": self.config.seed,
            "anchor": iso(self.store.anchor_ms),
        }

    def stats(self) -> dict[str, Any]:
        return {
            "requests_total": sum(self.by_route.values()),
            "requests_by_route": dict(self.by_route),
            "responses_by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "responses_429": self.by_status.get(429, 0),
            "faults": dict(self.fault_counts),
            "peak_concurrency": self.peak_concurrency,
            "in_flight": self.in_flight,
            "writes": self.writes,
            "tokens_refreshed": self.tokens.refreshed,
            "refresh_tokens_reused": self.tokens.refresh_reused,
        }

    # -- lookups shared by routes ---------------------------------------------------------------------------
    def location(self, principal: Principal, location_id: str | None) -> Location:
        """The location named by the request, which must be the token's own."""
        if not location_id or location_id != principal.location_id:
            raise SandboxHTTPError(403, FORBIDDEN_LOCATION)
        return self.store.locations[location_id]

    def contact(self, principal: Principal, contact_id: str) -> tuple[Location, Contact]:
        loc = self.store.locations[principal.location_id or ""]
        contact = loc.contacts.get(contact_id)
        if contact is None:
            if self.store.find_contact(contact_id) is not None:
                raise SandboxHTTPError(403, FORBIDDEN_LOCATION)
            raise SandboxHTTPError(400, f"Contact with id {contact_id} not found")
        return loc, contact


def _principal(request: Request) -> Principal:
    return request.scope["ghl.principal"]


def _sb(request: Request) -> Sandbox:
    return request.app.state.sandbox


def ok(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status)


# -- the funnel ---------------------------------------------------------------------------------------------
class SandboxASGI:
    """Outermost ASGI layer: every GHL API request goes through :meth:`__call__` once."""

    def __init__(self, sandbox: Sandbox, app: FastAPI) -> None:
        self.sandbox = sandbox
        self.app = app

    def _route(self, scope: Scope) -> str | None:
        for route in self.app.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", None)
        return None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # GHL answers both /contacts/ and /contacts; routes are registered without the slash.
            scope["path"] = path = path.rstrip("/")
        if path.startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        sb = self.sandbox
        sb.in_flight += 1
        sb.peak_concurrency = max(sb.peak_concurrency, sb.in_flight)
        try:
            await self._api(scope, receive, send)
        finally:
            sb.in_flight -= 1

    async def _api(self, scope: Scope, receive: Any, send: Any) -> None:
        sb, faults = self.sandbox, self.sandbox.faults
        delay = faults.latency_ms + (sb.rng.uniform(0, faults.jitter_ms) if faults.jitter_ms else 0.0)
        if delay:
            await asyncio.sleep(delay / 1000)
        route = self._route(scope)
        method = scope["method"]
        sb.by_route[f"{method} {route or scope['path']}"] += 1
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rate_headers = sb.limiter.headers()

        async def answer(status: int, body: dict[str, Any]) -> None:
            sb.by_status[status] += 1
            await JSONResponse(body, status_code=status, headers=rate_headers)(scope, receive, send)

        if route is None:
            await answer(404, error_body(404, f"Cannot {method} {scope['path']}", error="Not Found"))
            return
        principal = None
        if route not in NO_AUTH_PATHS:
            version = headers.get("version")
            if version not in API_VERSIONS:
                msg = "version header was not found" if version is None else f"Unsupported API version {version}"
                await answer(400, error_body(400, msg))
                return
            principal = sb.tokens.authenticate(headers.get("authorization"))
            if principal is None:
                await answer(401, error_body(401, "Invalid JWT"))
                return
            if principal.kind == "agency" and not route.startswith("/oauth/"):
                await answer(
                    401,
                    error_body(
                        401,
                        "This authClass type is not allowed to access this scope. Use a location (sub-account) token.",
                    ),
                )
                return
            storm = sb.storm_until > time.monotonic() or (faults.storm_rate and sb.rng.random() < faults.storm_rate)
            # A storm's 429 is refused like any other, so it spends no budget (the headers still tell the truth).
            allowed, rate_headers = sb.limiter.take(
                f"{principal.rate_key}|{principal.location_id or principal.company_id}", spend=not storm
            )
            if storm:
                sb.fault_counts["storm_429"] += 1
            if storm or not allowed:
                await answer(429, error_body(429, "Too Many Requests"))
                return
        scope["ghl.principal"] = principal
        fault = None
        roll = sb.rng.random()
        if roll < faults.error_rate:
            fault = "error"
        elif roll < faults.error_rate + faults.drop_rate:
            fault = "drop"
        is_write = method in ("POST", "PUT", "DELETE", "PATCH") and route not in READ_POSTS and route != "/oauth/token"
        after_write = fault is not None and is_write and sb.rng.random() < 0.5
        if fault and not after_write:
            await self._fault(fault, scope, receive, send, rate_headers, "before_write" if is_write else None)
            return

        status_seen: list[int] = []

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.lower().encode(), v.encode()) for k, v in rate_headers.items()),
                ]
            if not after_write:
                await send(message)

        await self.app(scope, receive, send_with_headers)
        applied = bool(status_seen) and 200 <= status_seen[0] < 300 and is_write
        if applied:
            sb.writes += 1
        if after_write:
            # Tagged by the outcome: a write the route refused (4xx) changed nothing, so for the ledger
            # (after_write == faulted writes that were applied) it counts as before the write.
            await self._fault(
                fault or "error", scope, receive, send, rate_headers, "after_write" if applied else "before_write"
            )
        elif status_seen:
            sb.by_status[status_seen[0]] += 1

    async def _fault(
        self, kind: str, scope: Scope, receive: Any, send: Any, rate_headers: dict[str, str], where: str | None
    ) -> None:
        sb = self.sandbox
        sb.fault_counts[kind] += 1
        if where:
            sb.fault_counts[where] += 1
        if kind == "error":
            status = sb.rng.choice(sb.faults.error_statuses or [500])
            sb.by_status[status] += 1
            body = error_body(status, HTTPStatus(status).phrase)
            await JSONResponse(body, status_code=status, headers=rate_headers)(scope, receive, send)
            return
        # Dropped connection: promise a body, send part of it and stop; uvicorn then closes the socket, so
        # the client sees the connection break mid-response.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"contacts": [', "more_body": True})


# -- routes -------------------------------------------------------------------------------------------------
def build_app(config: SandboxConfig | None = None) -> SandboxASGI:
    """Create the sandbox ASGI app (pass it to uvicorn)."""
    sandbox = Sandbox(config or SandboxConfig())
    app = FastAPI(
        title="GHL sandbox", redirect_slashes=False, docs_url="/_sandbox/docs", openapi_url="/_sandbox/openapi.json"
    )
    app.state.sandbox = sandbox
    install_error_handlers(app)

    _register_contact_routes(app)
    _register_child_routes(app)
    _register_other_routes(app)
    _register_admin_routes(app)
    return SandboxASGI(sandbox, app)


def _apply_contact_fields(sb: Sandbox, loc: Location, contact: Contact, fields: dict[str, Any]) -> None:
    """Write DTO fields into a contact the way GHL stores them (lower-case copies, custom field values)."""
    if "email" in fields and fields["email"] is not None and not EMAIL_RE.match(fields["email"]):
        raise SandboxHTTPError(422, ["email must be an email"])
    if "customFields" in fields and fields["customFields"] is not None:
        fields["customFields"] = _custom_field_values(loc, contact, fields["customFields"])
    loc.unindex(contact)
    data = contact.data
    for key, value in fields.items():
        if key in ("createNewIfDuplicateAllowed", "inboundDndSettings"):
            continue
        data[key] = value
    first, last = data.get("firstName") or "", data.get("lastName") or ""
    if "name" not in fields and (first or last):
        data["name"] = f"{first} {last}".strip()
    data["firstNameLowerCase"] = first.lower()
    data["lastNameLowerCase"] = last.lower()
    data["fullNameLowerCase"] = (data.get("name") or "").lower()
    data["emailLowerCase"] = (data.get("email") or "").lower()
    data.setdefault("tags", [])
    loc.index(contact)
    contact.touch(sb.store.now_ms())
    loc.changed()


def _custom_field_values(loc: Location, contact: Contact, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {f["id"]: f for f in loc.custom_fields}
    by_key = {f["fieldKey"]: f for f in loc.custom_fields}
    values = {cf["id"]: cf["value"] for cf in contact.data.get("customFields", [])}
    for item in items:
        ref = item.get("id") or item.get("key")
        field = by_id.get(ref) or by_key.get(ref) or by_key.get(f"contact.{ref}")
        if field is None:
            raise SandboxHTTPError(422, [f"customFields: no custom field with id or key {ref!r}"])
        for name in ("field_value", "fieldValue", "value"):
            if name in item:
                values[field["id"]] = item[name]
                break
        else:
            raise SandboxHTTPError(422, [f"customFields.{ref}: field_value should not be empty"])
    return [{"id": k, "value": v} for k, v in values.items()]


def _new_contact(sb: Sandbox, loc: Location, dto: m.CreateContactDto) -> Contact:
    now = sb.store.now_ms()
    cid = new_id(sb.store.rng)
    contact = Contact({"id": cid, "locationId": loc.id, "dateAdded": iso(now), "dateUpdated": iso(now)}, now, now)
    contact.data.update(tags=[], customFields=[], followers=[], additionalEmails=[], dnd=False, type="lead")
    _apply_contact_fields(sb, loc, contact, dto.model_dump(exclude_unset=True, exclude={"locationId"}))
    contact.added_ms = contact.updated_ms
    contact.data["dateAdded"] = contact.data["dateUpdated"]
    loc.add(contact)
    return contact


def _register_contact_routes(app: FastAPI) -> None:
    @app.get("/contacts/{contactId}")
    async def get_contact(request: Request, contactId: str) -> JSONResponse:
        _, contact = _sb(request).contact(_principal(request), contactId)
        return ok({"contact": contact.data})

    @app.post("/contacts")
    async def create_contact(request: Request, dto: m.CreateContactDto) -> JSONResponse:
        sb = _sb(request)
        loc = sb.location(_principal(request), dto.locationId)
        if not sb.config.allow_duplicates and (dup := loc.find_duplicate(dto.email, dto.phone)):
            existing, matched = dup
            raise SandboxHTTPError(
                400,
                "This location does not allow duplicated contacts.",
                meta={"contactId": existing.id, "contactName": existing.data.get("name", ""), "matchingField": matched},
            )
        contact = _new_contact(sb, loc, dto)
        return ok({"contact": contact.data}, 201)

    @app.put("/contacts/{contactId}")
    async def update_contact(request: Request, contactId: str, dto: m.UpdateContactDto) -> JSONResponse:
        sb = _sb(request)
        loc, contact = sb.contact(_principal(request), contactId)
        _apply_contact_fields(sb, loc, contact, dto.model_dump(exclude_unset=True))
        return ok({"succeded": True, "contact": contact.data})

    @app.delete("/contacts/{contactId}")
    async def delete_contact(request: Request, contactId: str) -> JSONResponse:
        sb = _sb(request)
        loc, contact = sb.contact(_principal(request), contactId)
        loc.remove(contact.id)
        return ok({"succeded": True})

    @app.post("/contacts/upsert")
    async def upsert_contact(request: Request, dto: m.UpsertContactDto) -> JSONResponse:
        sb = _sb(request)
        loc = sb.location(_principal(request), dto.locationId)
        dup = loc.find_duplicate(dto.email, dto.phone)
        if dup is None or (sb.config.allow_duplicates and dto.createNewIfDuplicateAllowed):
            contact, created = _new_contact(sb, loc, dto), True
        else:
            contact, created = dup[0], False
            fields = dto.model_dump(exclude_unset=True, exclude={"locationId", "createNewIfDuplicateAllowed"})
            _apply_contact_fields(sb, loc, contact, fields)
        return ok({"new": created, "contact": contact.data, "traceId": str(uuid.uuid4())})

    @app.get("/contacts")
    async def get_contacts(
        request: Request,
        locationId: str | None = None,
        query: str | None = None,
        limit: int = 20,
        startAfterId: str | None = None,
        startAfter: int | None = None,
    ) -> JSONResponse:
        sb = _sb(request)
        loc = sb.location(_principal(request), locationId)
        if not 1 <= limit <= 100:
            raise SandboxHTTPError(
                422, ["limit must not be greater than 100" if limit > 100 else "limit must be positive"]
            )
        # Deprecated list: newest first; the cursor is the last item's dateAdded (ms) and id.
        q = (query or "").lower()
        rows = sorted(
            (
                c
                for c in loc.contacts.values()
                if not q or q in c.data["fullNameLowerCase"] or q in c.data["emailLowerCase"]
            ),
            key=lambda c: (-c.added_ms, c.id),
        )
        start = 0
        if startAfter is not None and startAfterId is not None:
            cursor = (-startAfter, startAfterId)
            start = next((i for i, c in enumerate(rows) if (-c.added_ms, c.id) > cursor), len(rows))
        page = rows[start : start + limit]
        meta: dict[str, Any] = {
            "total": len(rows),
            "currentPage": start // limit + 1,
            "nextPage": None,
            "prevPage": start // limit if start else None,
            "startAfterId": None,
            "startAfter": None,
            "nextPageUrl": None,
        }
        if page and start + limit < len(rows):
            last = page[-1]
            params = {"locationId": loc.id, "limit": limit, "startAfter": last.added_ms, "startAfterId": last.id}
            if query:
                params["query"] = query
            meta.update(
                nextPage=start // limit + 2,
                startAfterId=last.id,
                startAfter=last.added_ms,
                nextPageUrl=f"{sb.base_url}/contacts/?{urlencode(params)}",
            )
        return ok({"contacts": [c.data for c in page], "count": len(rows), "meta": meta})

    @app.post("/contacts/search")
    async def search_contacts(request: Request) -> Response:
        sb = _sb(request)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise SandboxHTTPError(400, "Body is not valid JSON") from None
        if not isinstance(body, dict):
            raise SandboxHTTPError(422, ["body must be an object"])
        if not body.get("locationId"):
            raise SandboxHTTPError(422, ["locationId should not be empty"])
        loc = sb.location(_principal(request), body["locationId"])
        try:
            hits, total, spec = search(loc, body)
        except SearchError as exc:
            raise SandboxHTTPError(422, exc.messages) from None
        # Joined from per-contact cached JSON: keeps the sandbox far from being the benchmarks' bottleneck.
        sort_key = tuple(spec)
        parts = [c.search_hit(sort_key, cursor_of(c, spec)) for c in hits]
        content = b'{"contacts":[' + b",".join(parts) + b'],"total":' + str(total).encode() + b"}"
        if n := sb.faults.mutate_on_search:
            now = sb.store.now_ms
            for contact in sb.rng.sample(list(loc.contacts.values()), min(n, len(loc.contacts))):
                contact.touch(now())
            loc.changed()
        return Response(content, media_type="application/json")

    @app.get("/contacts/search/duplicate")
    async def get_duplicate_contact(
        request: Request, locationId: str | None = None, number: str | None = None, email: str | None = None
    ) -> JSONResponse:
        loc = _sb(request).location(_principal(request), locationId)
        dup = loc.find_duplicate(email, number)
        return ok({"contact": dup[0].data if dup else None})

    @app.get("/contacts/business/{businessId}")
    async def get_contacts_by_business(
        request: Request,
        businessId: str,
        locationId: str | None = None,
        limit: int = 25,
        skip: int = 0,
        query: str | None = None,
    ) -> JSONResponse:
        loc = _sb(request).location(_principal(request), locationId)
        if not 1 <= limit <= 100 or skip < 0:
            raise SandboxHTTPError(422, ["limit must be between 1 and 100 and skip must not be negative"])
        q = (query or "").lower()
        rows = sorted(
            (
                c
                for c in loc.contacts.values()
                if c.data.get("businessId") == businessId and (not q or q in c.data["fullNameLowerCase"])
            ),
            key=lambda c: (c.added_ms, c.id),
        )
        return ok({"contacts": [c.data for c in rows[skip : skip + limit]], "count": len(rows)})

    @app.post("/contacts/{contactId}/tags", status_code=201)
    async def add_tags(request: Request, contactId: str, dto: m.TagsDTO) -> JSONResponse:
        sb = _sb(request)
        loc, contact = sb.contact(_principal(request), contactId)
        tags = contact.data.setdefault("tags", [])
        tags.extend(t for t in dict.fromkeys(dto.tags) if t not in tags)
        contact.touch(sb.store.now_ms())
        loc.changed()
        return ok({"tags": tags}, 201)

    @app.delete("/contacts/{contactId}/tags")
    async def remove_tags(request: Request, contactId: str, dto: m.TagsDTO) -> JSONResponse:
        sb = _sb(request)
        loc, contact = sb.contact(_principal(request), contactId)
        contact.data["tags"] = [t for t in contact.data.get("tags", []) if t not in dto.tags]
        contact.touch(sb.store.now_ms())
        loc.changed()
        return ok({"tags": contact.data["tags"]})

    @app.post("/contacts/{contactId}/followers", status_code=201)
    async def add_followers(request: Request, contactId: str, dto: m.FollowersDTO) -> JSONResponse:
        sb = _sb(request)
        loc, contact = sb.contact(_principal(request), contactId)
        followers = contact.data.setdefault("followers", [])
        added = [f for f in dict.fromkeys(dto.followers) if f not in followers]
        followers.extend(added)
        contact.touch(sb.store.now_ms())
        loc.changed()
        return ok({"followers": followers, "followersAdded": added}, 201)

    @app.delete("/contacts/{contactId}/followers")
    async def remove_followers(request: Request, contactId: str, dto: m.FollowersDTO) -> JSONResponse:
        sb = _sb(request)
        loc, contact = sb.contact(_principal(request), contactId)
        before = contact.data.get("followers", [])
        removed = [f for f in before if f in dto.followers]
        contact.data["followers"] = [f for f in before if f not in dto.followers]
        contact.touch(sb.store.now_ms())
        loc.changed()
        return ok({"followers": contact.data["followers"], "followersRemoved": removed})

    # removeAll must be registered before {campaignId}, or the literal would be taken for an id.
    @app.delete("/contacts/{contactId}/campaigns/removeAll")
    async def remove_from_all_campaigns(request: Request, contactId: str) -> JSONResponse:
        loc, contact = _sb(request).contact(_principal(request), contactId)
        for members in loc.campaign_members.values():
            members.discard(contact.id)
        return ok({"succeded": True})

    @app.post("/contacts/{contactId}/campaigns/{campaignId}", status_code=201)
    async def add_to_campaign(
        request: Request, contactId: str, campaignId: str, dto: m.AddContactToCampaignDto | None = None
    ) -> JSONResponse:
        _set_membership(request, contactId, "campaign", campaignId, member=True)
        return ok({"succeded": True}, 201)

    @app.delete("/contacts/{contactId}/campaigns/{campaignId}")
    async def remove_from_campaign(request: Request, contactId: str, campaignId: str) -> JSONResponse:
        _set_membership(request, contactId, "campaign", campaignId, member=False)
        return ok({"succeded": True})

    @app.post("/contacts/{contactId}/workflow/{workflowId}")
    async def add_to_workflow(
        request: Request, contactId: str, workflowId: str, dto: m.CreateWorkflowDto | None = None
    ) -> JSONResponse:
        _check_time(dto.eventStartTime if dto else None, "eventStartTime")
        _set_membership(request, contactId, "workflow", workflowId, member=True)
        return ok({"succeded": True})

    @app.delete("/contacts/{contactId}/workflow/{workflowId}")
    async def remove_from_workflow(
        request: Request, contactId: str, workflowId: str, dto: m.CreateWorkflowDto | None = None
    ) -> JSONResponse:
        _set_membership(request, contactId, "workflow", workflowId, member=False)
        return ok({"succeded": True})

    @app.post("/contacts/bulk/tags/update/{type}", status_code=201)
    async def bulk_update_tags(request: Request, type: str, dto: m.UpdateTagsDTO) -> JSONResponse:
        sb = _sb(request)
        if type not in ("add", "remove"):
            raise SandboxHTTPError(422, ["type must be one of the following values: add, remove"])
        loc = sb.location(_principal(request), dto.locationId)
        responses, errors = [], 0
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
            contact.data["tags"] = new
            contact.touch(sb.store.now_ms())
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
        loc.changed()
        return ok({"succeded": errors == 0, "errorCount": errors, "responses": responses}, 201)

    @app.post("/contacts/bulk/business")
    async def bulk_update_business(request: Request, dto: m.ContactsBusinessUpdate) -> JSONResponse:
        sb = _sb(request)
        loc = sb.location(_principal(request), dto.locationId)
        if dto.businessId is not None:
            _known([b["id"] for b in loc.businesses], dto.businessId, "Business")
        unknown = [cid for cid in dto.ids if cid not in loc.contacts]
        if unknown:
            raise SandboxHTTPError(400, f"Contacts not found in this location: {', '.join(unknown)}")
        for cid in dto.ids:
            contact = loc.contacts[cid]
            contact.data["businessId"] = dto.businessId or ""
            contact.touch(sb.store.now_ms())
        loc.changed()
        return ok({"success": True, "ids": dto.ids})


def _set_membership(request: Request, contact_id: str, kind: str, group_id: str, *, member: bool) -> None:
    """Put a contact in, or take it out of, a campaign or workflow of its location."""
    loc, contact = _sb(request).contact(_principal(request), contact_id)
    ids, members = (
        (loc.campaigns, loc.campaign_members) if kind == "campaign" else (loc.workflows, loc.workflow_members)
    )
    _known(ids, group_id, kind.capitalize())
    group = members.setdefault(group_id, set())
    if member:
        group.add(contact.id)
    else:
        group.discard(contact.id)


def _known(ids: list[str], value: str, what: str) -> None:
    if value not in ids:
        raise SandboxHTTPError(400, f"{what} with id {value} not found")


def _check_time(value: str | None, name: str) -> None:
    if value is None:
        return
    try:
        parse_time(value)
    except ValueError:
        raise SandboxHTTPError(422, [f"{name} must be a valid ISO 8601 date string"]) from None


# Tasks and notes follow one pattern; the table says how each differs.
CHILD_KINDS: dict[str, dict[str, Any]] = {
    "tasks": {"one": "task", "param": "taskId", "create": m.CreateTaskParams, "update": m.UpdateTaskBody},
    "notes": {"one": "note", "param": "id", "create": m.NotesDTO, "update": m.UpdateNoteDTO},
}


def _children(sb: Sandbox, principal: Principal, contact_id: str, kind: str) -> dict[str, dict[str, Any]]:
    loc, contact = sb.contact(principal, contact_id)
    return getattr(loc.children(contact), kind)


def _child(items: dict[str, dict[str, Any]], kind: str, child_id: str) -> dict[str, Any]:
    if child_id not in items:
        raise SandboxHTTPError(400, f"{CHILD_KINDS[kind]['one'].capitalize()} with id {child_id} not found")
    return items[child_id]


def _register_child_routes(app: FastAPI) -> None:
    for kind, spec in CHILD_KINDS.items():
        _register_child_kind(app, kind, spec)

    @app.put("/contacts/{contactId}/tasks/{taskId}/completed")
    async def complete_task(
        request: Request, contactId: str, taskId: str, dto: m.UpdateTaskStatusParams
    ) -> JSONResponse:
        task = _child(_children(_sb(request), _principal(request), contactId, "tasks"), "tasks", taskId)
        task["completed"] = dto.completed
        return ok({"task": task})

    @app.get("/contacts/{contactId}/appointments")
    async def get_appointments(request: Request, contactId: str) -> JSONResponse:
        events = _children(_sb(request), _principal(request), contactId, "events")
        return ok({"events": list(events.values())})


def _register_child_kind(app: FastAPI, kind: str, spec: dict[str, Any]) -> None:
    one, param = spec["one"], spec["param"]
    base, item = f"/contacts/{{contactId}}/{kind}", f"/contacts/{{contactId}}/{kind}/{{{param}}}"

    async def list_children(request: Request, contactId: str) -> JSONResponse:
        return ok({kind: list(_children(_sb(request), _principal(request), contactId, kind).values())})

    async def get_child(request: Request, contactId: str) -> JSONResponse:
        items = _children(_sb(request), _principal(request), contactId, kind)
        return ok({one: _child(items, kind, request.path_params[param])})

    async def create_child(request: Request, contactId: str, dto: m.DTO) -> JSONResponse:
        sb = _sb(request)
        items = _children(sb, _principal(request), contactId, kind)
        fields = dto.model_dump(exclude_unset=True)
        _check_time(fields.get("dueDate"), "dueDate")
        record = {"id": new_id(sb.store.rng), **fields, "contactId": contactId}
        if kind == "notes":
            record = {"title": "", "color": "", "pinned": False, "userId": "", **record}
            record["dateAdded"] = iso(sb.store.now_ms())
        items[record["id"]] = record
        return ok({one: record}, 201)

    async def update_child(request: Request, contactId: str, dto: m.DTO) -> JSONResponse:
        items = _children(_sb(request), _principal(request), contactId, kind)
        record = _child(items, kind, request.path_params[param])
        fields = dto.model_dump(exclude_unset=True)
        _check_time(fields.get("dueDate"), "dueDate")
        record.update(fields)
        return ok({one: record})

    async def delete_child(request: Request, contactId: str) -> JSONResponse:
        items = _children(_sb(request), _principal(request), contactId, kind)
        _child(items, kind, request.path_params[param])
        del items[request.path_params[param]]
        return ok({"succeded": True})

    # The body model differs per kind; FastAPI reads it from the annotation, so bind the concrete class.
    create_child.__annotations__["dto"] = spec["create"]
    update_child.__annotations__["dto"] = spec["update"]
    app.add_api_route(base, list_children, methods=["GET"], name=f"list_{kind}")
    app.add_api_route(base, create_child, methods=["POST"], status_code=201, name=f"create_{one}")
    app.add_api_route(item, get_child, methods=["GET"], name=f"get_{one}")
    app.add_api_route(item, update_child, methods=["PUT"], name=f"update_{one}")
    app.add_api_route(item, delete_child, methods=["DELETE"], name=f"delete_{one}")


def _register_other_routes(app: FastAPI) -> None:
    @app.get("/locations/{locationId}/customFields")
    async def get_custom_fields(request: Request, locationId: str, model: str = "contact") -> JSONResponse:
        loc = _sb(request).location(_principal(request), locationId)
        if model not in ("contact", "opportunity", "all"):
            raise SandboxHTTPError(422, ["model must be one of the following values: contact, opportunity, all"])
        fields = [f for f in loc.custom_fields if model in ("all", f["model"])]
        return ok({"customFields": fields})

    @app.post("/locations/{locationId}/tasks/search")
    async def search_location_tasks(request: Request, locationId: str, dto: m.TaskSearchParamsDto) -> JSONResponse:
        loc = _sb(request).location(_principal(request), locationId)
        wanted = set(dto.contactId or ())
        contacts = [loc.contacts[c] for c in wanted if c in loc.contacts] if wanted else list(loc.contacts.values())
        contacts.sort(key=lambda c: (c.added_ms, c.id))
        q = (dto.query or "").lower()
        rows = [
            {**t, "locationId": loc.id}
            for c in contacts
            for t in (loc.children(c).tasks or {}).values()
            if (dto.completed is None or t["completed"] == dto.completed)
            and (not dto.assignedTo or t["assignedTo"] in dto.assignedTo)
            and (not q or q in t["title"].lower())
            and (not dto.businessId or c.data.get("businessId") == dto.businessId)
        ]
        return ok({"tasks": rows[dto.skip : dto.skip + dto.limit], "total": len(rows)})

    @app.post("/oauth/token")
    async def oauth_token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        return ok(_sb(request).tokens.token(form))

    @app.post("/oauth/locationToken")
    async def oauth_location_token(request: Request) -> JSONResponse:
        form = {k: str(v) for k, v in (await request.form()).items()}
        return ok(_sb(request).tokens.location_token(_principal(request), form))


def _register_admin_routes(app: FastAPI) -> None:
    """``/_sandbox/*``: inspect and steer the sandbox from tests, benchmarks and the demo."""

    @app.get("/_sandbox/info")
    async def info(request: Request) -> JSONResponse:
        return ok(_sb(request).info())

    @app.get("/_sandbox/stats")
    async def stats(request: Request) -> JSONResponse:
        return ok(_sb(request).stats())

    @app.delete("/_sandbox/stats")
    async def clear_stats(request: Request) -> JSONResponse:
        sb = _sb(request)
        in_flight = sb.in_flight
        sb.reset_stats()
        sb.in_flight = in_flight
        return ok(sb.stats())

    @app.post("/_sandbox/reset")
    async def reset(request: Request) -> JSONResponse:
        sb = _sb(request)
        changes = json.loads(await request.body() or b"{}")
        try:
            config = sb.start_config.replace(**changes)
        except (TypeError, ValueError) as exc:
            raise SandboxHTTPError(422, [str(exc)]) from None
        sb.reset(config)
        return ok(sb.info())

    @app.get("/_sandbox/faults")
    async def get_faults(request: Request) -> JSONResponse:
        return ok(_sb(request).faults.model_dump())

    @app.put("/_sandbox/faults")
    async def put_faults(request: Request, faults: Faults) -> JSONResponse:
        _sb(request).set_faults(faults)
        return ok(faults.model_dump())

    @app.put("/_sandbox/limits")
    async def put_limits(request: Request) -> JSONResponse:
        sb = _sb(request)
        body = json.loads(await request.body() or b"{}")
        unknown = set(body) - {"max_requests", "interval_ms", "daily_limit"}
        bad = [k for k, v in body.items() if not is_positive_int(v)]
        if unknown or bad:
            raise SandboxHTTPError(
                422, [f"limits: unknown or invalid setting(s): {', '.join(sorted(unknown | set(bad)))}"]
            )
        sb.limiter.configure(**body)
        return ok(sb.info()["limits"])

    @app.post("/_sandbox/tokens/expire")
    async def expire_tokens(request: Request) -> JSONResponse:
        body = json.loads(await request.body() or b"{}")
        return ok({"expired": _sb(request).tokens.expire(body.get("access_token"))})

    @app.post("/_sandbox/oauth/authorize")
    async def authorize(request: Request) -> JSONResponse:
        body = json.loads(await request.body() or b"{}")
        try:
            code = _sb(request).tokens.authorize(location_id=body.get("locationId"), company_id=body.get("companyId"))
        except ValueError as exc:
            raise SandboxHTTPError(422, [str(exc)]) from None
        return ok({"code": code})

    @app.get("/_sandbox/contacts/ids")
    async def contact_ids(request: Request, locationId: str) -> JSONResponse:
        loc = _admin_location(_sb(request), locationId)
        return ok({"ids": list(loc.contacts)})

    @app.post("/_sandbox/contacts/touch")
    async def touch_contacts(request: Request) -> JSONResponse:
        sb = _sb(request)
        body = json.loads(await request.body() or b"{}")
        loc = _admin_location(sb, body.get("locationId"))
        if body.get("ids") is not None:
            missing = [i for i in body["ids"] if i not in loc.contacts]
            if missing:
                raise SandboxHTTPError(422, [f"ids not in location: {', '.join(missing)}"])
            chosen = [loc.contacts[i] for i in body["ids"]]
        else:
            count = body.get("count", 1)
            chosen = sb.rng.sample(list(loc.contacts.values()), min(int(count), len(loc.contacts)))
        for contact in chosen:
            contact.data["lastActivity"] = iso(sb.store.now_ms())
            contact.touch(sb.store.now_ms())
        loc.changed()
        return ok({"ids": [c.id for c in chosen]})


def _admin_location(sb: Sandbox, location_id: str | None) -> Location:
    if location_id not in sb.store.locations:
        raise SandboxHTTPError(422, [f"locationId: unknown location {location_id!r}"])
    return sb.store.locations[location_id or ""]
