"""Hook for the HighLevel (GHL / LeadConnector) Contacts API."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal, NamedTuple
from urllib.parse import quote

import httpx
import requests
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from airflow_provider_ghl import __version__
from airflow_provider_ghl.exceptions import (
    GHLApiError,
    GHLAuthError,
    GHLConfigError,
    GHLConnectionError,
    GHLError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLRateLimitError,
)
from airflow_provider_ghl.hooks.auth import (
    DEFAULT_REFRESH_SKEW,
    OAuthTokenManager,
    PrivateTokenAuth,
    TokenProvider,
    TokenSet,
    TokenStore,
    VariableTokenStore,
)
from airflow_provider_ghl.hooks.config import GHLConnectionConfig
from airflow_provider_ghl.hooks.endpoints import ENDPOINTS, Endpoint
from airflow_provider_ghl.hooks.ratelimit import RateLimiter, limiter_for
from airflow_provider_ghl.hooks.responses import extract_result, parse_response, transport_error

USER_AGENT = f"airflow-provider-ghl/{__version__}"
#: Child collections of a contact that :meth:`GHLHook.fetch_contact_children` can fetch.
CHILD_KINDS = ("tasks", "notes", "appointments")
SEARCH_MAX_PAGE_LIMIT = 500

DateLike = datetime | str


class RequestStats:
    """Counts of the API requests a hook sent (every attempt, retries included); safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.rate_limited = 0
        self.server_errors = 0
        self.transport_errors = 0

    def record(self, status: int | None) -> None:
        """One attempt: its HTTP status, or None when no response arrived."""
        with self._lock:
            self.requests += 1
            if status is None:
                self.transport_errors += 1
            elif status == 429:
                self.rate_limited += 1
            elif status >= 500:
                self.server_errors += 1

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {
                "requests": self.requests,
                "responses_429": self.rate_limited,
                "server_errors": self.server_errors,
                "transport_errors": self.transport_errors,
            }


class ContactPage(NamedTuple):
    """One page of :meth:`GHLHook.iter_contact_pages`.

    :param contacts: the contacts, each with its ``searchAfter`` cursor.
    :param total: how many contacts GHL says match (None if it did not say).
    """

    contacts: list[dict[str, Any]]
    total: int | None


class ContactChildren(NamedTuple):
    """One result of :meth:`GHLHook.fetch_contact_children`.

    :param contact_id: the contact.
    :param kind: ``tasks``, ``notes`` or ``appointments``.
    :param items: the records (empty on error).
    :param error: the failure, when ``raise_on_error=False``.
    """

    contact_id: str
    kind: str
    items: list[dict[str, Any]]
    error: GHLError | None = None


class _TokenRecovered(GHLAuthError):
    """Internal: a 401 was answered with a fresh token; repeat the request at once."""


def iso_utc(value: DateLike) -> str:
    """ISO-8601 in UTC with a ``Z``, as GHL writes dates; naive datetimes are taken as UTC."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _contact_window(
    since: DateLike | None, until: DateLike | None, date_field: str, filters: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Filters and sort of :meth:`GHLHook.iter_contacts`: a half-open ``[since, until)`` window, stable order."""
    conditions = [dict(f) for f in filters]
    if since is None and until is None:
        # dateAdded never changes, so edits during the run cannot move a contact across the cursor.
        return conditions, [{"field": "dateAdded", "direction": "asc"}]
    # Freeze an open end now: contacts edited during the run belong to the next window, not this one twice.
    window = {"lt": iso_utc(until if until is not None else datetime.now(UTC))}
    if since is not None:
        window["gte"] = iso_utc(since)
    conditions.append({"field": date_field, "operator": "range", "value": window})
    return conditions, [{"field": date_field, "direction": "asc"}]


def _next_search_cursor(
    contacts: Sequence[Mapping[str, Any]], page_limit: int, cursor: list[Any] | None
) -> list[Any] | None:
    """The ``searchAfter`` to ask the next search page with, or None after the last (short) page.

    A full page must end with a new cursor: a missing or repeated one would silently truncate the walk or
    loop on the same page forever, so it is an error instead.
    """
    if len(contacts) < page_limit:
        return None
    next_cursor = contacts[-1].get("searchAfter")
    if not next_cursor or next_cursor == cursor:
        raise GHLApiError(
            method="POST", path="/contacts/search", ghl_message="search page without a new searchAfter cursor"
        )
    return list(next_cursor)


def _compact(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Drop ``None`` values: GHL's validators reject explicit nulls for optional fields."""
    return {k: v for k, v in mapping.items() if v is not None}


class GHLHook(BaseHook):
    """Talk to the HighLevel (GHL) Contacts API through one rate-limited, retrying request funnel.

    Authentication is a Private Integration Token (``auth_type=private_token``, the default) or a Marketplace
    app's OAuth tokens (``auth_type=oauth``), rotated through an Airflow Variable (see
    :mod:`airflow_provider_ghl.hooks.auth`; configure a Fernet key so the Variable is encrypted). Every
    request goes through :meth:`call` (sync) or the async twin: a process-wide rate limiter that follows GHL's
    ``X-RateLimit-*`` headers, tenacity retries (429 always; 5xx and dropped connections only where a repeat
    cannot duplicate a write) and mapping of GHL errors to :mod:`airflow_provider_ghl.exceptions`.

    :param ghl_conn_id: the ``ghl`` connection to use.
    :param location_id: default location (sub-account) id; overrides the connection's ``location_id``.
    :param max_workers: concurrency of this hook: HTTP pool size and threads of :meth:`fetch_contact_children`.
    :param token_store: where OAuth token sets live; default: the connection's token Variable.
    :param timeout: read timeout in seconds (overrides the connection's ``timeout``).
    :param max_retries: retries after the first attempt (overrides the connection's ``max_retries``).
    :param retry_max_seconds: give up retrying a request after this much time.
    :param daily_reserve: daily requests to leave untouched; below it calls raise
        :class:`~airflow_provider_ghl.exceptions.GHLDailyBudgetExhausted`.
    :param max_requests: starting burst budget (the headers take over once seen).
    :param interval_ms: starting burst window in milliseconds.
    :param refresh_skew: refresh OAuth access tokens this many seconds before they expire.
    :param retry_backoff: scale of the exponential backoff with jitter between retries, in seconds.
    """

    conn_name_attr = "ghl_conn_id"
    default_conn_name = "ghl_default"
    conn_type = "ghl"
    hook_name = "HighLevel (GHL)"

    def __init__(
        self,
        ghl_conn_id: str = default_conn_name,
        *,
        location_id: str | None = None,
        max_workers: int = 8,
        token_store: TokenStore | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry_max_seconds: float = 300.0,
        daily_reserve: int | None = None,
        max_requests: int | None = None,
        interval_ms: int | None = None,
        refresh_skew: float = DEFAULT_REFRESH_SKEW,
        retry_backoff: float = 0.5,
        logger_name: str | None = None,
    ) -> None:
        super().__init__(logger_name=logger_name)
        if max_workers < 1:
            raise GHLConfigError(f"max_workers must be >= 1, got {max_workers}")
        self.ghl_conn_id = ghl_conn_id
        self.max_workers = max_workers
        self.retry_max_seconds = retry_max_seconds
        self.refresh_skew = refresh_skew
        self._token_store = token_store
        self._overrides: dict[str, Any] = {
            "location_id": location_id,
            "timeout": timeout,
            "max_retries": max_retries,
            "daily_reserve": daily_reserve,
            "max_requests": max_requests,
            "interval_ms": interval_ms,
        }
        #: What this hook sent, for run summaries and manifests.
        self.request_stats = RequestStats()
        # cached_property is not thread-safe; the fan-out reaches session and auth from many threads at once.
        self._init_lock = threading.Lock()
        self._backoff = wait_random_exponential(multiplier=retry_backoff, max=30)

    # ------------------------------------------------------------------------------------------------------
    # Connection, session, auth
    # ------------------------------------------------------------------------------------------------------
    @cached_property
    def config(self) -> GHLConnectionConfig:
        """The validated connection; raises :class:`GHLConfigError` before any request when it is unusable."""
        return GHLConnectionConfig.from_connection(self.get_connection(self.ghl_conn_id), **self._overrides)

    async def aget_config(self) -> GHLConnectionConfig:
        """:attr:`config` resolved with ``aget_connection`` (safe on the triggerer's event loop)."""
        if "config" not in self.__dict__:
            conn = await self.aget_connection(self.ghl_conn_id)
            # Shares the cache slot of the sync property, like DbtCloudHook does.
            self.__dict__["config"] = GHLConnectionConfig.from_connection(conn, **self._overrides)
        return self.__dict__["config"]

    def _base_headers(self) -> dict[str, str]:
        return {"Version": self.config.api_version, "Accept": "application/json", "User-Agent": USER_AGENT}

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session``: pooled for ``max_workers`` threads, GHL headers preset."""
        with self._init_lock:
            if "_session" not in self.__dict__:
                session = requests.Session()
                # Retries belong to tenacity in the funnel, not to urllib3.
                adapter = HTTPAdapter(pool_connections=2, pool_maxsize=self.max_workers, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers.update(self._base_headers())
                self.__dict__["_session"] = session
            return self.__dict__["_session"]

    def close(self) -> None:
        """Close the HTTP session (connections are otherwise closed when the hook is collected)."""
        session = self.__dict__.pop("_session", None)
        if session is not None:
            session.close()

    @property
    def auth(self) -> TokenProvider:
        """The token provider of the connection's ``auth_type``."""
        with self._init_lock:
            if "_auth" not in self.__dict__:
                config = self.config
                provider: TokenProvider
                if config.is_oauth:
                    store = self._token_store or VariableTokenStore(config.token_variable)
                    provider = OAuthTokenManager(config, store, self._post_form, skew=self.refresh_skew)
                else:
                    provider = PrivateTokenAuth(config.secret)
                self.__dict__["_auth"] = provider
            return self.__dict__["_auth"]

    def refresh_oauth_token(self) -> TokenSet:
        """Spend the stored OAuth refresh token now and persist the new set (single-writer deployments).

        :return: the new token set (use :meth:`TokenSet.describe` for anything that gets logged or returned).
        """
        auth = self.auth
        if not isinstance(auth, OAuthTokenManager):
            raise GHLConfigError(
                f"Connection {self.ghl_conn_id!r} uses a Private Integration Token: there is nothing to refresh."
            )
        return auth.refresh()

    def _post_form(self, path: str, form: dict[str, str], bearer: str | None, version: str | None) -> dict[str, Any]:
        """POST a form to an OAuth endpoint. Never repeated once sent: a refresh token works only once."""
        config = self.config
        headers: dict[str, str | None] = {"Version": version, "Content-Type": "application/x-www-form-urlencoded"}
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, GHLConnectionError) and not e.sent),
            stop=stop_after_attempt(3),
            wait=self._backoff,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                try:
                    # A None header value drops the session's Version header (POST /oauth/token declares none).
                    response = self.get_conn().post(
                        config.base_url + path,
                        data=form,
                        headers=headers,
                        timeout=(config.connect_timeout, config.timeout),
                    )
                except requests.RequestException as err:
                    raise transport_error("POST", path, err) from err
                try:
                    return parse_response(
                        "POST", path, response.status_code, response.headers, response.content, interval=1.0
                    )
                except GHLAuthError:
                    raise
                except GHLApiError as err:
                    # Token-endpoint refusals (400 invalid_grant, 401 invalid_client, ...) are auth problems.
                    raise GHLAuthError(
                        method="POST",
                        path=path,
                        status=err.status,
                        ghl_message=err.ghl_message,
                        ghl_error=err.ghl_error,
                        trace_id=err.trace_id,
                    ) from None
        raise AssertionError("unreachable")  # pragma: no cover - Retrying re-raises

    # ------------------------------------------------------------------------------------------------------
    # The request funnel
    # ------------------------------------------------------------------------------------------------------
    def _limiter(self, location_id: str | None) -> RateLimiter:
        config = self.config
        return limiter_for(self.auth.rate_key(location_id), config.max_requests, config.interval_ms)

    def _resolve(
        self,
        operation: str,
        path_params: Mapping[str, Any] | None,
        params: Mapping[str, Any] | None,
        json: Any,
        location_id: str | None,
    ) -> tuple[Endpoint, str, dict[str, Any] | None, Any, str | None]:
        """Build path, query and body of ``operation`` from the endpoint table."""
        try:
            endpoint = ENDPOINTS[operation]
        except KeyError:
            raise ValueError(f"Unknown GHL operation {operation!r}") from None
        config = self.config
        template = endpoint.path
        if config.api_version == "v3" and endpoint.v3_path is not None:
            if not endpoint.v3_path:
                raise GHLConfigError(f"{operation} ({endpoint.method} {endpoint.path}) was removed in API v3.")
            template = endpoint.v3_path
        location = location_id or config.location_id
        values = dict(path_params or {})
        query = _compact(params or {})
        if endpoint.location is not None:
            if not location:
                raise GHLConfigError(
                    f"{operation} needs a location: pass location_id or set location_id on connection "
                    f"{self.ghl_conn_id!r}."
                )
            if endpoint.location == "query":
                query.setdefault("locationId", location)
            elif endpoint.location == "body":
                json = {"locationId": location, **(json or {})}
            else:
                values["locationId"] = location
        for name, value in values.items():
            if value is None or str(value) == "":
                raise ValueError(f"{operation}: path parameter {name} is empty")
        # Quote every path value so an id can never reach another route.
        path = template.format(**{k: quote(str(v), safe="") for k, v in values.items()})
        return endpoint, path, query or None, json, location

    def call(
        self,
        operation: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        location_id: str | None = None,
    ) -> Any:
        """Run one operation of :data:`~airflow_provider_ghl.hooks.endpoints.ENDPOINTS` and return its resource.

        The typed methods are one-line wrappers of this.

        :param operation: operation name, e.g. ``get_contact``.
        :param path_params: values of the path template (GHL's names, e.g. ``contactId``).
        :param params: query parameters (``None`` values are dropped).
        :param json: JSON body.
        :param location_id: location of the call; default: the hook's / connection's.
        """
        endpoint, path, query, body, location = self._resolve(operation, path_params, params, json, location_id)
        result = self._request(
            endpoint.method, path, params=query, json=body, retry_safe=endpoint.is_retry_safe, location_id=location
        )
        return extract_result(endpoint, result, endpoint.method, path)

    def _should_retry(self, retry_safe: bool) -> retry_if_exception:
        def predicate(exc: BaseException) -> bool:
            if isinstance(exc, _TokenRecovered | GHLRateLimitError):
                return True  # a 401 or 429 means GHL did nothing: always safe to repeat
            if isinstance(exc, GHLConnectionError) and not exc.sent:
                return True
            return isinstance(exc, GHLApiError) and exc.transient and retry_safe

        return retry_if_exception(predicate)

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _TokenRecovered):
            return 0.0
        if isinstance(exc, GHLRateLimitError) and exc.retry_after is not None:
            # The shared limiter is paused for the window; just avoid every thread waking at the same instant.
            return random.uniform(0, 0.1)
        return self._backoff(retry_state)

    def _log_retry(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, _TokenRecovered):
            return
        self.log.warning(
            "GHL request failed (attempt %d): %s; retrying in %.2f s",
            retry_state.attempt_number,
            exc,
            retry_state.upcoming_sleep,
        )

    def _stop(self, attempts: int) -> Callable[[RetryCallState], bool]:
        """Stop after ``attempts`` failed attempts or ``retry_max_seconds``. A 429 or a token recovery does not
        use up an attempt: GHL did nothing, and the limiter already waits the window; only time bounds them."""
        failures = 0
        out_of_time = stop_after_delay(self.retry_max_seconds)

        def stop(retry_state: RetryCallState) -> bool:
            nonlocal failures
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if not isinstance(exc, GHLRateLimitError | _TokenRecovered):
                failures += 1
            return failures >= attempts or out_of_time(retry_state)

        return stop

    def _retry_kwargs(self, retry_safe: bool, max_attempts: int | None) -> dict[str, Any]:
        return {
            "retry": self._should_retry(retry_safe),
            "wait": self._wait,
            "stop": self._stop(max_attempts or self.config.max_retries + 1),
            "before_sleep": self._log_retry,
            "reraise": True,
        }

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry_safe: bool,
        location_id: str | None,
        allow_refresh: bool = True,
        max_attempts: int | None = None,
    ) -> Any:
        """The one funnel every sync request goes through: throttle, send, observe, map errors, retry."""
        config = self.config
        limiter = self._limiter(location_id)
        recovered = False  # at most one token recovery per call: a second 401 is a real refusal
        retried_after_failure = False
        for attempt in Retrying(**self._retry_kwargs(retry_safe, max_attempts)):
            with attempt:
                token = self.auth.access_token(location_id, allow_refresh=allow_refresh)
                sent_at = limiter.acquire(config.daily_reserve)
                try:
                    response = self.get_conn().request(
                        method,
                        config.base_url + path,
                        params=params,
                        json=json,
                        headers={"Authorization": f"Bearer {token}"},
                        timeout=(config.connect_timeout, config.timeout),
                    )
                except requests.RequestException as err:
                    limiter.release(sent_at)
                    self.request_stats.record(None)
                    retried_after_failure = True
                    raise transport_error(method, path, err) from err
                limiter.observe(response.headers, sent_at)
                self.request_stats.record(response.status_code)
                # A 401 may only mean the token rotated or expired: recover once, then let it count.
                if (
                    response.status_code == 401
                    and not recovered
                    and self.auth.recover(token, location_id, allow_refresh=allow_refresh)
                ):
                    recovered = True
                    raise _TokenRecovered(method=method, path=path, status=401)
                try:
                    return self._parsed(method, path, response.status_code, response.headers, response.content, limiter)
                except GHLNotFoundError:
                    if method == "DELETE" and retried_after_failure:
                        # An earlier attempt deleted it before its answer was lost: the goal is reached.
                        return None
                    raise
                except GHLApiError as err:
                    retried_after_failure = retried_after_failure or err.transient
                    raise
        raise AssertionError("unreachable")  # pragma: no cover - Retrying re-raises

    def _parsed(
        self,
        method: str,
        path: str,
        status: int,
        headers: Mapping[str, str],
        content: bytes,
        limiter: RateLimiter,
    ) -> Any:
        try:
            return parse_response(method, path, status, headers, content, interval=limiter.interval)
        except GHLRateLimitError as err:
            if err.retry_after is not None:
                limiter.pause(err.retry_after)  # every thread on this budget waits for the window
            raise
        except GHLAuthError as err:
            if isinstance(err, GHLForbiddenError):
                raise
            raise GHLAuthError(
                f"{method} {path}: GHL refused the token (HTTP {status}: {err.ghl_message}). "
                + (
                    "Check that the Private Integration Token is current and has the needed scopes."
                    if not self.config.is_oauth
                    else "The OAuth token was refreshed once and still refused: check the app's scopes."
                ),
                method=method,
                path=path,
                status=status,
                ghl_message=err.ghl_message,
                trace_id=err.trace_id,
            ) from None

    # ------------------------------------------------------------------------------------------------------
    # Contacts
    # ------------------------------------------------------------------------------------------------------
    def get_contact(self, contact_id: str) -> dict[str, Any]:
        """Get a contact (``GET /contacts/{contactId}``).

        :param contact_id: the contact id.
        """
        return self.call("get_contact", path_params={"contactId": contact_id})

    def create_contact(self, fields: Mapping[str, Any], *, location_id: str | None = None) -> dict[str, Any]:
        """Create a contact (``POST /contacts/``); raises ``GHLDuplicateContactError`` on a duplicate.

        :param fields: contact fields in GHL's names (``firstName``, ``email``, ``customFields``, ...).
        :param location_id: location; default: the hook's.
        """
        return self.call("create_contact", json=dict(fields), location_id=location_id)

    def update_contact(self, contact_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Update a contact (``PUT /contacts/{contactId}``); ``tags`` here replaces all tags.

        :param contact_id: the contact id.
        :param fields: fields to change, in GHL's names.
        """
        return self.call("update_contact", path_params={"contactId": contact_id}, json=dict(fields))

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact (``DELETE /contacts/{contactId}``).

        :param contact_id: the contact id.
        """
        self.call("delete_contact", path_params={"contactId": contact_id})

    def upsert_contact(self, fields: Mapping[str, Any], *, location_id: str | None = None) -> dict[str, Any]:
        """Create or update the contact matching e-mail/phone (``POST /contacts/upsert``).

        :param fields: contact fields in GHL's names (``createNewIfDuplicateAllowed`` allowed).
        :param location_id: location; default: the hook's.
        :return: ``{"new": bool, "contact": {...}}`` (the body: whether it was created matters).
        """
        return self.call("upsert_contact", json=dict(fields), location_id=location_id)

    def get_duplicate_contact(
        self, *, email: str | None = None, phone: str | None = None, location_id: str | None = None
    ) -> dict[str, Any] | None:
        """Find the contact a new one with this e-mail / phone would duplicate
        (``GET /contacts/search/duplicate``).

        :param email: e-mail to match.
        :param phone: phone number to match (E.164, e.g. ``+15550100``).
        :param location_id: location; default: the hook's.
        :return: the contact, or None.
        """
        if not email and not phone:
            raise ValueError("get_duplicate_contact needs email or phone")
        params = {"email": email, "number": phone}
        return self.call("get_duplicate_contact", params=params, location_id=location_id)

    def get_contacts_by_business(
        self,
        business_id: str,
        *,
        limit: int = 100,
        skip: int = 0,
        query: str | None = None,
        location_id: str | None = None,
    ) -> dict[str, Any]:
        """One page of a business's contacts (``GET /contacts/business/{businessId}``).

        :param business_id: the business id.
        :param limit: page size.
        :param skip: records to skip.
        :param query: text filter.
        :param location_id: location; default: the hook's.
        :return: ``{"contacts": [...], "count": N}``.
        """
        params = {"limit": str(limit), "skip": str(skip), "query": query}
        return self.call(
            "get_contacts_by_business",
            path_params={"businessId": business_id},
            params=params,
            location_id=location_id,
        )

    def get_contacts(
        self,
        *,
        limit: int = 100,
        query: str | None = None,
        start_after: int | None = None,
        start_after_id: str | None = None,
        location_id: str | None = None,
    ) -> dict[str, Any]:
        """One page of the deprecated contact list (``GET /contacts/``; gone in API v3).

        :param limit: page size (GHL allows up to 100).
        :param query: text filter.
        :param start_after: cursor: ``meta.startAfter`` of the previous page (epoch ms).
        :param start_after_id: cursor: ``meta.startAfterId`` of the previous page.
        :param location_id: location; default: the hook's.
        :return: ``{"contacts": [...], "meta": {...}}``.
        """
        params = {"limit": limit, "query": query, "startAfter": start_after, "startAfterId": start_after_id}
        return self.call("get_contacts", params=params, location_id=location_id)

    @staticmethod
    def _search_body(
        *,
        query: str | None,
        filters: Sequence[Mapping[str, Any]] | None,
        sort: Sequence[Mapping[str, Any]] | None,
        page_limit: int,
        page: int | None,
        search_after: Sequence[Any] | None,
    ) -> dict[str, Any]:
        if not 1 <= page_limit <= SEARCH_MAX_PAGE_LIMIT:
            raise ValueError(f"page_limit must be 1..{SEARCH_MAX_PAGE_LIMIT}, got {page_limit}")
        body: dict[str, Any] = {"pageLimit": page_limit}
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
        return body

    def search_contacts(
        self,
        *,
        query: str | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        sort: Sequence[Mapping[str, Any]] | None = None,
        page_limit: int = 100,
        page: int | None = None,
        search_after: Sequence[Any] | None = None,
        location_id: str | None = None,
    ) -> dict[str, Any]:
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
        body = self._search_body(
            query=query, filters=filters, sort=sort, page_limit=page_limit, page=page, search_after=search_after
        )
        return self.call("search_contacts", json=body, location_id=location_id)

    # ------------------------------------------------------------------------------------------------------
    # Tags and bulk updates
    # ------------------------------------------------------------------------------------------------------
    def add_tags(self, contact_id: str, tags: Sequence[str]) -> list[str]:
        """Add tags to a contact (``POST /contacts/{contactId}/tags``).

        :param contact_id: the contact id.
        :param tags: tags to add.
        :return: the tags GHL reports.
        """
        return self.call("add_tags", path_params={"contactId": contact_id}, json={"tags": list(tags)})

    def remove_tags(self, contact_id: str, tags: Sequence[str]) -> list[str]:
        """Remove tags from a contact (``DELETE /contacts/{contactId}/tags``).

        :param contact_id: the contact id.
        :param tags: tags to remove.
        :return: the tags GHL reports.
        """
        return self.call("remove_tags", path_params={"contactId": contact_id}, json={"tags": list(tags)})

    def bulk_update_tags(
        self,
        contact_ids: Sequence[str],
        tags: Sequence[str],
        action: Literal["add", "remove"] = "add",
        *,
        remove_all_tags: bool | None = None,
        location_id: str | None = None,
    ) -> dict[str, Any]:
        """Add or remove tags on many contacts (``POST /contacts/bulk/tags/update/{type}``).

        :param contact_ids: contacts to change.
        :param tags: tags to add or remove.
        :param action: ``add`` or ``remove``.
        :param remove_all_tags: with ``remove``: remove every tag.
        :param location_id: location; default: the hook's.
        :return: ``{"succeded", "errorCount", "responses": [...]}`` (per-contact outcomes).
        """
        if action not in ("add", "remove"):
            raise ValueError(f"action must be 'add' or 'remove', got {action!r}")
        body = _compact({"contacts": list(contact_ids), "tags": list(tags), "removeAllTags": remove_all_tags})
        return self.call("bulk_update_tags", path_params={"type": action}, json=body, location_id=location_id)

    def bulk_update_business(
        self, contact_ids: Sequence[str], business_id: str | None, *, location_id: str | None = None
    ) -> dict[str, Any]:
        """Attach contacts to a business, or detach them with ``business_id=None``
        (``POST /contacts/bulk/business``).

        :param contact_ids: contacts to change.
        :param business_id: the business, or None to remove the association.
        :param location_id: location; default: the hook's.
        :return: ``{"success": bool, "ids": [...]}``.
        """
        body = {"ids": list(contact_ids), "businessId": business_id}  # null is meaningful here
        return self.call("bulk_update_business", json=body, location_id=location_id)

    # ------------------------------------------------------------------------------------------------------
    # Tasks
    # ------------------------------------------------------------------------------------------------------
    def get_tasks(self, contact_id: str) -> list[dict[str, Any]]:
        """List a contact's tasks (``GET /contacts/{contactId}/tasks``).

        :param contact_id: the contact id.
        """
        return self.call("get_tasks", path_params={"contactId": contact_id})

    def get_task(self, contact_id: str, task_id: str) -> dict[str, Any]:
        """Get one task (``GET /contacts/{contactId}/tasks/{taskId}``).

        :param contact_id: the contact id.
        :param task_id: the task id.
        """
        return self.call("get_task", path_params={"contactId": contact_id, "taskId": task_id})

    def create_task(
        self,
        contact_id: str,
        *,
        title: str,
        due_date: DateLike,
        completed: bool = False,
        body: str | None = None,
        assigned_to: str | None = None,
    ) -> dict[str, Any]:
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
        return self.call("create_task", path_params={"contactId": contact_id}, json=_compact(fields))

    def update_task(self, contact_id: str, task_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Update a task (``PUT /contacts/{contactId}/tasks/{taskId}``).

        :param contact_id: the contact id.
        :param task_id: the task id.
        :param fields: ``title``, ``body``, ``dueDate``, ``completed``, ``assignedTo``.
        """
        body = {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in fields.items()}
        return self.call("update_task", path_params={"contactId": contact_id, "taskId": task_id}, json=body)

    def complete_task(self, contact_id: str, task_id: str, completed: bool = True) -> dict[str, Any]:
        """Mark a task completed or open (``PUT /contacts/{contactId}/tasks/{taskId}/completed``).

        :param contact_id: the contact id.
        :param task_id: the task id.
        :param completed: the new state.
        """
        return self.call(
            "complete_task", path_params={"contactId": contact_id, "taskId": task_id}, json={"completed": completed}
        )

    def delete_task(self, contact_id: str, task_id: str) -> None:
        """Delete a task (``DELETE /contacts/{contactId}/tasks/{taskId}``).

        :param contact_id: the contact id.
        :param task_id: the task id.
        """
        self.call("delete_task", path_params={"contactId": contact_id, "taskId": task_id})

    # ------------------------------------------------------------------------------------------------------
    # Notes
    # ------------------------------------------------------------------------------------------------------
    def get_notes(self, contact_id: str) -> list[dict[str, Any]]:
        """List a contact's notes (``GET /contacts/{contactId}/notes``).

        :param contact_id: the contact id.
        """
        return self.call("get_notes", path_params={"contactId": contact_id})

    def get_note(self, contact_id: str, note_id: str) -> dict[str, Any]:
        """Get one note (``GET /contacts/{contactId}/notes/{id}``).

        :param contact_id: the contact id.
        :param note_id: the note id.
        """
        return self.call("get_note", path_params={"contactId": contact_id, "id": note_id})

    def create_note(
        self,
        contact_id: str,
        body: str,
        *,
        user_id: str | None = None,
        title: str | None = None,
        color: str | None = None,
        pinned: bool | None = None,
    ) -> dict[str, Any]:
        """Add a note to a contact (``POST /contacts/{contactId}/notes``).

        :param contact_id: the contact id.
        :param body: note text.
        :param user_id: author user id.
        :param title: note title.
        :param color: note color.
        :param pinned: whether the note is pinned.
        """
        fields = {"body": body, "userId": user_id, "title": title, "color": color, "pinned": pinned}
        return self.call("create_note", path_params={"contactId": contact_id}, json=_compact(fields))

    def update_note(self, contact_id: str, note_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Update a note (``PUT /contacts/{contactId}/notes/{id}``).

        :param contact_id: the contact id.
        :param note_id: the note id.
        :param fields: ``body``, ``userId``, ``title``, ``color``, ``pinned``.
        """
        return self.call("update_note", path_params={"contactId": contact_id, "id": note_id}, json=dict(fields))

    def delete_note(self, contact_id: str, note_id: str) -> None:
        """Delete a note (``DELETE /contacts/{contactId}/notes/{id}``).

        :param contact_id: the contact id.
        :param note_id: the note id.
        """
        self.call("delete_note", path_params={"contactId": contact_id, "id": note_id})

    # ------------------------------------------------------------------------------------------------------
    # Appointments, followers, campaigns, workflows
    # ------------------------------------------------------------------------------------------------------
    def get_appointments(self, contact_id: str) -> list[dict[str, Any]]:
        """List a contact's appointments (``GET /contacts/{contactId}/appointments``).

        :param contact_id: the contact id.
        """
        return self.call("get_appointments", path_params={"contactId": contact_id})

    def add_followers(self, contact_id: str, followers: Sequence[str]) -> dict[str, Any]:
        """Add followers (user ids) to a contact (``POST /contacts/{contactId}/followers``).

        :param contact_id: the contact id.
        :param followers: user ids.
        :return: ``{"followers": [...], "followersAdded": [...]}``.
        """
        return self.call("add_followers", path_params={"contactId": contact_id}, json={"followers": list(followers)})

    def remove_followers(self, contact_id: str, followers: Sequence[str]) -> dict[str, Any]:
        """Remove followers from a contact (``DELETE /contacts/{contactId}/followers``).

        :param contact_id: the contact id.
        :param followers: user ids.
        :return: ``{"followers": [...], "followersRemoved": [...]}``.
        """
        return self.call("remove_followers", path_params={"contactId": contact_id}, json={"followers": list(followers)})

    def add_to_campaign(self, contact_id: str, campaign_id: str) -> None:
        """Add a contact to a campaign (``POST /contacts/{contactId}/campaigns/{campaignId}``).

        :param contact_id: the contact id.
        :param campaign_id: the campaign id.
        """
        self.call("add_to_campaign", path_params={"contactId": contact_id, "campaignId": campaign_id}, json={})

    def remove_from_campaign(self, contact_id: str, campaign_id: str) -> None:
        """Remove a contact from a campaign (``DELETE /contacts/{contactId}/campaigns/{campaignId}``).

        :param contact_id: the contact id.
        :param campaign_id: the campaign id.
        """
        self.call("remove_from_campaign", path_params={"contactId": contact_id, "campaignId": campaign_id})

    def remove_from_all_campaigns(self, contact_id: str) -> None:
        """Remove a contact from every campaign (``DELETE /contacts/{contactId}/campaigns/removeAll``).

        :param contact_id: the contact id.
        """
        self.call("remove_from_all_campaigns", path_params={"contactId": contact_id})

    def add_to_workflow(self, contact_id: str, workflow_id: str, *, event_start_time: DateLike | None = None) -> None:
        """Add a contact to a workflow (``POST /contacts/{contactId}/workflow/{workflowId}``).

        :param contact_id: the contact id.
        :param workflow_id: the workflow id.
        :param event_start_time: when the workflow's event starts.
        """
        body = _compact({"eventStartTime": iso_utc(event_start_time) if event_start_time else None})
        self.call("add_to_workflow", path_params={"contactId": contact_id, "workflowId": workflow_id}, json=body)

    def remove_from_workflow(
        self, contact_id: str, workflow_id: str, *, event_start_time: DateLike | None = None
    ) -> None:
        """Remove a contact from a workflow (``DELETE /contacts/{contactId}/workflow/{workflowId}``).

        :param contact_id: the contact id.
        :param workflow_id: the workflow id.
        :param event_start_time: the event start time the contact was added with.
        """
        body = _compact({"eventStartTime": iso_utc(event_start_time) if event_start_time else None})
        self.call("remove_from_workflow", path_params={"contactId": contact_id, "workflowId": workflow_id}, json=body)

    # ------------------------------------------------------------------------------------------------------
    # Location level
    # ------------------------------------------------------------------------------------------------------
    def get_custom_fields(
        self, *, model: Literal["contact", "opportunity", "all"] | None = None, location_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Custom-field definitions of a location (``GET /locations/{locationId}/customFields``): join
        them with a contact's ``customFields`` (``[{id, value}]``) to get names and keys.

        :param model: ``contact``, ``opportunity`` or ``all``.
        :param location_id: location; default: the hook's.
        """
        return self.call("get_custom_fields", params={"model": model}, location_id=location_id)

    def search_location_tasks(
        self,
        *,
        contact_ids: Sequence[str] | None = None,
        completed: bool | None = None,
        assigned_to: Sequence[str] | None = None,
        query: str | None = None,
        business_id: str | None = None,
        limit: int = 100,
        skip: int = 0,
        location_id: str | None = None,
    ) -> list[dict[str, Any]]:
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
        body = _compact(
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
        return self.call("search_location_tasks", json=body, location_id=location_id)

    # ------------------------------------------------------------------------------------------------------
    # Paging
    # ------------------------------------------------------------------------------------------------------
    def iter_contact_pages(
        self,
        *,
        since: DateLike | None = None,
        until: DateLike | None = None,
        date_field: Literal["dateUpdated", "dateAdded"] = "dateUpdated",
        query: str | None = None,
        filters: Sequence[Mapping[str, Any]] = (),
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        search_after: Sequence[Any] | None = None,
        location_id: str | None = None,
    ) -> Iterator[ContactPage]:
        """Pages of :meth:`iter_contacts`, each with GHL's ``total``; can start after a saved cursor.

        Every contact carries its ``searchAfter`` cursor, so a caller that saves the last one it processed can
        resume exactly there (pass it as ``search_after``) with the same window and filters.

        :param search_after: start after this contact cursor (a ``searchAfter`` value GHL returned).
        Other parameters as in :meth:`iter_contacts`.
        """
        conditions, sort = _contact_window(since, until, date_field, filters)
        cursor: list[Any] | None = list(search_after) if search_after else None
        while True:
            page = self.search_contacts(
                query=query,
                filters=conditions or None,
                sort=sort,
                page_limit=page_limit,
                search_after=cursor,
                location_id=location_id,
            )
            contacts = page.get("contacts") or []
            total = page.get("total")
            yield ContactPage(contacts, int(total) if total is not None else None)
            cursor = _next_search_cursor(contacts, page_limit, cursor)
            if cursor is None:
                return

    def iter_contacts(
        self,
        *,
        since: DateLike | None = None,
        until: DateLike | None = None,
        date_field: Literal["dateUpdated", "dateAdded"] = "dateUpdated",
        query: str | None = None,
        filters: Sequence[Mapping[str, Any]] = (),
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        location_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every contact of a location, or those whose ``date_field`` is in ``[since, until)``.

        Pages with ``searchAfter`` (never ``page``), so there is no 10,000-record ceiling. Without a window the
        order is ``dateAdded`` ascending, which edits cannot reorder: each contact comes exactly once even
        while contacts change. With a window the order is ``date_field`` ascending; an open ``until`` is frozen
        to the time of the first request, so contacts edited during the run fall into the next window instead
        of coming twice. GHL's search index lags by seconds: let incremental windows overlap a little.

        :param since: window start (inclusive); datetime or ISO string.
        :param until: window end (exclusive); default now.
        :param date_field: ``dateUpdated`` or ``dateAdded``.
        :param query: full-text query.
        :param filters: more GHL filters, AND-ed with the window.
        :param page_limit: contacts per request, at most 500.
        :param location_id: location; default: the hook's.
        """
        for page in self.iter_contact_pages(
            since=since,
            until=until,
            date_field=date_field,
            query=query,
            filters=filters,
            page_limit=page_limit,
            location_id=location_id,
        ):
            yield from page.contacts

    def iter_contacts_legacy(
        self, *, query: str | None = None, page_limit: int = 100, location_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every contact through the deprecated ``GET /contacts/`` (``startAfter`` / ``startAfterId`` cursor).

        Prefer :meth:`iter_contacts`; this exists for accounts and tools that still rely on the old list.

        :param query: text filter.
        :param page_limit: contacts per request, at most 100.
        :param location_id: location; default: the hook's.
        """
        start_after: int | None = None
        start_after_id: str | None = None
        while True:
            page = self.get_contacts(
                limit=page_limit,
                query=query,
                start_after=start_after,
                start_after_id=start_after_id,
                location_id=location_id,
            )
            contacts = page.get("contacts") or []
            yield from contacts
            meta = page.get("meta") or {}
            if len(contacts) < page_limit or not meta.get("startAfterId"):
                return
            if (meta.get("startAfter"), meta.get("startAfterId")) == (start_after, start_after_id):
                return  # a cursor that does not move would loop forever
            start_after, start_after_id = meta.get("startAfter"), meta["startAfterId"]

    def iter_contacts_by_business(
        self,
        business_id: str,
        *,
        query: str | None = None,
        page_limit: int = 100,
        location_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every contact of a business (``GET /contacts/business/{businessId}``, ``skip``/``limit`` paging).

        :param business_id: the business id.
        :param query: text filter.
        :param page_limit: contacts per request.
        :param location_id: location; default: the hook's.
        """
        skip = 0
        while True:
            page = self.get_contacts_by_business(
                business_id, limit=page_limit, skip=skip, query=query, location_id=location_id
            )
            contacts = page.get("contacts") or []
            yield from contacts
            skip += len(contacts)
            if len(contacts) < page_limit or skip >= int(page.get("count") or 0):
                return

    def iter_location_tasks(
        self,
        *,
        contact_ids: Sequence[str] | None = None,
        completed: bool | None = None,
        assigned_to: Sequence[str] | None = None,
        query: str | None = None,
        page_limit: int = 100,
        location_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every task of a location matching the filters (:meth:`search_location_tasks`, paged by ``skip``).

        :param contact_ids: only tasks of these contacts.
        :param completed: only completed (True) or open (False) tasks.
        :param assigned_to: only tasks assigned to these users.
        :param query: text filter.
        :param page_limit: tasks per request.
        :param location_id: location; default: the hook's.
        """
        skip = 0
        while True:
            tasks = self.search_location_tasks(
                contact_ids=contact_ids,
                completed=completed,
                assigned_to=assigned_to,
                query=query,
                limit=page_limit,
                skip=skip,
                location_id=location_id,
            )
            yield from tasks
            if len(tasks) < page_limit:
                return
            skip += len(tasks)

    # ------------------------------------------------------------------------------------------------------
    # Concurrent fan-out
    # ------------------------------------------------------------------------------------------------------
    def fetch_contact_children(
        self,
        contact_ids: Iterable[str],
        kinds: Sequence[str] = CHILD_KINDS,
        *,
        max_workers: int | None = None,
        raise_on_error: bool = True,
    ) -> Iterator[ContactChildren]:
        """Fetch tasks / notes / appointments of many contacts in parallel, yielding results as they complete.

        A bounded pool of threads shares the hook's session and the process-wide rate limiter, so the work
        runs at the token's budget without 429s. ``contact_ids`` is consumed lazily (it can be
        :meth:`iter_contacts` mapped to ids); at most two jobs per worker are queued at a time.

        :param contact_ids: contacts to fetch for.
        :param kinds: any of ``tasks``, ``notes``, ``appointments``.
        :param max_workers: threads; default and maximum: the hook's ``max_workers`` (its pool size).
        :param raise_on_error: raise the first error (default) or yield it in :attr:`ContactChildren.error`.
        """
        getters = {"tasks": self.get_tasks, "notes": self.get_notes, "appointments": self.get_appointments}
        unknown = [k for k in kinds if k not in getters]
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {CHILD_KINDS}, got {list(kinds)}")
        workers = min(max_workers or self.max_workers, self.max_workers)
        jobs = ((contact_id, kind) for contact_id in contact_ids for kind in kinds)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ghl-fanout")
        pending: dict[Future[list[dict[str, Any]]], tuple[str, str]] = {}

        def submit(count: int) -> None:
            for contact_id, kind in itertools.islice(jobs, count):
                pending[pool.submit(getters[kind], contact_id)] = (contact_id, kind)

        try:
            submit(workers * 2)
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                finished = [(future, *pending.pop(future)) for future in done]
                submit(len(finished))  # keep the pool busy while the caller handles results
                for future, contact_id, kind in finished:
                    error = future.exception()
                    if error is None:
                        yield ContactChildren(contact_id, kind, future.result() or [])
                    elif raise_on_error or not isinstance(error, GHLError):
                        raise error
                    else:
                        yield ContactChildren(contact_id, kind, [], error)
        finally:
            # The caller may stop early: drop queued jobs, let the running requests finish.
            pool.shutdown(wait=True, cancel_futures=True)

    # ------------------------------------------------------------------------------------------------------
    # Connection test
    # ------------------------------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """One cheap read (a one-contact search) that reports token and location problems plainly.

        It never spends an OAuth refresh token: an expired stored token is reported, not refreshed.
        """
        try:
            config = self.config
            location = config.location_id
            if not location:
                return False, (
                    "Connection has no location_id: set the location (sub-account) id in the connection extras; "
                    "every Contacts call needs it."
                )
            body = self._request(
                "POST",
                "/contacts/search",
                json={"locationId": location, "pageLimit": 1},
                retry_safe=True,
                location_id=location,
                allow_refresh=False,
                max_attempts=2,
            )
        except GHLForbiddenError as err:
            return False, f"The token has no access to location {location}: {err.ghl_message or err}"
        except GHLAuthError as err:
            return False, f"Token problem: {err}"
        except GHLError as err:
            return False, str(err)
        except Exception as err:  # test_connection must report, not raise
            return False, f"{type(err).__name__}: {err}"
        return True, f"Connected to {config.base_url}: location {location} has {body.get('total', '?')} contacts."

    # ------------------------------------------------------------------------------------------------------
    # Async twin (read-only: writes run on workers, triggers only read)
    # ------------------------------------------------------------------------------------------------------
    async def acall(
        self,
        operation: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        location_id: str | None = None,
    ) -> Any:
        """Async :meth:`call` over ``httpx.AsyncClient`` for read operations (GETs and searches).

        Same headers, limiter, retries and error mapping as the sync funnel. It never refreshes an OAuth token
        (a trigger must not rotate tokens): on 401 it re-reads the token store once, then fails.
        """
        await self.aget_config()
        endpoint, path, query, body, location = self._resolve(operation, path_params, params, json, location_id)
        if not endpoint.is_read:
            raise ValueError(f"{operation} writes; the async twin only reads. Use the sync method on a worker.")
        result = await self._arequest(endpoint.method, path, params=query, json=body, location_id=location)
        return extract_result(endpoint, result, endpoint.method, path)

    async def _arequest(
        self, method: str, path: str, *, params: Mapping[str, Any] | None, json: Any, location_id: str | None
    ) -> Any:
        config = await self.aget_config()
        # Token stores read Variables synchronously: keep that off the event loop.
        auth = await asyncio.to_thread(lambda: self.auth)
        limiter = limiter_for(auth.rate_key(location_id), config.max_requests, config.interval_ms)
        recovered = False
        timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
        async with httpx.AsyncClient(base_url=config.base_url, headers=self._base_headers(), timeout=timeout) as client:
            async for attempt in AsyncRetrying(**self._retry_kwargs(True, None)):
                with attempt:
                    token = await asyncio.to_thread(auth.access_token, location_id, allow_refresh=False)
                    sent_at = await limiter.acquire_async(config.daily_reserve)
                    try:
                        response = await client.request(
                            method, path, params=params, json=json, headers={"Authorization": f"Bearer {token}"}
                        )
                    except httpx.HTTPError as err:
                        limiter.release(sent_at)
                        self.request_stats.record(None)
                        raise transport_error(method, path, err) from err
                    limiter.observe(response.headers, sent_at)
                    self.request_stats.record(response.status_code)
                    if (
                        response.status_code == 401
                        and not recovered
                        and await asyncio.to_thread(auth.recover, token, location_id, allow_refresh=False)
                    ):
                        recovered = True
                        raise _TokenRecovered(method=method, path=path, status=401)
                    return self._parsed(method, path, response.status_code, response.headers, response.content, limiter)
        raise AssertionError("unreachable")  # pragma: no cover - AsyncRetrying re-raises

    async def aget_contact(self, contact_id: str) -> dict[str, Any]:
        """Async :meth:`get_contact`.

        :param contact_id: the contact id.
        """
        return await self.acall("get_contact", path_params={"contactId": contact_id})

    async def aget_tasks(self, contact_id: str) -> list[dict[str, Any]]:
        """Async :meth:`get_tasks`.

        :param contact_id: the contact id.
        """
        return await self.acall("get_tasks", path_params={"contactId": contact_id})

    async def aget_task(self, contact_id: str, task_id: str) -> dict[str, Any]:
        """Async :meth:`get_task`.

        :param contact_id: the contact id.
        :param task_id: the task id.
        """
        return await self.acall("get_task", path_params={"contactId": contact_id, "taskId": task_id})

    async def aget_notes(self, contact_id: str) -> list[dict[str, Any]]:
        """Async :meth:`get_notes`.

        :param contact_id: the contact id.
        """
        return await self.acall("get_notes", path_params={"contactId": contact_id})

    async def aget_appointments(self, contact_id: str) -> list[dict[str, Any]]:
        """Async :meth:`get_appointments`.

        :param contact_id: the contact id.
        """
        return await self.acall("get_appointments", path_params={"contactId": contact_id})

    async def aget_duplicate_contact(
        self, *, email: str | None = None, phone: str | None = None, location_id: str | None = None
    ) -> dict[str, Any] | None:
        """Async :meth:`get_duplicate_contact`.

        :param email: e-mail to match.
        :param phone: phone number to match.
        :param location_id: location; default: the hook's.
        """
        if not email and not phone:
            raise ValueError("aget_duplicate_contact needs email or phone")
        params = {"email": email, "number": phone}
        return await self.acall("get_duplicate_contact", params=params, location_id=location_id)

    async def asearch_contacts(
        self,
        *,
        query: str | None = None,
        filters: Sequence[Mapping[str, Any]] | None = None,
        sort: Sequence[Mapping[str, Any]] | None = None,
        page_limit: int = 100,
        page: int | None = None,
        search_after: Sequence[Any] | None = None,
        location_id: str | None = None,
    ) -> dict[str, Any]:
        """Async :meth:`search_contacts` (one page).

        :param query: full-text query.
        :param filters: GHL filter objects.
        :param sort: sort objects.
        :param page_limit: page size, at most 500.
        :param page: page number.
        :param search_after: cursor; replaces ``page``.
        :param location_id: location; default: the hook's.
        """
        body = self._search_body(
            query=query, filters=filters, sort=sort, page_limit=page_limit, page=page, search_after=search_after
        )
        return await self.acall("search_contacts", json=body, location_id=location_id)

    async def aiter_contacts(
        self,
        *,
        since: DateLike | None = None,
        until: DateLike | None = None,
        date_field: Literal["dateUpdated", "dateAdded"] = "dateUpdated",
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        location_id: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`iter_contacts` (window and ordering rules are the same).

        :param since: window start (inclusive).
        :param until: window end (exclusive); default now.
        :param date_field: ``dateUpdated`` or ``dateAdded``.
        :param page_limit: contacts per request, at most 500.
        :param location_id: location; default: the hook's.
        """
        conditions, sort = _contact_window(since, until, date_field, ())
        cursor: list[Any] | None = None
        while True:
            page = await self.asearch_contacts(
                filters=conditions or None,
                sort=sort,
                page_limit=page_limit,
                search_after=cursor,
                location_id=location_id,
            )
            contacts = page.get("contacts") or []
            for contact in contacts:
                yield contact
            cursor = _next_search_cursor(contacts, page_limit, cursor)
            if cursor is None:
                return

    async def aget_custom_fields(
        self, *, model: Literal["contact", "opportunity", "all"] | None = None, location_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Async :meth:`get_custom_fields`.

        :param model: ``contact``, ``opportunity`` or ``all``.
        :param location_id: location; default: the hook's.
        """
        return await self.acall("get_custom_fields", params={"model": model}, location_id=location_id)
