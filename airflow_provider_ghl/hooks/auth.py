"""Tokens for the GHL hook: static Private Integration Tokens and rotating OAuth token sets.

OAuth refresh tokens are single-use: every refresh returns a new one and kills the old. The token set therefore
lives in one shared place, an Airflow Variable by default (:class:`VariableTokenStore`), and every process
follows the same protocol:

* use the stored access token while it is valid (in memory after the first read);
* refresh it when it is within ``skew`` seconds of expiry or GHL answers 401, one thread at a time per process;
* persist the rotated set *before* using it, so a crash cannot lose the only valid refresh token;
* on ``invalid_grant`` another worker has spent the refresh token first: re-read the store and use its newer
  set; if none appears, the app must be re-authorized (:class:`~airflow_provider_ghl.exceptions.GHLAuthError`).

Every token is passed to ``mask_secret`` the moment it is known. Variables are encrypted at rest only when
Airflow has a ``[core] fernet_key``: configure one in any deployment that uses OAuth.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from airflow.sdk.log import mask_secret
from tenacity import Retrying, retry_if_result, stop_after_attempt, stop_after_delay, wait_exponential, wait_fixed

from airflow_provider_ghl.exceptions import GHLAuthError, GHLConfigError, GHLError
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.endpoints import (
    OAUTH_LOCATION_TOKEN_PATH,
    OAUTH_TOKEN_PATH,
    OAUTH_V3_LOCATION_TOKEN_PATH,
)
from airflow_provider_ghl.hooks.responses import as_auth_error

log = logging.getLogger(__name__)

#: Refresh an access token this many seconds before GHL says it expires.
DEFAULT_REFRESH_SKEW = 300.0
#: After ``invalid_grant``, how long to wait for the worker that won the refresh to persist its token set.
DEFAULT_NEWER_TOKEN_WAIT = 10.0


def _digest(secret: str) -> str:
    """A short, stable, non-reversible name for a secret (rate-limit keys, never logs of the secret)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclasses.dataclass(frozen=True)
class TokenSet:
    """One OAuth grant as GHL returned it. ``repr`` never shows the tokens.

    :param access_token: bearer token for API calls.
    :param refresh_token: single-use token that buys the next set.
    :param expires_at: POSIX time when the access token expires.
    :param scope: space-separated scopes.
    :param user_type: ``Location`` or ``Company``.
    :param location_id: location of a sub-account token.
    :param company_id: company (agency) id.
    :param refreshed_at: POSIX time when this set was obtained.
    """

    access_token: str = dataclasses.field(repr=False)
    refresh_token: str | None = dataclasses.field(repr=False)
    expires_at: float
    scope: str | None = None
    user_type: str | None = None
    location_id: str | None = None
    company_id: str | None = None
    refreshed_at: float = 0.0

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at - time.time() <= seconds

    @classmethod
    def from_response(cls, body: Mapping[str, Any], *, previous: TokenSet | None = None) -> TokenSet:
        """Build from a ``POST /oauth/token`` answer (v2 snake_case or v3 camelCase)."""
        now = time.time()
        access = body.get("access_token") or body.get("accessToken")
        if not access:
            raise GHLAuthError("GHL's token endpoint answered without an access token.")
        expires_in = float(body.get("expires_in") or body.get("expiresIn") or 0)
        return cls(
            access_token=str(access),
            refresh_token=body.get("refresh_token") or body.get("refreshToken") or None,
            expires_at=now + expires_in,
            scope=body.get("scope"),
            user_type=body.get("userType") or (previous.user_type if previous else None),
            location_id=body.get("locationId") or (previous.location_id if previous else None),
            company_id=body.get("companyId") or (previous.company_id if previous else None),
            refreshed_at=now,
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        # Readable copies for whoever looks at the Variable; ``expires_at`` stays authoritative.
        data["expires_at_iso"] = datetime.fromtimestamp(self.expires_at, UTC).isoformat()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenSet:
        if not data.get("access_token"):
            raise ValueError("no access_token")
        expires_at = data.get("expires_at")
        if isinstance(expires_at, str):  # tolerate a hand-written ISO timestamp
            expires_at = datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=data.get("refresh_token") or None,
            expires_at=float(expires_at or 0),
            scope=data.get("scope"),
            user_type=data.get("user_type"),
            location_id=data.get("location_id"),
            company_id=data.get("company_id"),
            refreshed_at=float(data.get("refreshed_at") or 0),
        )

    def describe(self) -> dict[str, Any]:
        """Non-secret facts about the set, safe for logs and XCom."""
        return {
            "expires_at": datetime.fromtimestamp(self.expires_at, UTC).isoformat(),
            "refreshed_at": datetime.fromtimestamp(self.refreshed_at, UTC).isoformat() if self.refreshed_at else None,
            "scope": self.scope,
            "user_type": self.user_type,
            "location_id": self.location_id,
            "company_id": self.company_id,
        }

    def mask(self) -> None:
        """Register both tokens with Airflow's secrets masker."""
        mask_secret(self.access_token)
        if self.refresh_token:
            mask_secret(self.refresh_token)


@runtime_checkable
class TokenStore(Protocol):
    """Where an OAuth token set is kept between processes. Implement it to keep tokens elsewhere (e.g. a
    secrets manager with versioning); ``name`` identifies the store in messages and in-process locking."""

    @property
    def name(self) -> str: ...

    def load(self) -> TokenSet | None: ...

    def save(self, tokens: TokenSet) -> None: ...


def _in_task_context() -> bool:
    # Inside a task (or triggerer) the Task SDK talks to the API server through SUPERVISOR_COMMS; elsewhere
    # (scripts, the CLI, tests) there is no supervisor and Variables live in the metadata database.
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


class VariableTokenStore:
    """Keep the token set as JSON in an Airflow Variable.

    In a task it uses ``airflow.sdk.Variable`` (the Execution API; ``Variable.set`` works from tasks in
    Airflow 3). Outside one (scripts, ``airflow`` CLI, tests) the Task SDK cannot write Variables, so it
    falls back to the metadata database through ``airflow.models.Variable``. The key must not also be defined
    in a secrets backend or an ``AIRFLOW_VAR_*`` variable: those take precedence on read and would hide the
    rotated set. The value is encrypted only when ``[core] fernet_key`` is set.

    :param key: Variable key.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    @property
    def name(self) -> str:
        return f"Airflow Variable {self.key!r}"

    def load(self) -> TokenSet | None:
        try:
            if _in_task_context():
                from airflow.sdk import Variable

                raw = Variable.get(self.key, default=None)
            else:
                from airflow.models.variable import Variable as DbVariable

                raw = DbVariable.get(self.key, default_var=None)
        except Exception as err:
            # Database errors can quote statement parameters: keep only the type.
            raise GHLError(f"Could not read the OAuth token set from {self.name}: {type(err).__name__}") from None
        if raw in (None, ""):
            return None
        try:
            tokens = TokenSet.from_dict(json.loads(raw) if isinstance(raw, str) else raw)
        except (ValueError, TypeError, AttributeError):
            raise GHLConfigError(
                f"{self.name} does not hold a GHL token set (JSON with access_token, refresh_token, "
                "expires_at). Empty it to bootstrap from the connection's refresh_token."
            ) from None
        tokens.mask()
        return tokens

    def save(self, tokens: TokenSet) -> None:
        value = json.dumps(tokens.to_dict(), indent=2)
        description = "GHL OAuth token set, rotated by airflow-provider-ghl. Do not edit while DAGs run."
        if _in_task_context():
            from airflow.sdk import Variable

            Variable.set(self.key, value, description=description)
        else:
            from airflow.models.variable import Variable as DbVariable

            DbVariable.set(self.key, value, description=description)


class TokenProvider(Protocol):
    """What the request funnel needs from an auth strategy."""

    def access_token(self, location_id: str | None, *, allow_refresh: bool = True) -> str: ...

    def recover(self, used_token: str, location_id: str | None, *, allow_refresh: bool = True) -> bool: ...

    def rate_key(self, location_id: str | None) -> Hashable: ...


class PrivateTokenAuth:
    """A Private Integration Token: a static bearer, nothing to refresh.

    :param token: the ``pit-...`` token.
    """

    def __init__(self, token: str) -> None:
        mask_secret(token)
        self._token = token
        self._key = ("pit", _digest(token))

    def access_token(self, location_id: str | None, *, allow_refresh: bool = True) -> str:
        return self._token

    def recover(self, used_token: str, location_id: str | None, *, allow_refresh: bool = True) -> bool:
        return False  # a rejected PIT stays rejected until someone rotates it in the GHL UI

    def rate_key(self, location_id: str | None) -> Hashable:
        # A PIT belongs to one location: its budget is the token's, whatever the call names.
        return self._key


@dataclasses.dataclass
class _SharedOAuthState:
    """Token state shared by every hook of the process that uses the same store."""

    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)
    tokens: TokenSet | None = None
    location_tokens: dict[str, tuple[str, float]] = dataclasses.field(default_factory=dict)


_STATES: dict[str, _SharedOAuthState] = {}
_STATES_LOCK = threading.Lock()


def _shared_state(store: TokenStore) -> _SharedOAuthState:
    with _STATES_LOCK:
        return _STATES.setdefault(store.name, _SharedOAuthState())


#: ``post(path, form, bearer, version)`` sends a form-encoded POST and returns the JSON body, raising
#: :class:`GHLAuthError` (with ``ghl_error``) on an error answer. Supplied by the hook.
FormPoster = Callable[[str, dict[str, str], str | None, str | None], dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class OAuthDialect:
    """How one API version speaks OAuth: paths, ``Version`` headers and the form's field names.

    :param location_token_path: the agency -> location token endpoint.
    :param token_version: ``Version`` header of ``POST /oauth/token`` (None: v2 declares none).
    :param location_token_version: ``Version`` header of the location-token endpoint.
    :param camel_case: whether form fields are camelCase (``clientId``) rather than snake_case (``client_id``).
    """

    location_token_path: str
    token_version: str | None
    location_token_version: str
    camel_case: bool

    def form(self, **fields: str | None) -> dict[str, str]:
        """The form of ``fields`` given in snake_case, in this dialect's names; None values are left out."""
        return {_camel(k) if self.camel_case else k: v for k, v in fields.items() if v is not None}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


#: oauth.json (``Version: 2021-07-28``) and oauth-v3.json (``Version: v3``: camelCase forms and answers).
OAUTH_V2 = OAuthDialect(OAUTH_LOCATION_TOKEN_PATH, None, "2021-07-28", camel_case=False)
OAUTH_V3 = OAuthDialect(OAUTH_V3_LOCATION_TOKEN_PATH, "v3", "v3", camel_case=True)


class OAuthTokenManager:
    """Rotating OAuth tokens shared through a :class:`TokenStore`, single-flight per process.

    :param config: the validated connection (client id and secret, user type, location, bootstrap token).
    :param store: where the token set lives.
    :param post: sends the token-endpoint requests (see :data:`FormPoster`).
    :param skew: refresh this many seconds before expiry.
    :param newer_token_wait: after ``invalid_grant``, how long to look for a set another worker persisted.
    """

    def __init__(
        self,
        config: GHLConnectionConfig,
        store: TokenStore,
        post: FormPoster,
        *,
        skew: float = DEFAULT_REFRESH_SKEW,
        newer_token_wait: float = DEFAULT_NEWER_TOKEN_WAIT,
    ) -> None:
        self.config = config
        self.store = store
        self._post = post
        self.skew = skew
        self.newer_token_wait = newer_token_wait
        self._state = _shared_state(store)
        self.dialect = OAUTH_V3 if config.api_version == "v3" else OAUTH_V2
        mask_secret(config.secret)
        if config.refresh_token:
            mask_secret(config.refresh_token)

    # -- TokenProvider --------------------------------------------------------------------------------------
    def rate_key(self, location_id: str | None) -> Hashable:
        # GHL budgets per app and location: every token of this app for that location shares the budget.
        return ("oauth", self.config.client_id, location_id or self.config.location_id)

    def access_token(self, location_id: str | None, *, allow_refresh: bool = True) -> str:
        tokens = self.current(allow_refresh=allow_refresh)
        if not self.config.is_agency:
            return tokens.access_token
        return self._location_token(location_id or self.config.location_id, tokens, allow_refresh=allow_refresh)

    def recover(self, used_token: str, location_id: str | None, *, allow_refresh: bool = True) -> bool:
        """Called after a 401 with ``used_token``; True when a different, usable token is now available."""
        state = self._state
        with state.lock:
            for loc, (token, _) in list(state.location_tokens.items()):
                if token == used_token:  # a minted location token: mint a new one on next use
                    del state.location_tokens[loc]
                    return True
            current = state.tokens
            if current and current.access_token != used_token and not current.expires_within(self.skew):
                return True  # another thread refreshed while this request was in flight
            stored = self.store.load()
            if stored and stored.access_token != used_token and not stored.expires_within(self.skew):
                state.tokens = stored  # another process refreshed
                return True
            if not allow_refresh:
                return False
            state.tokens = self._refresh_locked(stored or current)
            return True

    # -- token set ------------------------------------------------------------------------------------------
    def current(self, *, allow_refresh: bool = True) -> TokenSet:
        """The valid token set: from memory, else the store, else a refresh (when allowed)."""
        state = self._state
        tokens = state.tokens
        if tokens is not None and not tokens.expires_within(self.skew):
            return tokens
        with state.lock:
            tokens = state.tokens
            if tokens is not None and not tokens.expires_within(self.skew):
                return tokens  # refreshed by the thread that held the lock before us
            stored = self.store.load()
            if stored is not None and not stored.expires_within(self.skew):
                state.tokens = stored
                return stored
            if not allow_refresh:
                what = "is empty" if stored is None else "holds an access token that has expired"
                raise GHLAuthError(
                    f"{self.store.name} {what}, and this caller does not refresh tokens. "
                    "Run GHLRefreshTokenOperator (or any task using the hook) to refresh it."
                )
            state.tokens = self._refresh_locked(stored or tokens)
            return state.tokens

    def refresh(self) -> TokenSet:
        """Spend the stored refresh token now and persist the new set (what :class:`GHLRefreshTokenOperator`
        does). If another worker rotated the set a moment ago, its newer set is returned instead."""
        state = self._state
        with state.lock:
            state.tokens = self._refresh_locked(self.store.load() or state.tokens, force=True)
            state.location_tokens.clear()
            return state.tokens

    def _refresh_locked(self, base: TokenSet | None, *, force: bool = False, depth: int = 0) -> TokenSet:
        refresh_token = base.refresh_token if base else None
        if not refresh_token:
            refresh_token = self.config.refresh_token
            if not refresh_token:
                raise GHLConfigError(
                    f"Connection {self.config.conn_id!r}: no OAuth token. {self.store.name} is empty and the "
                    "connection has no refresh_token extra to bootstrap from."
                )
        form = self.dialect.form(
            client_id=self.config.client_id or "",
            client_secret=self.config.secret,
            grant_type="refresh_token",
            refresh_token=refresh_token,
            user_type=self.config.user_type,
        )
        try:
            body = self._post(OAUTH_TOKEN_PATH, form, None, self.dialect.token_version)
        except GHLAuthError as err:
            if err.ghl_error != "invalid_grant":
                raise
            newer = self._wait_for_newer(refresh_token)
            if newer is None:
                raise as_auth_error(
                    err,
                    f"GHL refused the OAuth refresh token (invalid_grant) of connection "
                    f"{self.config.conn_id!r} and no newer token set appeared in {self.store.name}. "
                    "The app must be re-authorized: install it again and store the new refresh token "
                    "(empty the Variable and set the connection's refresh_token extra).",
                ) from None
            log.info("Another worker rotated the GHL token set first; using the newer set from %s.", self.store.name)
            if newer.expires_within(self.skew) and not force and depth == 0:
                return self._refresh_locked(newer, depth=1)
            return newer
        tokens = TokenSet.from_response(body, previous=base)
        tokens.mask()
        if not tokens.refresh_token:
            # GHL always rotates; keeping the spent one would strand the next refresh.
            raise GHLAuthError("GHL's token endpoint answered without a new refresh token.")
        self._persist(tokens)
        log.info("Refreshed the GHL OAuth token set; it expires at %s.", tokens.describe()["expires_at"])
        return tokens

    def _wait_for_newer(self, spent: str) -> TokenSet | None:
        def newer() -> TokenSet | None:
            stored = self.store.load()
            return stored if stored is not None and stored.refresh_token != spent else None

        # The winner persists right after GHL answers it; give it a moment rather than failing the task.
        retrying = Retrying(
            retry=retry_if_result(lambda tokens: tokens is None),
            stop=stop_after_delay(self.newer_token_wait),
            wait=wait_fixed(0.25),
            retry_error_callback=lambda state: None,
        )
        return retrying(newer)

    def _persist(self, tokens: TokenSet) -> None:
        try:
            for attempt in Retrying(stop=stop_after_attempt(3), wait=wait_exponential(0.2, max=2), reraise=True):
                with attempt:
                    self.store.save(tokens)
        except Exception as err:
            raise GHLAuthError(
                f"GHL rotated the OAuth token set but saving it to {self.store.name} failed "
                f"({type(err).__name__}); the previous refresh token is spent. Fix the store, then re-authorize "
                "the app if no other worker holds the new set."
            ) from None

    # -- agency (Company) tokens ----------------------------------------------------------------------------
    def _location_token(self, location_id: str | None, company: TokenSet, *, allow_refresh: bool) -> str:
        if not location_id:
            raise GHLConfigError(
                f"Connection {self.config.conn_id!r} holds an agency (Company) token: set location_id (or pass "
                "one) so the hook can mint a location token."
            )
        state = self._state
        cached = state.location_tokens.get(location_id)
        if cached and cached[1] - time.time() > self.skew:
            return cached[0]
        with state.lock:
            cached = state.location_tokens.get(location_id)
            if cached and cached[1] - time.time() > self.skew:
                return cached[0]
            form = {"companyId": self.config.company_id or company.company_id or "", "locationId": location_id}
            path, version = self.dialect.location_token_path, self.dialect.location_token_version
            try:
                body = self._post(path, form, company.access_token, version)
            except GHLAuthError as err:
                # The agency token itself was refused: refresh it once and mint again.
                if err.status != 401 or not self.recover(company.access_token, None, allow_refresh=allow_refresh):
                    raise
                company = self.current(allow_refresh=allow_refresh)
                body = self._post(path, form, company.access_token, version)
            token = body.get("access_token") or body.get("accessToken")
            if not token:
                raise GHLAuthError("GHL's location-token endpoint answered without an access token.")
            mask_secret(token)
            expires_in = float(body.get("expires_in") or body.get("expiresIn") or 0)
            state.location_tokens[location_id] = (token, time.time() + expires_in)
            return token


def reset_shared_state() -> None:
    """Forget every in-memory token set and location token of this process (tests, or after re-authorizing)."""
    with _STATES_LOCK:
        _STATES.clear()
