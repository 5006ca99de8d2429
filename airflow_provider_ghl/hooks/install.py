"""The app's install flow: send a user to GHL's authorization page, and turn the code GHL sends back into the
installation's stored token set.

1. :meth:`InstallStates.issue` records a single-use ``state`` (random, 256 bits), bound to the connection and the
   redirect URL, valid :data:`STATE_TTL` seconds; :func:`authorization_url` is GHL's page
   (``<marketplace_url>/v2/oauth/chooselocation``) with the app's client id, scopes, redirect URL and that state.
2. GHL redirects the user's browser to the redirect URL with ``code`` and ``state``.
   :meth:`InstallStates.consume` takes the state once (its record is deleted: a replay finds nothing), and
   :meth:`~airflow_provider_ghl.hooks.ghl.GHLHook.install_from_code` exchanges the code
   (``grant_type=authorization_code``) and stores the token set, after checking it is the connection's
   installation (an agency's for ``user_type=Company``, the connection's location otherwise).

A state lives in an Airflow Variable (``ghl_install_state_<digest>``, the digest of the state, never the state
itself), so every api-server worker and machine sees it and one of them alone can take it (the delete's row
count decides). Forged, replayed and expired states are refused, and nothing is stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from airflow_provider_ghl.exceptions import GHLInstallError
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig

#: GHL's authorization page (``/oauth/chooselocation`` before 2026-05-27; the Node SDK still builds that).
AUTHORIZE_PATH = "/v2/oauth/chooselocation"
#: Seconds a state is valid: long enough to log in to GHL and pick an account.
STATE_TTL = 600
STATE_VARIABLE_PREFIX = "ghl_install_state_"
#: Longest state and code accepted (GHL's codes are short; anything longer is not one).
MAX_PARAM_LENGTH = 512


@dataclasses.dataclass(frozen=True)
class PendingInstall:
    """What a state was issued for.

    :param conn_id: the ``ghl`` connection whose installation it is.
    :param redirect_uri: the redirect URL sent to GHL (the code exchange must name it again).
    :param expires_at: POSIX time after which the state is refused.
    """

    conn_id: str
    redirect_uri: str
    expires_at: float


def authorization_url(config: GHLConnectionConfig, redirect_uri: str, state: str) -> str:
    """GHL's authorization page for the app of ``config``, asking for its ``scopes``.

    :param config: the app's connection (client id, marketplace URL, scopes).
    :param redirect_uri: where GHL sends the user back (registered with the app).
    :param state: the single-use state of this attempt.
    """
    query = {
        "response_type": "code",
        "client_id": config.client_id or "",
        "redirect_uri": redirect_uri,
        "scope": config.scopes,
        "state": state,
    }
    return f"{config.marketplace_url}{AUTHORIZE_PATH}?{urlencode(query)}"


def installation_name(facts: dict[str, Any]) -> str:
    """``agency <company id>`` or ``location <location id>``: whose installation a token set is.

    :param facts: :meth:`~airflow_provider_ghl.hooks.tokens.TokenSet.describe` of the set.
    """
    if facts.get("user_type") == "Company":
        return f"agency {facts.get('company_id')}"
    return f"location {facts.get('location_id')}"


def check_redirect_uri(redirect_uri: str) -> str:
    """An absolute http(s) URL without a fragment, as GHL requires of a redirect URL.

    :raises GHLInstallError: it is not one.
    """
    parts = urlsplit(redirect_uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment or len(redirect_uri) > 2048:
        raise GHLInstallError(f"The redirect URL must be an absolute http(s) URL, got {redirect_uri!r:.100}.")
    return redirect_uri


def _key(state: str) -> str:
    return STATE_VARIABLE_PREFIX + hashlib.sha256(state.encode()).hexdigest()[:40]


class InstallStates:
    """Single-use, expiring install states, kept as Airflow Variables (the metadata database).

    :param ttl: seconds a state is valid.
    """

    def __init__(self, ttl: float = STATE_TTL) -> None:
        self.ttl = ttl

    def issue(self, conn_id: str, redirect_uri: str) -> str:
        """A new state for an install through ``conn_id`` returning to ``redirect_uri``.

        :param conn_id: the ``ghl`` connection.
        :param redirect_uri: the redirect URL sent to GHL.
        """
        from airflow.models.variable import Variable

        state = secrets.token_urlsafe(32)
        record = PendingInstall(conn_id, check_redirect_uri(redirect_uri), time.time() + self.ttl)
        Variable.set(
            _key(state),
            json.dumps(dataclasses.asdict(record)),
            description="A pending GHL app install (airflow-provider-ghl); taken once, or refused after it expires.",
        )
        return state

    def consume(self, state: str | None) -> PendingInstall:
        """Take ``state``: its install, once. A second take, an unknown or an expired state is refused.

        :param state: the ``state`` GHL sent back.
        :raises GHLInstallError: unknown (forged), already used, or expired.
        """
        from airflow.models.variable import Variable

        if not state or len(state) > MAX_PARAM_LENGTH:
            raise GHLInstallError("The install's state is missing: start the install again.")
        key = _key(state)
        raw = Variable.get(key, default_var=None)
        # The delete's row count makes the take atomic: of two racing callbacks, one deletes the record.
        if raw is None or Variable.delete(key) != 1:
            raise GHLInstallError("Unknown or already used install state: start the install again.")
        try:
            record = PendingInstall(**json.loads(raw))
        except (TypeError, ValueError):
            raise GHLInstallError("Unreadable install state: start the install again.") from None
        if record.expires_at <= time.time():
            raise GHLInstallError("The install's state has expired: start the install again.")
        return record
