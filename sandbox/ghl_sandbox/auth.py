"""Tokens of the sandbox: Private Integration Tokens, OAuth with single-use refresh tokens, agency tokens."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import Mapping
from typing import Any

from ghl_sandbox.data import Store, secret
from ghl_sandbox.errors import SandboxHTTPError
from ghl_sandbox.installs import Installs
from ghl_sandbox.scopes import ALL_SCOPES, parse_scopes, scope_text


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a bearer token speaks for. ``rate_key`` + location is the unit of GHL's rate budget."""

    kind: str  # "pit" | "oauth" | "agency"
    rate_key: str
    location_id: str | None
    company_id: str
    #: What the token may do: the scopes chosen when the PIT was made or the app was authorized.
    scopes: frozenset[str] = frozenset(ALL_SCOPES)


NOT_ACTIVE = "Location is not active"


@dataclasses.dataclass(frozen=True)
class Grant:
    """An authorization code's grant: whom its tokens speak for, where it was sent, until when it works."""

    principal: Principal
    redirect_uri: str | None
    expires_at: float


class AuthFailure(SandboxHTTPError):
    """An OAuth endpoint error: HTTP status and the JSON body GHL sends (unlike API routes, without a traceId)."""

    traced = False


def _oauth_error(status: int, error: str, description: str) -> AuthFailure:
    return AuthFailure(status, description, error=error, error_description=description)


def _require(form: dict[str, str], *fields: str, names: Mapping[str, str] | None = None) -> None:
    """GHL's 422 for form fields that are missing or empty.

    :param names: how the caller's API version names each field (v3: camelCase), for the messages.
    """
    missing = [f for f in fields if not form.get(f)]
    if missing:
        raise AuthFailure(422, [f"{(names or {}).get(f, f)} should not be empty" for f in missing])


class TokenRegistry:
    """Issues and checks tokens. Every refresh token works once; a reused one is counted and refused."""

    def __init__(
        self,
        store: Store,
        installs: Installs,
        token_ttl: int,
        pit_scopes: frozenset[str] = frozenset(ALL_SCOPES),
        code_ttl: int = 600,
    ) -> None:
        seed = store.seed
        self.store = store
        self.installs = installs
        self.token_ttl = token_ttl
        # GHL does not say how long a code lives; RFC 6749 §4.1.2 recommends at most ten minutes.
        self.code_ttl = code_ttl
        self.client_id = "sbx-app-" + secret(seed, "client")[:16]
        self.client_secret = "sbx-secret-" + secret(seed, "client-secret")[:32]
        self.user_id = installs.user_id
        self.pits: dict[str, Principal] = {
            loc.private_token: Principal("pit", f"pit:{loc.private_token}", loc.id, store.company_id, pit_scopes)
            for loc in store.locations.values()
        }
        self.access: dict[str, tuple[Principal, float]] = {}
        # refresh token -> (principal it mints, used?)
        self.refresh: dict[str, tuple[Principal, bool]] = {}
        self.codes: dict[str, Grant] = {}
        self.initial_refresh: dict[str, str] = {}
        for loc in store.locations.values():
            rt = "sbx-rt-" + secret(seed, "refresh", loc.id)[:40]
            self.refresh[rt] = (self._app_principal(loc.id), False)
            self.initial_refresh[loc.id] = rt
        self.company_refresh = "sbx-rt-" + secret(seed, "refresh", store.company_id)[:40]
        self.refresh[self.company_refresh] = (self._company_principal(), False)
        self.refresh_reused = 0
        self.refreshed = 0

    def _app_principal(self, location_id: str, scopes: frozenset[str] = frozenset(ALL_SCOPES)) -> Principal:
        # GHL budgets per app and location, so every token the app holds for a location shares one budget.
        return Principal("oauth", f"app:{self.client_id}", location_id, self.store.company_id, scopes)

    def _company_principal(self, scopes: frozenset[str] = frozenset(ALL_SCOPES)) -> Principal:
        return Principal("agency", f"app:{self.client_id}", None, self.store.company_id, scopes)

    def issue_pit(self, location_id: str, scopes: str | list[str] | None) -> tuple[str, Principal]:
        """A new Private Integration Token of ``location_id`` with ``scopes`` (as made in GHL's settings page).

        :param location_id: the location (sub-account) it belongs to.
        :param scopes: its scopes (None: all); ``ValueError`` for an unknown location or scope.
        """
        if location_id not in self.store.locations:
            raise ValueError(f"unknown locationId {location_id}")
        token = "pit-" + secrets.token_hex(16)
        principal = Principal("pit", f"pit:{token}", location_id, self.store.company_id, parse_scopes(scopes))
        self.pits[token] = principal
        return token, principal

    # -- bearer tokens --------------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal of ``Authorization: Bearer <token>``, or None when missing, unknown or expired."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization[7:].strip()
        if (pit := self.pits.get(token)) is not None:
            return pit
        entry = self.access.get(token)
        if entry is None or entry[1] <= time.time():
            return None
        return entry[0]

    def revoke(self, location_id: str) -> int:
        """Drop every app token of ``location_id`` (its install is gone); returns how many. PITs stay: they
        belong to the location, not to the app.

        :param location_id: the location.
        """
        gone = 0
        for tokens in (self.access, self.refresh):
            for token in [t for t, entry in tokens.items() if _is_app_token_of(entry[0], location_id)]:
                del tokens[token]
                gone += 1
        self.codes = {c: g for c, g in self.codes.items() if not _is_app_token_of(g.principal, location_id)}
        return gone

    def expire(self, token: str | None = None) -> int:
        """Expire one access token, or all of them; returns how many."""
        targets = [token] if token else list(self.access)
        n = 0
        for t in targets:
            if t in self.access:
                self.access[t] = (self.access[t][0], 0.0)
                n += 1
        return n

    def _issue(self, principal: Principal, *, with_refresh: bool) -> dict[str, Any]:
        access = "sbx-at-" + secrets.token_hex(24)
        self.access[access] = (principal, time.time() + self.token_ttl)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
            "scope": scope_text(principal.scopes),
            "userType": "Company" if principal.kind == "agency" else "Location",
            "companyId": principal.company_id,
            "userId": self.user_id,
        }
        if principal.location_id:
            body["locationId"] = principal.location_id
        else:
            body["approvedLocations"] = self.installs.installed_ids()
        if with_refresh:
            refresh = "sbx-rt-" + secrets.token_hex(24)
            self.refresh[refresh] = (principal, False)
            body["refresh_token"] = refresh
        return body

    # -- OAuth endpoints ------------------------------------------------------------------------------------
    def authorize(
        self,
        *,
        location_id: str | None = None,
        company_id: str | None = None,
        scopes: str | list[str] | None = None,
        redirect_uri: str | None = None,
    ) -> str:
        """What a user's approval on GHL's authorization page does: install the app on the location (if it was
        not) and hand out an authorization code. ``ValueError`` for an unknown location, company or scope.

        :param location_id: the location chosen; or
        :param company_id: the agency, for an agency-level install.
        :param scopes: the scopes the user approved (None: all); every token of this grant carries them.
        :param redirect_uri: where the code was sent; an exchange naming another ``redirect_uri`` is refused.
        """
        granted = parse_scopes(scopes)
        if location_id:
            if location_id not in self.store.locations:
                raise ValueError(f"unknown locationId {location_id}")
            self.installs.install(location_id)
            principal = self._app_principal(location_id, granted)
        elif company_id == self.store.company_id:
            principal = self._company_principal(granted)
        else:
            raise ValueError("authorize needs a known locationId or companyId")
        code = "sbx-code-" + secrets.token_hex(12)
        self.codes[code] = Grant(principal, redirect_uri, time.time() + self.code_ttl)
        return code

    def token(self, form: dict[str, str], *, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """``POST /oauth/token`` (form-encoded). Raises ``AuthFailure`` with GHL's status and body.

        :param form: the fields, in v2's snake_case names.
        :param names: the caller's own names of the fields, for validation messages.
        """
        _require(form, "client_id", "client_secret", "grant_type", names=names)
        if form["client_id"] != self.client_id or form["client_secret"] != self.client_secret:
            raise _oauth_error(401, "invalid_client", "Invalid client: client is invalid")
        grant = form["grant_type"]
        if grant == "authorization_code":
            code = self.codes.get(form.get("code", ""))
            if code is None:
                raise _oauth_error(400, "invalid_grant", "Invalid grant: authorization code is invalid")
            if code.expires_at <= time.time():
                del self.codes[form["code"]]
                raise _oauth_error(400, "invalid_grant", "Invalid grant: authorization code has expired")
            if form.get("redirect_uri") and form["redirect_uri"] != code.redirect_uri:
                raise _oauth_error(400, "invalid_request", "Invalid request: `redirect_uri` is invalid")
            principal = code.principal
        elif grant == "refresh_token":
            entry = self.refresh.get(form.get("refresh_token", ""))
            if entry is None:
                raise _oauth_error(400, "invalid_grant", "Invalid grant: refresh token is invalid")
            principal, used = entry
            if used:
                self.refresh_reused += 1
                raise _oauth_error(400, "invalid_grant", "Invalid grant: refresh token is invalid")
        else:
            raise _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant}")
        if principal.location_id and not self.installs.is_active(principal.location_id):
            # Not consumed: the token works again once the location is reactivated.
            raise AuthFailure(400, NOT_ACTIVE)
        wanted = form.get("user_type")
        actual = "Company" if principal.kind == "agency" else "Location"
        if wanted and wanted != actual:
            raise _oauth_error(400, "invalid_request", f"user_type {wanted} does not match this token ({actual})")
        # Consumed only once every check passed: a refused request must not burn the client's only grant.
        if grant == "authorization_code":
            del self.codes[form["code"]]
        else:
            self.refresh[form["refresh_token"]] = (principal, True)
            self.refreshed += 1
        return self._issue(principal, with_refresh=True)

    def location_token(
        self, principal: Principal | None, form: dict[str, str], *, with_refresh: bool = False
    ) -> dict[str, Any]:
        """``POST /oauth/locationToken``: an agency token mints a location token (v2: without a refresh token;
        v3's ``/oauth/location-token`` answers one too)."""
        if principal is None:
            raise AuthFailure(401, "Invalid JWT")
        if principal.kind != "agency":
            raise AuthFailure(401, "This route needs an agency (Company) access token.")
        _require(form, "companyId", "locationId")
        location_id = form["locationId"]
        if form["companyId"] != principal.company_id or not self.installs.is_installed(location_id):
            raise AuthFailure(400, "Location not found for this company or app not installed.")
        if not self.installs.is_active(location_id):
            raise AuthFailure(400, NOT_ACTIVE)
        # A location token carries the agency grant's scopes.
        body = self._issue(self._app_principal(location_id, principal.scopes), with_refresh=with_refresh)
        body.pop("userType", None)
        body.pop("companyId", None)
        return body


def _is_app_token_of(principal: Principal, location_id: str) -> bool:
    return principal.kind == "oauth" and principal.location_id == location_id
