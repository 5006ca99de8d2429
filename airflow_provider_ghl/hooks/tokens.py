"""Where OAuth token sets live between processes: :class:`TokenSet` (one grant as GHL returned it), the
:class:`TokenStore` protocol, and :class:`VariableTokenStore` (an Airflow Variable, the default).

Every token is passed to ``mask_secret`` the moment it is read. Variables are encrypted at rest only when
Airflow has a ``[core] fernet_key``: configure one in any deployment that uses OAuth.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from airflow.sdk.log import mask_secret

from airflow_provider_ghl.exceptions import GHLAuthError, GHLConfigError, GHLError


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

    def delete(self) -> None:
        """Remove the Variable (the installation is gone); nothing happens when there is none."""
        try:
            if _in_task_context():
                from airflow.sdk import Variable

                Variable.delete(self.key)
            else:
                from airflow.models.variable import Variable as DbVariable

                DbVariable.delete(self.key)
        except Exception as err:
            raise GHLError(f"Could not delete {self.name}: {type(err).__name__}") from None

    def save(self, tokens: TokenSet) -> None:
        value = json.dumps(tokens.to_dict(), indent=2)
        description = "GHL OAuth token set, rotated by airflow-provider-ghl. Do not edit while DAGs run."
        if _in_task_context():
            from airflow.sdk import Variable

            Variable.set(self.key, value, description=description)
        else:
            from airflow.models.variable import Variable as DbVariable

            DbVariable.set(self.key, value, description=description)


def variable_keys(prefix: str) -> list[str]:
    """The keys of the Airflow Variables in the metadata database that start with ``prefix`` (a secrets
    backend is not listed), through the Execution API in a task and the database elsewhere.

    :param prefix: the keys' start, taken literally (``_`` and ``%`` are not wildcards here).
    """
    try:
        if _in_task_context():
            from airflow.sdk import Variable

            keys = list(Variable.keys(prefix=prefix))
        else:
            from airflow.models.variable import Variable as DbVariable
            from airflow.utils.session import create_session

            with create_session() as session:
                query = session.query(DbVariable.key).filter(DbVariable.key.startswith(prefix, autoescape=True))
                keys = [key for (key,) in query]
    except Exception as err:
        raise GHLError(f"Could not list the Airflow Variables starting {prefix!r}: {type(err).__name__}") from None
    # The listing may match with LIKE, where "_" stands for any character.
    return sorted(key for key in keys if key.startswith(prefix))
