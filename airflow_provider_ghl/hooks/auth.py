"""Tokens for the GHL hook: static Private Integration Tokens, rotating OAuth token sets, agency location tokens.

OAuth refresh tokens are single-use: every refresh returns a new one and kills the old. The token set therefore
lives in one shared place (a :class:`~airflow_provider_ghl.hooks.tokens.TokenStore`, an Airflow Variable by
default), and every process follows the same protocol:

* use the stored access token while it is valid (in memory after the first read);
* refresh it when it is within ``skew`` seconds of expiry or GHL answers 401, one thread at a time per process;
* persist the rotated set *before* using it, so a crash cannot lose the only valid refresh token;
* on ``invalid_grant`` another worker has spent the refresh token first: re-read the store and use its newer
  set; if none appears, the app must be re-authorized (:class:`~airflow_provider_ghl.exceptions.GHLAuthError`).

An agency (Company) install mints each location's token from its own, shared by every process that the rate
budget reaches (:mod:`~airflow_provider_ghl.hooks.location_tokens`), and calls agency-level operations with
its own token (:class:`CompanyTokenAuth`). A location where the app is no longer installed, or that GHL
reports as not active, raises :class:`~airflow_provider_ghl.exceptions.GHLLocationNotInstalledError`.

Every token is passed to ``mask_secret`` the moment it is known.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Protocol

from airflow.sdk.log import mask_secret
from tenacity import Retrying, retry_if_result, stop_after_attempt, stop_after_delay, wait_exponential, wait_fixed

from airflow_provider_ghl import metrics
from airflow_provider_ghl.exceptions import (
    GHLAuthError,
    GHLConfigError,
    GHLInstallError,
    GHLLocationNotInstalledError,
)
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.endpoints import (
    OAUTH_LOCATION_TOKEN_PATH,
    OAUTH_TOKEN_PATH,
    OAUTH_V3_LOCATION_TOKEN_PATH,
)
from airflow_provider_ghl.hooks.location_tokens import LocationTokens, MintedToken, ProcessLocationTokens
from airflow_provider_ghl.hooks.responses import as_auth_error, reports_not_installed
from airflow_provider_ghl.hooks.tokens import TokenSet, TokenStore, VariableTokenStore

__all__ = [
    "DEFAULT_REFRESH_SKEW",
    "CompanyTokenAuth",
    "OAuthTokenManager",
    "PrivateTokenAuth",
    "TokenProvider",
    "TokenSet",
    "TokenStore",
    "VariableTokenStore",
    "reset_shared_state",
]

log = logging.getLogger(__name__)

#: Refresh an access token this many seconds before GHL says it expires.
DEFAULT_REFRESH_SKEW = 300.0
#: After ``invalid_grant``, how long to wait for the worker that won the refresh to persist its token set.
DEFAULT_NEWER_TOKEN_WAIT = 10.0


def _digest(secret: str) -> str:
    """A short, stable, non-reversible name for a secret (rate-limit keys, never logs of the secret)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


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


def _not_installed(err: GHLAuthError, location_id: str | None, what: str) -> GHLLocationNotInstalledError:
    """GHL's refusal ``err`` of an OAuth request for ``location_id`` as the location no longer having the app."""
    said = (err.ghl_message or "").rstrip(".")
    return GHLLocationNotInstalledError(
        f"{what}: {said} (location {location_id}). The app is no longer installed there, or the location was "
        "deactivated.",
        location_id=location_id,
        method=err.method,
        path=err.path,
        status=err.status,
        ghl_message=err.ghl_message,
    )


class OAuthTokenManager:
    """Rotating OAuth tokens shared through a :class:`TokenStore`, single-flight per process.

    :param config: the validated connection (client id and secret, user type, location, bootstrap token).
    :param store: where the token set lives.
    :param post: sends the token-endpoint requests (see :data:`FormPoster`).
    :param skew: refresh this many seconds before expiry.
    :param newer_token_wait: after ``invalid_grant``, how long to look for a set another worker persisted.
    :param shared_location_tokens: where an agency install's minted location tokens are shared with other
        processes (default: not beyond this one).
    """

    def __init__(
        self,
        config: GHLConnectionConfig,
        store: TokenStore,
        post: FormPoster,
        *,
        skew: float = DEFAULT_REFRESH_SKEW,
        newer_token_wait: float = DEFAULT_NEWER_TOKEN_WAIT,
        shared_location_tokens: LocationTokens | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self._post = post
        self.shared_location_tokens = shared_location_tokens or ProcessLocationTokens()
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
                    self.shared_location_tokens.discard(loc, used_token)
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

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        """Exchange an authorization code (the install flow's callback) for the token set of the installation the
        user approved; nothing is stored yet (see :meth:`adopt`).

        ``user_type`` is left out of the request (GHL's spec makes it optional): the grant says whether a location
        or an agency was approved, and either may be an installation of this app.

        :param code: the ``code`` GHL sent to the redirect URL.
        :param redirect_uri: the redirect URL the authorization page was given.
        :raises GHLInstallError: GHL refused the code, or answered without a refresh token.
        """
        form = self.dialect.form(
            client_id=self.config.client_id or "",
            client_secret=self.config.secret,
            grant_type="authorization_code",
            code=code,
            redirect_uri=redirect_uri,
        )
        try:
            body = self._post(OAUTH_TOKEN_PATH, form, None, self.dialect.token_version)
        except GHLAuthError as err:
            raise GHLInstallError(
                f"GHL refused the install's code for connection {self.config.conn_id!r}: "
                f"{err.ghl_message or err}. Start the install again."
            ) from None
        tokens = TokenSet.from_response(body)
        tokens.mask()
        if not tokens.refresh_token:
            raise GHLInstallError("GHL's token endpoint answered the install without a refresh token.")
        return tokens

    def adopt(self, tokens: TokenSet) -> None:
        """Store ``tokens`` as this manager's installation (persisted first, then used by this process).

        :param tokens: a set from :meth:`exchange_code`.
        """
        with self._state.lock:
            self._persist(tokens)
            self._state.tokens = tokens
            self._state.location_tokens.clear()
        log.info("Stored the GHL app installation in %s: %s.", self.store.name, tokens.describe())

    def forget_tokens(self) -> None:
        """Forget this process's copy of the set (its Variable was deleted: the app was uninstalled)."""
        with self._state.lock:
            self._state.tokens = None
            self._state.location_tokens.clear()

    def not_this_installation(self, tokens: TokenSet) -> str | None:
        """Why ``tokens`` are not the connection's own installation, or None when they are: an agency's for
        ``user_type=Company`` (its ``company_id`` when set), the connection's ``location_id`` otherwise.

        :param tokens: a granted set.
        """
        config = self.config
        granted = tokens.user_type or ("Company" if tokens.company_id and not tokens.location_id else "Location")
        if config.is_agency:
            if granted != "Company":
                return f"it is an agency install (user_type=Company), but GHL granted location {tokens.location_id}"
            if config.company_id and tokens.company_id and tokens.company_id != config.company_id:
                return f"its company is {config.company_id}, but GHL granted company {tokens.company_id}"
            return None
        if granted != "Location":
            return "it is a location install (user_type=Location), but GHL granted an agency (Company) token"
        if tokens.location_id != config.location_id:
            return f"its location is {config.location_id}, but GHL granted location {tokens.location_id}"
        return None

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
            if err.ghl_error != "invalid_grant" or reports_not_installed(err):
                metrics.count("token_refreshes", outcome="failed")
            if reports_not_installed(err):
                # Not consumed by GHL: the same token works again if the location is reactivated.
                location = self.config.location_id or (base.location_id if base else None)
                raise _not_installed(
                    err, location, f"GHL refused to refresh the OAuth token of connection {self.config.conn_id!r}"
                ) from None
            if err.ghl_error != "invalid_grant":
                raise
            newer = self._wait_for_newer(refresh_token)
            if newer is None:
                metrics.count("token_refreshes", outcome="failed")
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
        metrics.count("token_refreshes", outcome="ok")
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
    def company_id(self, *, allow_refresh: bool = True) -> str:
        """The agency's company id: the connection's ``company_id``, else the one GHL gave with the token set."""
        company = self.config.company_id or self.current(allow_refresh=allow_refresh).company_id
        if not company:
            raise GHLConfigError(
                f"Connection {self.config.conn_id!r} holds an agency (Company) token: set its company_id extra."
            )
        return company

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
            minted = self.shared_location_tokens.obtain(
                location_id,
                lambda: self._mint(location_id, company, allow_refresh=allow_refresh),
                lambda held: held.expires_at - time.time() > self.skew,
            )
            mask_secret(minted.token)
            state.location_tokens[location_id] = (minted.token, minted.expires_at)
            return minted.token

    def _mint(self, location_id: str, company: TokenSet, *, allow_refresh: bool) -> MintedToken:
        """``POST /oauth/locationToken`` (v3: ``/oauth/location-token``) for ``location_id``."""
        form = {"companyId": self.config.company_id or company.company_id or "", "locationId": location_id}
        path, version = self.dialect.location_token_path, self.dialect.location_token_version
        try:
            try:
                body = self._post(path, form, company.access_token, version)
            except GHLAuthError as err:
                # The agency token itself was refused: refresh it once and mint again.
                if err.status != 401 or not self.recover(company.access_token, None, allow_refresh=allow_refresh):
                    raise
                company = self.current(allow_refresh=allow_refresh)
                body = self._post(path, form, company.access_token, version)
        except GHLAuthError as err:
            if not reports_not_installed(err):
                raise
            what = f"GHL refused a token for location {location_id} to the agency of {self.config.conn_id!r}"
            raise _not_installed(err, location_id, what) from None
        token = body.get("access_token") or body.get("accessToken")
        if not token:
            raise GHLAuthError("GHL's location-token endpoint answered without an access token.")
        mask_secret(token)
        expires_in = float(body.get("expires_in") or body.get("expiresIn") or 0)
        return MintedToken(str(token), time.time() + expires_in)

    def forget_location(self, location_id: str) -> None:
        """Drop the location's minted token, here and where it is shared (the app was uninstalled there)."""
        with self._state.lock:
            self._state.location_tokens.pop(location_id, None)
        self.shared_location_tokens.discard(location_id)


class CompanyTokenAuth:
    """The agency (Company) token itself, as a :class:`TokenProvider`: for agency-level operations, such as
    the list of the locations where the app is installed. Its rate budget is the company's.

    :param manager: the agency install's token manager.
    """

    def __init__(self, manager: OAuthTokenManager) -> None:
        self.manager = manager

    def access_token(self, location_id: str | None, *, allow_refresh: bool = True) -> str:
        return self.manager.current(allow_refresh=allow_refresh).access_token

    def recover(self, used_token: str, location_id: str | None, *, allow_refresh: bool = True) -> bool:
        return self.manager.recover(used_token, None, allow_refresh=allow_refresh)

    def rate_key(self, location_id: str | None) -> Hashable:
        config = self.manager.config
        return ("oauth", config.client_id, "company", config.company_id)


def reset_shared_state() -> None:
    """Forget every in-memory token set and location token of this process (tests, or after re-authorizing)."""
    with _STATES_LOCK:
        _STATES.clear()
