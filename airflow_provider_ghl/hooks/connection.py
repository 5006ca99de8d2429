"""Reading and validating a ``ghl`` connection, so that misconfiguration fails before any request is sent."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_ghl.exceptions import GHLConfigError

if TYPE_CHECKING:
    from airflow.sdk import Connection

DEFAULT_HOST = "https://services.leadconnectorhq.com"
DEFAULT_API_VERSION = "2021-07-28"
#: The GHL web app, for links to a contact; white-label agencies serve it from their own domain.
DEFAULT_APP_URL = "https://app.gohighlevel.com"
#: Where the app's users approve an install (GHL's authorization page); white-label agencies use their own.
DEFAULT_MARKETPLACE_URL = "https://marketplace.gohighlevel.com"
#: What the install flow asks for by default: everything the provider calls (reads, writes, the two
#: location-level reads, and the agency's listing and location tokens).
DEFAULT_APP_SCOPES = (
    "contacts.readonly contacts.write locations/customFields.readonly locations/tasks.readonly "
    "oauth.readonly oauth.write"
)
API_VERSIONS = ("2021-07-28", "v3")
AUTH_PRIVATE_TOKEN = "private_token"
AUTH_OAUTH = "oauth"
USER_TYPES = ("Location", "Company")
# GHL's documented app budget; the X-RateLimit-* headers replace it after the first response.
DEFAULT_MAX_REQUESTS = 100
DEFAULT_INTERVAL_MS = 10_000
DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 6
DEFAULT_DAILY_RESERVE = 50
#: Who shares a rate budget: one process, every process of the machine, or every machine through Redis.
BUDGET_BACKENDS = ("process", "host", "redis")
# A plain install runs every task on one machine: sharing there needs nothing else, and stops the 429 storm
# of several tasks on one location (see the README).
DEFAULT_BUDGET_BACKEND = "host"
#: The host backend's directory, under AIRFLOW_HOME: never a shared, world-writable place such as /tmp, where
#: another local user could create it first.
BUDGET_DIR_NAME = "ghl-budgets"


def default_budget_dir() -> str:
    """``$AIRFLOW_HOME/ghl-budgets``, AIRFLOW_HOME as Airflow resolves it (the variable, else ``~/airflow``)."""
    return os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), BUDGET_DIR_NAME)


def normalize_base_url(host: str | None, port: int | None = None, *, field: str = "host") -> str:
    """Turn the connection host (or another URL ``field``) into ``scheme://host[:port][/prefix]``: scheme
    optional, no trailing slash."""
    raw = (host or "").strip() or DEFAULT_HOST
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        parsed_port = parts.port
    except ValueError as err:
        raise GHLConfigError(f"Malformed GHL {field} {host!r}: {err}") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username
        or any(c.isspace() for c in raw)
    ):
        raise GHLConfigError(
            f"Malformed GHL {field} {host!r}: expected something like {DEFAULT_HOST} "
            "(http or https, a host name, an optional port and path, no credentials or query)."
        )
    netloc = parts.netloc
    if port and parsed_port is None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _extra(extras: dict[str, Any], name: str) -> Any:
    # The UI stores declarative conn-fields as ``extra__ghl__<name>``; CLI/JSON connections use the plain name.
    value = extras.get(name)
    if value in (None, ""):
        value = extras.get(f"extra__ghl__{name}")
    return None if value == "" else value


def _number(extras: dict[str, Any], name: str, kind: type[int] | type[float], minimum: float) -> Any:
    value = _extra(extras, name)
    if value is None:
        return None
    try:
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise GHLConfigError(f"Connection extra {name!r} must be a {kind.__name__}, got {value!r}.") from None
    if number < minimum:
        raise GHLConfigError(f"Connection extra {name!r} must be >= {minimum}, got {value!r}.")
    return number


@dataclasses.dataclass(frozen=True)
class GHLConnectionConfig:
    """Everything the hook needs from a ``ghl`` connection, validated. Secrets stay out of ``repr``.

    :param conn_id: the Airflow connection id.
    :param base_url: API base URL without trailing slash.
    :param auth_type: ``private_token`` or ``oauth``.
    :param secret: the Private Integration Token, or the OAuth client secret.
    :param client_id: OAuth client id (``login``).
    :param location_id: default location (sub-account) id.
    :param company_id: company (agency) id.
    :param app_id: the Marketplace app's id (GHL's installed-locations listing needs it).
    :param marketplace_url: GHL's authorization page's host (the install flow sends users there).
    :param scopes: the scopes the install flow asks for, space-separated.
    :param user_type: OAuth user type, ``Location`` or ``Company``.
    :param api_version: value of the ``Version`` header.
    :param refresh_token: OAuth bootstrap refresh token, used only while the token Variable is empty.
    :param token_variable: key of the Airflow Variable holding the OAuth token set.
    :param max_requests: starting burst budget (requests per interval).
    :param interval_ms: starting burst interval.
    :param timeout: read timeout in seconds.
    :param connect_timeout: connect timeout in seconds.
    :param max_retries: retries after the first attempt.
    :param daily_reserve: daily requests left untouched; below it the hook stops.
    :param app_url: the GHL web app's base URL (for "GHL contact" links).
    :param budget_backend: who shares the rate budget: ``process``, ``host`` (default) or ``redis``.
    :param budget_dir: where the ``host`` backend keeps its budget files.
    :param budget_redis_conn_id: the Airflow ``redis`` connection of the ``redis`` backend.
    """

    conn_id: str
    base_url: str
    auth_type: str
    secret: str = dataclasses.field(repr=False)
    client_id: str | None = None
    location_id: str | None = None
    company_id: str | None = None
    app_id: str | None = None
    marketplace_url: str = DEFAULT_MARKETPLACE_URL
    scopes: str = DEFAULT_APP_SCOPES
    user_type: str = "Location"
    api_version: str = DEFAULT_API_VERSION
    refresh_token: str | None = dataclasses.field(default=None, repr=False)
    token_variable: str = ""
    max_requests: int = DEFAULT_MAX_REQUESTS
    interval_ms: int = DEFAULT_INTERVAL_MS
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    daily_reserve: int = DEFAULT_DAILY_RESERVE
    app_url: str = DEFAULT_APP_URL
    budget_backend: str = DEFAULT_BUDGET_BACKEND
    budget_dir: str = dataclasses.field(default_factory=default_budget_dir)
    budget_redis_conn_id: str | None = None

    @property
    def is_oauth(self) -> bool:
        return self.auth_type == AUTH_OAUTH

    @property
    def is_agency(self) -> bool:
        return self.is_oauth and self.user_type == "Company"

    @classmethod
    def from_connection(cls, conn: Connection, **overrides: Any) -> GHLConnectionConfig:
        """Validate ``conn``; every problem is one :class:`GHLConfigError` naming the field to fix.

        :param conn: the ``ghl`` connection.
        :param overrides: hook arguments that win over the connection (``None`` values are ignored).
        """
        conn_id = conn.conn_id or "?"
        # The SDK turns malformed extras into {} with an error log; a silently empty config is worse.
        if isinstance(conn.extra, str) and conn.extra.strip():
            try:
                if not isinstance(json.loads(conn.extra), dict):
                    raise ValueError
            except ValueError:
                raise GHLConfigError(f"Connection {conn_id!r}: extra is not a JSON object.") from None
        extras = dict(conn.extra_dejson or {})

        auth_type = str(_extra(extras, "auth_type") or AUTH_PRIVATE_TOKEN).strip().lower()
        if auth_type not in (AUTH_PRIVATE_TOKEN, AUTH_OAUTH):
            raise GHLConfigError(
                f"Connection {conn_id!r}: unknown auth_type {auth_type!r}; use 'private_token' or 'oauth'."
            )
        secret = (conn.password or "").strip()
        client_id = (conn.login or "").strip() or None
        if auth_type == AUTH_PRIVATE_TOKEN and not secret:
            raise GHLConfigError(
                f"Connection {conn_id!r}: no token. Put the Private Integration Token in the password field."
            )
        if auth_type == AUTH_OAUTH:
            if not client_id:
                raise GHLConfigError(f"Connection {conn_id!r}: auth_type=oauth needs the OAuth client id as login.")
            if not secret:
                raise GHLConfigError(f"Connection {conn_id!r}: auth_type=oauth needs the client secret as password.")

        user_type = str(_extra(extras, "user_type") or "Location").strip().capitalize()
        if user_type not in USER_TYPES:
            raise GHLConfigError(f"Connection {conn_id!r}: user_type must be Location or Company, got {user_type!r}.")
        api_version = str(_extra(extras, "api_version") or DEFAULT_API_VERSION).strip()
        if api_version not in API_VERSIONS:
            raise GHLConfigError(
                f"Connection {conn_id!r}: api_version must be one of {', '.join(API_VERSIONS)}, got {api_version!r}."
            )
        location_id = overrides.pop("location_id", None) or _extra(extras, "location_id")
        company_id = _extra(extras, "company_id")
        app_id = str(_extra(extras, "app_id") or "").strip() or None
        if auth_type == AUTH_OAUTH and user_type == "Company" and location_id and not company_id:
            raise GHLConfigError(
                f"Connection {conn_id!r}: an agency (Company) token needs company_id to mint location tokens."
            )

        budget_backend = str(_extra(extras, "budget_backend") or DEFAULT_BUDGET_BACKEND).strip().lower()
        if budget_backend not in BUDGET_BACKENDS:
            raise GHLConfigError(
                f"Connection {conn_id!r}: budget_backend must be one of {', '.join(BUDGET_BACKENDS)}, "
                f"got {budget_backend!r}."
            )
        budget_redis_conn_id = str(_extra(extras, "budget_redis_conn_id") or "").strip() or None
        if budget_backend == "redis" and not budget_redis_conn_id:
            raise GHLConfigError(
                f"Connection {conn_id!r}: budget_backend=redis needs budget_redis_conn_id, an Airflow redis connection."
            )
        budget_dir = os.path.expanduser(str(_extra(extras, "budget_dir") or default_budget_dir()).strip())
        if not os.path.isabs(budget_dir):
            raise GHLConfigError(f"Connection {conn_id!r}: budget_dir must be an absolute path, got {budget_dir!r}.")

        values: dict[str, Any] = {
            "max_requests": _number(extras, "max_requests", int, 1),
            "interval_ms": _number(extras, "interval_ms", int, 1),
            "timeout": _number(extras, "timeout", float, 0),
            "connect_timeout": _number(extras, "connect_timeout", float, 0),
            "max_retries": _number(extras, "max_retries", int, 0),
            "daily_reserve": _number(extras, "daily_reserve", int, 0),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(
            conn_id=conn_id,
            base_url=normalize_base_url(conn.host, conn.port),
            auth_type=auth_type,
            secret=secret,
            client_id=client_id,
            location_id=str(location_id) if location_id else None,
            company_id=str(company_id) if company_id else None,
            app_id=app_id,
            marketplace_url=normalize_base_url(
                _extra(extras, "marketplace_url") or DEFAULT_MARKETPLACE_URL, field="marketplace_url"
            ),
            scopes=" ".join(str(_extra(extras, "scopes") or DEFAULT_APP_SCOPES).split()),
            user_type=user_type,
            api_version=api_version,
            refresh_token=_extra(extras, "refresh_token"),
            token_variable=str(_extra(extras, "token_variable") or f"ghl_oauth_{conn_id}"),
            app_url=normalize_base_url(_extra(extras, "app_url") or DEFAULT_APP_URL, field="app_url"),
            budget_backend=budget_backend,
            budget_dir=budget_dir,
            budget_redis_conn_id=budget_redis_conn_id,
            **{k: v for k, v in values.items() if v is not None},
        )
