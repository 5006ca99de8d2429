"""The request layer of the sandbox: the one gate every GHL API request passes before its route.

In order: injected latency, the route lookup (404 in GHL's words), the required ``Version`` header, bearer
auth, the rate budget (``X-RateLimit-*`` headers go on every response) and injected faults (5xx answers and
dropped connections, before or after a write). Routes then see the caller's :class:`Principal` in
``scope["ghl.principal"]`` and hold only GHL's behaviour. ``/_sandbox/*`` admin routes and the authorization
page skip the gate.
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from ghl_sandbox.auth import Principal
from ghl_sandbox.errors import error_body
from ghl_sandbox.scopes import SCOPE_REFUSAL, required_scope
from ghl_sandbox.state import Sandbox
from ghl_sandbox.versions import V3

API_VERSIONS = {"2021-07-28", "2021-04-15", V3}
# Routes only one version has (contacts-v3.json has no GET /contacts/; oauth-v3.json renamed locationToken):
# unknown in the other.
REMOVED_IN_V3 = {("GET", "/contacts"), ("POST", "/oauth/locationToken"), ("GET", "/oauth/installedLocations")}
ADDED_IN_V3 = {("POST", "/oauth/location-token"), ("GET", "/oauth/installed-locations")}
NO_AUTH_PATHS = {"/oauth/token"}
WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")
# POSTs that only read: a fault on them needs no before/after-write care.
READ_POSTS = {"/contacts/search", "/locations/{locationId}/tasks/search"}
# Not GHL's API: the admin routes and the authorization page (marketplace.gohighlevel.com on GHL).
PAGES = ("/_sandbox", "/v2/oauth/chooselocation", "/oauth/chooselocation")
# Where routes find the caller (None on the routes of NO_AUTH_PATHS).
PRINCIPAL_KEY = "ghl.principal"


class SandboxASGI:
    """Outermost ASGI layer: every GHL API request goes through :meth:`__call__` once.

    :param sandbox: the state the gate counts into and checks against.
    :param app: the FastAPI app with the routes.
    """

    def __init__(self, sandbox: Sandbox, app: FastAPI) -> None:
        self.sandbox = sandbox
        self.app = app

    def _route(self, scope: Scope) -> str | None:
        for route in self.app.router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", None)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # GHL answers both /contacts/ and /contacts; routes are registered without the slash.
            scope["path"] = path = path.rstrip("/")
        if path.startswith(PAGES):
            await self.app(scope, receive, send)
            return
        sb = self.sandbox
        sb.in_flight += 1
        sb.peak_concurrency = max(sb.peak_concurrency, sb.in_flight)
        try:
            await self._api(scope, receive, send)
        finally:
            sb.in_flight -= 1

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        sb, faults = self.sandbox, self.sandbox.faults
        delay = faults.latency_ms + (sb.rng.uniform(0, faults.jitter_ms) if faults.jitter_ms else 0.0)
        if delay:
            await asyncio.sleep(delay / 1000)
        route = self._route(scope)
        method = scope["method"]
        sb.by_route[f"{method} {route or scope['path']}"] += 1
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rate_headers = sb.limiter.headers()

        async def refuse(status: int, message: str, **extra: Any) -> None:
            # Reads rate_headers when called: a 429 carries the budget the limiter just reported.
            await self._answer(scope, receive, send, rate_headers, status, message, **extra)

        not_in_version = REMOVED_IN_V3 if headers.get("version") == V3 else ADDED_IN_V3
        if route is None or (method, route) in not_in_version:
            await refuse(404, f"Cannot {method} {scope['path']}", error="Not Found")
            return
        principal: Principal | None = None
        if route not in NO_AUTH_PATHS:
            version = headers.get("version")
            if version not in API_VERSIONS:
                await refuse(
                    400, "version header was not found" if version is None else f"Unsupported API version {version}"
                )
                return
            principal = sb.tokens.authenticate(headers.get("authorization"))
            if principal is None:
                await refuse(401, "Invalid JWT")
                return
            if principal.kind == "agency" and not route.startswith("/oauth/"):
                await refuse(
                    401,
                    "This authClass type is not allowed to access this scope. Use a location (sub-account) token.",
                )
                return
            needed = required_scope(method, route)
            if needed is not None and needed not in principal.scopes:
                await refuse(401, SCOPE_REFUSAL)
                return
            storm = sb.storm_until > time.monotonic() or (faults.storm_rate and sb.rng.random() < faults.storm_rate)
            # A storm's 429 is refused like any other, so it spends no budget (the headers still tell the truth).
            allowed, rate_headers = sb.limiter.take(
                f"{principal.rate_key}|{principal.location_id or principal.company_id}", spend=not storm
            )
            if storm:
                sb.fault_counts["storm_429"] += 1
            if storm or not allowed:
                await refuse(429, "Too Many Requests")
                return
        scope[PRINCIPAL_KEY] = principal
        fault = None
        roll = sb.rng.random()
        if roll < faults.error_rate:
            fault = "error"
        elif roll < faults.error_rate + faults.drop_rate:
            fault = "drop"
        is_write = method in WRITE_METHODS and route not in READ_POSTS and route != "/oauth/token"
        after_write = fault is not None and is_write and sb.rng.random() < 0.5
        if fault and not after_write:
            await self._fault(fault, scope, receive, send, rate_headers, "before_write" if is_write else None)
            return

        status_seen: list[int] = []

        async def send_with_headers(message: Message) -> None:
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

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        rate_headers: dict[str, str],
        status: int,
        message: str,
        **extra: Any,
    ) -> None:
        """Answer in place of the route: a GHL error body with the rate headers, counted by status."""
        self.sandbox.by_status[status] += 1
        body = error_body(status, message, **extra)
        await JSONResponse(body, status_code=status, headers=rate_headers)(scope, receive, send)

    async def _fault(
        self, kind: str, scope: Scope, receive: Receive, send: Send, rate_headers: dict[str, str], where: str | None
    ) -> None:
        sb = self.sandbox
        sb.fault_counts[kind] += 1
        if where:
            sb.fault_counts[where] += 1
        if kind == "error":
            status = sb.rng.choice(sb.faults.error_statuses or [500])
            await self._answer(scope, receive, send, rate_headers, status, HTTPStatus(status).phrase)
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
