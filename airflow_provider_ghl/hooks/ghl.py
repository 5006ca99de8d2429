"""The hook for the HighLevel (GHL / LeadConnector) Contacts API: a thin front over the ``hooks`` package.

:class:`GHLHook` holds the connection config, the HTTP session and the token provider, and runs calls through
the one funnel (:meth:`GHLHook.run` and its async twin :meth:`GHLHook.arun`). Everything else lives by concern:

- :mod:`~airflow_provider_ghl.hooks.endpoints`: every operation as a row of data;
- :mod:`~airflow_provider_ghl.hooks.operations`: each typed method's request, built once for sync and async;
- :mod:`~airflow_provider_ghl.hooks.transport`: retry policy, the one attempt, the ``requests``/``httpx`` senders;
- :mod:`~airflow_provider_ghl.hooks.paging` and :mod:`~airflow_provider_ghl.hooks.fanout`: iterators, fan-out;
- :mod:`~airflow_provider_ghl.hooks.auth`, :mod:`~airflow_provider_ghl.hooks.ratelimit`,
  :mod:`~airflow_provider_ghl.hooks.responses`, :mod:`~airflow_provider_ghl.hooks.connection`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import Any, TypeVar

import httpx
import requests
from airflow.sdk import BaseHook
from tenacity import AsyncRetrying, Retrying

from airflow_provider_ghl import __version__
from airflow_provider_ghl.checks import require_int
from airflow_provider_ghl.exceptions import (
    GHLAuthError,
    GHLConfigError,
    GHLError,
    GHLForbiddenError,
    GHLScopeError,
    GHLTaskStopped,
)
from airflow_provider_ghl.hooks import operations as ops
from airflow_provider_ghl.hooks.auth import (
    DEFAULT_REFRESH_SKEW,
    CompanyTokenAuth,
    OAuthTokenManager,
    PrivateTokenAuth,
    TokenProvider,
    TokenSet,
    TokenStore,
    VariableTokenStore,
)
from airflow_provider_ghl.hooks.budget import budget_limiter
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.endpoints import Endpoint
from airflow_provider_ghl.hooks.fanout import CHILD_KINDS, ContactChildren, GHLFanoutMixin
from airflow_provider_ghl.hooks.installations import InstallationRouter, LocationInstallations
from airflow_provider_ghl.hooks.installs import AgencyApp, GHLInstallsMixin
from airflow_provider_ghl.hooks.location_tokens import location_tokens
from airflow_provider_ghl.hooks.paging import ContactPage, GHLPagingMixin
from airflow_provider_ghl.hooks.ratelimit import RateLimiter
from airflow_provider_ghl.hooks.request import DateLike, Request, Resolved, async_operation, iso_utc, operation, resolve
from airflow_provider_ghl.hooks.responses import extract_result
from airflow_provider_ghl.hooks.retry import RetryPolicy
from airflow_provider_ghl.hooks.scopes import OPTIONAL_READS, operation_scope
from airflow_provider_ghl.hooks.search import SEARCH_MAX_PAGE_LIMIT
from airflow_provider_ghl.hooks.senders import HttpxSender, RequestsSender, post_form, shared_ssl_context
from airflow_provider_ghl.hooks.transport import Exchange, RequestStats, attempt, run_without_loop
from airflow_provider_ghl.hooks.watchdog import DeadlineAdapter

__all__ = [
    "CHILD_KINDS",
    "SEARCH_MAX_PAGE_LIMIT",
    "ContactChildren",
    "ContactPage",
    "DateLike",
    "GHLHook",
    "RequestStats",
    "iso_utc",
]

USER_AGENT = f"airflow-provider-ghl/{__version__}"
T = TypeVar("T")


class GHLHook(GHLPagingMixin, GHLFanoutMixin, GHLInstallsMixin, BaseHook):
    """Talk to the HighLevel (GHL) Contacts API through one rate-limited, retrying request funnel.

    Authentication is a Private Integration Token (``auth_type=private_token``, the default) or a Marketplace
    app's OAuth tokens (``auth_type=oauth``), rotated through an Airflow Variable (see
    :mod:`airflow_provider_ghl.hooks.auth`; configure a Fernet key so the Variable is encrypted). Every
    request goes through :meth:`run` (sync) or :meth:`arun` (async): the shared rate budget that follows GHL's
    ``X-RateLimit-*`` headers, tenacity retries (429 always; 5xx and dropped connections only where a repeat
    cannot duplicate a write) and mapping of GHL errors to :mod:`airflow_provider_ghl.exceptions`.

    :param ghl_conn_id: the ``ghl`` connection to use.
    :param location_id: default location (sub-account) id; overrides the connection's ``location_id``.
    :param max_workers: concurrency of this hook: HTTP pool size and threads of :meth:`fetch_contact_children`.
    :param token_store: where the connection's OAuth token set lives; default: the connection's token Variable,
        beside which the app's location-level installations are kept (see
        :mod:`~airflow_provider_ghl.hooks.installations`; with another store there are none).
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
        self.ghl_conn_id = ghl_conn_id
        self.max_workers = require_int("max_workers", max_workers, minimum=1)
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
        self._stopped = False
        self._retry = RetryPolicy(backoff=retry_backoff, max_seconds=retry_max_seconds, log=self.log)

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
        config: GHLConnectionConfig = self.__dict__["config"]
        return config

    def _base_headers(self) -> dict[str, str]:
        return {"Version": self.config.api_version, "Accept": "application/json", "User-Agent": USER_AGENT}

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session``: pooled for ``max_workers`` threads, GHL headers preset."""
        with self._init_lock:
            if "_session" not in self.__dict__:
                session = requests.Session()
                # Retries belong to tenacity in the funnel, not to urllib3.
                adapter = DeadlineAdapter(pool_connections=2, pool_maxsize=self.max_workers, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                session.headers.update(self._base_headers())
                self.__dict__["_session"] = session
            conn: requests.Session = self.__dict__["_session"]
            return conn

    def close(self) -> None:
        """Close the HTTP session (connections are otherwise closed when the hook is collected)."""
        session = self.__dict__.pop("_session", None)
        if session is not None:
            session.close()

    def stop(self) -> None:
        """Send nothing more: every later attempt raises :class:`~airflow_provider_ghl.exceptions.GHLTaskStopped`,
        and the session is closed (a task's ``on_kill``; the threads of a fan-out stop at their next request)."""
        self._stopped = True
        self.close()

    def is_stopped(self) -> bool:
        """Whether :meth:`stop` was called (a long run checks it between units of work it commits)."""
        return self._stopped

    @property
    def auth(self) -> TokenProvider:
        """The token provider of the connection's ``auth_type``."""
        with self._init_lock:
            if "_auth" not in self.__dict__:
                config = self.config
                provider: TokenProvider
                if config.is_oauth:
                    store = self._token_store or VariableTokenStore(config.token_variable)
                    # An agency's minted location tokens reach every process its rate budget reaches.
                    shared = location_tokens(config) if config.is_agency else None
                    primary = OAuthTokenManager(
                        config, store, self._post_form, skew=self.refresh_skew, shared_location_tokens=shared
                    )
                    installations = LocationInstallations(config) if self._token_store is None else None
                    provider = InstallationRouter(primary, installations, self._post_form)
                else:
                    provider = PrivateTokenAuth(config.secret)
                self.__dict__["_auth"] = provider
            auth: TokenProvider = self.__dict__["_auth"]
            return auth

    def provider_for(self, endpoint: Endpoint) -> TokenProvider:
        """Who supplies the token of ``endpoint``: the connection's provider, or for an agency-level operation
        the agency token itself (:class:`~airflow_provider_ghl.hooks.auth.CompanyTokenAuth`).

        :param endpoint: the operation's row.
        :raises GHLConfigError: an agency-level operation on a connection that is not an agency install.
        """
        if not endpoint.agency:
            return self.auth
        company = self.company_auth()
        if company is None:
            raise GHLConfigError(
                f"{endpoint.method} {endpoint.path} needs an agency install: connection {self.ghl_conn_id!r} must "
                "be auth_type=oauth with user_type=Company (the agency's token)."
            )
        return company

    def company_auth(self) -> CompanyTokenAuth | None:
        """The agency token itself as a token provider (the company's rate budget), for an agency install;
        None for any other connection."""
        auth = self.oauth_manager()
        if auth is None or not self.config.is_agency:
            return None
        with self._init_lock:
            if "_company_auth" not in self.__dict__:
                self.__dict__["_company_auth"] = CompanyTokenAuth(auth)
            company: CompanyTokenAuth = self.__dict__["_company_auth"]
            return company

    def agency_app(self, company_id: str | None = None, app_id: str | None = None) -> AgencyApp:
        """The company and app whose installs GHL is asked for: the connection's ``company_id`` (else the
        agency token set's) and ``app_id``.

        :param company_id: instead of the connection's.
        :param app_id: instead of the connection's.
        :raises GHLConfigError: not an agency install, or no app id.
        """
        company = self.company_auth()
        if company is None:
            raise GHLConfigError(
                f"Connection {self.ghl_conn_id!r} is not an agency install: listing where the app is installed "
                "needs auth_type=oauth with user_type=Company."
            )
        app = app_id or self.config.app_id
        if not app:
            raise GHLConfigError(
                f"Connection {self.ghl_conn_id!r}: set the app_id extra (the Marketplace app's id) to list the "
                "locations where the app is installed."
            )
        return AgencyApp(company_id or company.manager.company_id(), app, self.config.api_version == "v3")

    def oauth_manager(self, location_id: str | None = None) -> OAuthTokenManager | None:
        """The OAuth token manager of the connection's own installation (``location_id`` None), or the one that
        serves ``location_id``: its own installation's, else the connection's; None for a Private Integration
        Token.

        :param location_id: the location.
        """
        auth = self.auth
        if not isinstance(auth, InstallationRouter):
            return None
        return auth.primary if location_id is None else auth.manager_for(location_id)

    def location_installations(self) -> list[str]:
        """The locations that installed the app themselves, each with its own stored token set (see
        :mod:`~airflow_provider_ghl.hooks.installations`); empty unless the connection is an OAuth app."""
        auth = self.auth
        return auth.location_ids() if isinstance(auth, InstallationRouter) else []

    def forget_location_token(self, location_id: str, uninstalled_at: float | None = None) -> None:
        """The app was uninstalled from ``location_id``: drop its minted token everywhere it is shared (an
        agency install's), and its own installation's token set when it predates the uninstall.

        :param location_id: the location.
        :param uninstalled_at: POSIX time of the uninstall (None: now).
        """
        auth = self.auth
        if isinstance(auth, InstallationRouter) and auth.forget(location_id, uninstalled_at):
            self.log.warning("Deleted the token set of location %s's installation (uninstalled).", location_id)

    def install_from_code(self, code: str, redirect_uri: str) -> TokenSet:
        """The install flow's last step: exchange GHL's authorization ``code`` and store the token set of the
        installation the user approved: the connection's own (its agency, or its location), or another
        location's, kept as one of the app's location installations (see
        :mod:`~airflow_provider_ghl.hooks.install` and :mod:`~airflow_provider_ghl.hooks.installations`).

        :param code: the ``code`` GHL sent to the redirect URL.
        :param redirect_uri: the redirect URL the authorization page was given.
        :return: the stored set (use :meth:`TokenSet.describe` for anything logged or shown).
        :raises GHLInstallError: GHL refused the code, or granted an agency that is not the connection's;
            nothing is stored.
        """
        auth = self.auth
        if not isinstance(auth, InstallationRouter):
            raise GHLConfigError(
                f"Connection {self.ghl_conn_id!r} uses a Private Integration Token: an app install needs "
                "auth_type=oauth with the app's client id and secret."
            )
        tokens = auth.primary.exchange_code(code, redirect_uri)
        auth.adopt(tokens)
        return tokens

    def prepare_token(self, location_ids: Iterable[str] = ()) -> None:
        """Before async reads on a worker: make sure the OAuth token sets that serve ``location_ids`` are fresh,
        refreshing them now if needed (the async funnel never refreshes, as a trigger must not rotate tokens).
        Nothing to do for a Private Integration Token.

        :param location_ids: the locations the async reads will name (none: the connection's).
        """
        locations: list[str | None] = [*location_ids] or [self.config.location_id]
        managers = {id(m): m for loc in locations if (m := self.oauth_manager(loc)) is not None}
        for manager in managers.values():
            manager.current()

    def refresh_oauth_token(self) -> TokenSet:
        """Spend the OAuth refresh token of the connection's own installation now and persist the new set
        (single-writer deployments).

        :return: the new token set (use :meth:`TokenSet.describe` for anything that gets logged or returned).
        """
        manager = self.oauth_manager()
        if manager is None:
            raise GHLConfigError(
                f"Connection {self.ghl_conn_id!r} uses a Private Integration Token: there is nothing to refresh."
            )
        return manager.refresh()

    def _post_form(self, path: str, form: dict[str, str], bearer: str | None, version: str | None) -> dict[str, Any]:
        """POST a form to an OAuth endpoint (the token manager's transport); never repeated once sent. A post
        with a bearer is an agency's location-token mint: it spends the company's rate budget, as discovery does."""
        company = self.company_auth() if bearer is not None else None
        limiter = self._limiter(None, company) if company is not None else None
        return post_form(self.get_conn(), self.config, self._retry, path, form, bearer, version, limiter)

    # ------------------------------------------------------------------------------------------------------
    # The request funnel
    # ------------------------------------------------------------------------------------------------------
    def _limiter(self, location_id: str | None, provider: TokenProvider | None = None) -> RateLimiter:
        return budget_limiter(self.config, (provider or self.auth).rate_key(location_id))

    async def _alimiter(
        self, config: GHLConnectionConfig, location_id: str | None, provider: TokenProvider
    ) -> RateLimiter:
        """:meth:`_limiter` for the event loop."""
        if config.budget_backend == "process":
            return self._limiter(location_id, provider)
        # A shared backend's limiter checks its backend when it is made (a file lock, a Redis round trip).
        return await asyncio.to_thread(self._limiter, location_id, provider)

    def forget_daily_figure(self, location_id: str | None = None) -> None:
        """After the daily reset: let the next request learn today's budget instead of trusting yesterday's.

        :param location_id: the budget's location; default: the hook's / connection's.
        """
        self._limiter(location_id).forget_daily_figure()

    def resolve(self, request: Request[Any]) -> Resolved:
        """``request`` resolved against the endpoint table and this hook's connection (path, query, body)."""
        return resolve(request, self.config)

    def run(self, request: Request[T], *, allow_refresh: bool = True, max_attempts: int | None = None) -> T:
        """Send ``request`` through the one sync funnel and return its resource: throttle, send, observe, map
        errors, retry where a repeat cannot duplicate a write.

        :param request: the operation and its arguments (see :mod:`~airflow_provider_ghl.hooks.operations`).
        :param allow_refresh: whether a 401 may spend the OAuth refresh token.
        :param max_attempts: failed attempts before giving up; default ``max_retries + 1`` of the connection.
        """
        resolved = self.resolve(request)
        endpoint = resolved.endpoint
        exchange = Exchange.of(
            resolved,
            retry_safe=endpoint.is_retry_safe,
            allow_refresh=allow_refresh,
            max_seconds=self.retry_max_seconds,
        )
        config = self.config
        provider = self.provider_for(endpoint)
        sender = RequestsSender(self.get_conn(), config, provider, self._limiter(resolved.location_id, provider))
        retry = self._retry.tenacity_kwargs(
            retry_safe=exchange.retry_safe, attempts=max_attempts or config.max_retries + 1
        )
        for try_ in Retrying(**retry):  # re-raises the last failure
            with try_:
                if self._stopped:
                    raise GHLTaskStopped(f"Not sending {exchange.method} {exchange.path}: the task was stopped.")
                result = run_without_loop(attempt(sender, exchange, self.request_stats, is_oauth=config.is_oauth))
        return extract_result(endpoint, result, exchange.method, exchange.path)

    async def arun(self, request: Request[T]) -> T:
        """Async :meth:`run` over ``httpx.AsyncClient``, for reads (GETs and searches) in the triggerer.

        Same headers, limiter, retries and error mapping as the sync funnel. It never refreshes an OAuth token
        (a trigger must not rotate tokens): on 401 it re-reads the token store once, then fails.
        """
        config = await self.aget_config()
        resolved = self.resolve(request)
        endpoint = resolved.endpoint
        if not endpoint.is_read:
            raise ValueError(f"{request.operation} writes; the async twin only reads. Use the sync method on a worker.")
        exchange = Exchange.of(resolved, retry_safe=True, allow_refresh=False, max_seconds=self.retry_max_seconds)
        # The token provider may read a Variable while it is built: keep that off the event loop.
        auth = await asyncio.to_thread(self.provider_for, endpoint)
        timeout = httpx.Timeout(config.timeout, connect=config.connect_timeout)
        async with httpx.AsyncClient(
            base_url=config.base_url, headers=self._base_headers(), timeout=timeout, verify=shared_ssl_context()
        ) as client:
            sender = HttpxSender(client, config, auth, await self._alimiter(config, resolved.location_id, auth))
            retry = self._retry.tenacity_kwargs(retry_safe=True, attempts=config.max_retries + 1)
            async for try_ in AsyncRetrying(**retry):  # re-raises the last failure
                with try_:
                    result = await attempt(sender, exchange, self.request_stats, is_oauth=config.is_oauth)
        return extract_result(endpoint, result, exchange.method, exchange.path)

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

        :param operation: operation name, e.g. ``get_contact``.
        :param path_params: values of the path template (GHL's names, e.g. ``contactId``).
        :param params: query parameters (``None`` values are dropped).
        :param json: JSON body.
        :param location_id: location of the call; default: the hook's / connection's.
        """
        return self.run(Request(operation, path_params, params, json, location_id))

    async def acall(
        self,
        operation: str,
        *,
        path_params: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        location_id: str | None = None,
    ) -> Any:
        """Async :meth:`call` for read operations (GETs and searches); see :meth:`arun`.

        :param operation: operation name, e.g. ``get_contact``.
        :param path_params: values of the path template.
        :param params: query parameters.
        :param json: JSON body.
        :param location_id: location of the call; default: the hook's / connection's.
        """
        return await self.arun(Request(operation, path_params, params, json, location_id))

    # ------------------------------------------------------------------------------------------------------
    # Typed operations: one request builder each (hooks/operations.py), the reads also async
    # ------------------------------------------------------------------------------------------------------
    get_contact = operation(ops.get_contact)
    create_contact = operation(ops.create_contact)
    update_contact = operation(ops.update_contact)
    delete_contact = operation(ops.delete_contact)
    upsert_contact = operation(ops.upsert_contact)
    get_duplicate_contact = operation(ops.get_duplicate_contact)
    get_contacts_by_business = operation(ops.get_contacts_by_business)
    get_contacts = operation(ops.get_contacts)
    search_contacts = operation(ops.search_contacts)
    add_tags = operation(ops.add_tags)
    remove_tags = operation(ops.remove_tags)
    bulk_update_tags = operation(ops.bulk_update_tags)
    bulk_update_business = operation(ops.bulk_update_business)
    get_tasks = operation(ops.get_tasks)
    get_task = operation(ops.get_task)
    create_task = operation(ops.create_task)
    update_task = operation(ops.update_task)
    complete_task = operation(ops.complete_task)
    delete_task = operation(ops.delete_task)
    get_notes = operation(ops.get_notes)
    get_note = operation(ops.get_note)
    create_note = operation(ops.create_note)
    update_note = operation(ops.update_note)
    delete_note = operation(ops.delete_note)
    get_appointments = operation(ops.get_appointments)
    add_followers = operation(ops.add_followers)
    remove_followers = operation(ops.remove_followers)
    add_to_campaign = operation(ops.add_to_campaign)
    remove_from_campaign = operation(ops.remove_from_campaign)
    remove_from_all_campaigns = operation(ops.remove_from_all_campaigns)
    add_to_workflow = operation(ops.add_to_workflow)
    remove_from_workflow = operation(ops.remove_from_workflow)
    get_custom_fields = operation(ops.get_custom_fields)
    search_location_tasks = operation(ops.search_location_tasks)

    aget_contact = async_operation(ops.get_contact)
    aget_duplicate_contact = async_operation(ops.get_duplicate_contact)
    asearch_contacts = async_operation(ops.search_contacts)
    aget_tasks = async_operation(ops.get_tasks)
    aget_task = async_operation(ops.get_task)
    aget_notes = async_operation(ops.get_notes)
    aget_appointments = async_operation(ops.get_appointments)
    aget_custom_fields = async_operation(ops.get_custom_fields)

    # ------------------------------------------------------------------------------------------------------
    # Connection test
    # ------------------------------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Cheap reads that report token, location and scope problems plainly: a one-contact search (the read
        everything needs), then each optional read the provider uses, saying for each missing scope what an
        export goes without.

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
            page = self.run(
                ops.search_contacts(page_limit=1, location_id=location), allow_refresh=False, max_attempts=2
            )
        except GHLForbiddenError as err:
            return False, f"The token has no access to location {location}: {err.ghl_message or err}"
        except GHLAuthError as err:
            return False, f"Token problem: {err}"
        except GHLError as err:
            return False, str(err)
        except Exception as err:  # test_connection must report, not raise
            return False, f"{type(err).__name__}: {err}"
        summary = f"Connected to {config.base_url}: location {location} has {page.get('total', '?')} contacts."
        return True, " ".join([summary, *self._optional_reads(location)])

    def _optional_reads(self, location: str) -> list[str]:
        """One line per optional read: works, or which scope is missing and what goes without it."""
        probes = {
            "get_custom_fields": ops.get_custom_fields(model="contact", location_id=location),
            "search_location_tasks": ops.search_location_tasks(limit=1, location_id=location),
        }
        lines = []
        for name, probe in probes.items():
            try:
                self.run(probe, allow_refresh=False, max_attempts=2)
            except GHLScopeError as err:
                lines.append(f"Missing scope {err.scope}: without {OPTIONAL_READS[name]}.")
            except GHLError as err:
                lines.append(f"{name} failed: {err}")
            else:
                lines.append(f"{operation_scope(name)}: ok.")
        return lines
