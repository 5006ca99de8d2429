"""The location-level installations of a Marketplace app: many sub-accounts that installed the app themselves,
each with its own rotating token set, kept beside the installation of the app's connection.

A ``ghl`` OAuth connection holds the app (client id and secret) and its own installation (an agency's, or one
location's) in its token Variable ``token_variable``. Every other location that installs the app through the
install flow gets its own Variable, ``<token_variable>__location_<location id>``: one token set per installation,
rotated by the same rules (:class:`~airflow_provider_ghl.hooks.auth.OAuthTokenManager`, single-flight per
process, persisted before use, ``invalid_grant`` answered by the set another worker stored). The Variables
themselves are the registry: :meth:`LocationInstallations.location_ids` lists them by key prefix
(``Variable.keys``, Airflow 3.3), an uninstall deletes one.

:class:`InstallationRouter` is the hook's token provider for such a connection: a location with its own
installation uses its own set, every other location the connection's (an agency install mints a token for it).
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Hashable

from airflow_provider_ghl.exceptions import GHLInstallError
from airflow_provider_ghl.hooks.auth import FormPoster, OAuthTokenManager
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.tokens import TokenSet, VariableTokenStore, variable_keys

#: Between the connection's token Variable and a location id in an installation's Variable key.
LOCATION_INFIX = "__location_"
#: A location id that may be part of a Variable key (GHL's ids are 20 letters and digits).
_LOCATION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class LocationInstallations:
    """The location-level installations stored for one app connection.

    :param config: the app's connection (its ``token_variable`` is the prefix of every installation's key).
    """

    def __init__(self, config: GHLConnectionConfig) -> None:
        self.config = config
        self.prefix = f"{config.token_variable}{LOCATION_INFIX}"

    def store(self, location_id: str) -> VariableTokenStore:
        """The Variable of ``location_id``'s installation.

        :raises GHLInstallError: the id cannot be part of a Variable key (not one of GHL's).
        """
        if not _LOCATION_ID.fullmatch(location_id or ""):
            raise GHLInstallError(f"Not a GHL location id: {location_id!r:.80}; nothing was stored.")
        return VariableTokenStore(self.prefix + location_id)

    def location_ids(self) -> list[str]:
        """Every location with a stored installation, sorted (one listing of the Variables' keys; a key that
        cannot be one, e.g. made by hand, is not listed)."""
        ids = (key.removeprefix(self.prefix) for key in variable_keys(self.prefix))
        return [location for location in ids if _LOCATION_ID.fullmatch(location)]

    def manager(self, location_id: str, post_form: FormPoster, skew: float) -> OAuthTokenManager:
        """The token manager of ``location_id``'s installation: the app's credentials, that location's set.

        :param location_id: the location.
        :param post_form: the hook's token-endpoint sender.
        :param skew: refresh this many seconds before expiry.
        """
        store = self.store(location_id)
        config = dataclasses.replace(
            self.config,
            user_type="Location",
            location_id=location_id,
            company_id=None,
            refresh_token=None,  # the connection's bootstrap token is its own installation's, never this one's
            token_variable=store.key,
        )
        return OAuthTokenManager(config, store, post_form, skew=skew)


class InstallationRouter:
    """A :class:`~airflow_provider_ghl.hooks.auth.TokenProvider` choosing, per location, whose token set pays:
    the location's own installation when it has one, else the connection's (``primary``).

    The stored installations are listed once, when a location is first asked for (a hook lives for one task: an
    install during the task is seen by the next one). The connection's own installation is never among them.

    :param primary: the connection's own installation.
    :param installations: the app's location-level installations (None: there are none, e.g. the hook was given
        its own token store).
    :param post_form: the hook's token-endpoint sender.
    """

    def __init__(
        self, primary: OAuthTokenManager, installations: LocationInstallations | None, post_form: FormPoster
    ) -> None:
        self.primary = primary
        self.installations = installations
        self._post_form = post_form
        self._lock = threading.Lock()
        self._listed: frozenset[str] | None = None
        self._managers: dict[str, OAuthTokenManager] = {}

    def manager_for(self, location_id: str | None) -> OAuthTokenManager:
        """The token manager that serves ``location_id`` (None: the connection's location)."""
        location = location_id or self.primary.config.location_id
        if self.installations is None or not location:
            return self.primary
        with self._lock:
            if self._listed is None:
                self._listed = frozenset(self.installations.location_ids())
            if location not in self._listed:
                return self.primary
            if location not in self._managers:
                self._managers[location] = self.installations.manager(location, self._post_form, self.primary.skew)
            return self._managers[location]

    def access_token(self, location_id: str | None, *, allow_refresh: bool = True) -> str:
        return self.manager_for(location_id).access_token(location_id, allow_refresh=allow_refresh)

    def recover(self, used_token: str, location_id: str | None, *, allow_refresh: bool = True) -> bool:
        return self.manager_for(location_id).recover(used_token, location_id, allow_refresh=allow_refresh)

    def rate_key(self, location_id: str | None) -> Hashable:
        return self.manager_for(location_id).rate_key(location_id)

    def location_ids(self) -> list[str]:
        """The locations with an installation of their own (listed now)."""
        return self.installations.location_ids() if self.installations is not None else []

    def adopt(self, tokens: TokenSet) -> str:
        """Store an installation GHL granted through the install flow: the connection's own, or a location's.

        :param tokens: the set from the code exchange.
        :return: where it went: ``"connection"`` or ``"location"``.
        :raises GHLInstallError: an agency install that is not the connection's (it needs its own connection).
        """
        mismatch = self.primary.not_this_installation(tokens)
        if mismatch is None:
            self.primary.adopt(tokens)
            return "connection"
        if self.installations is None or tokens.user_type == "Company" or not tokens.location_id:
            another = "An agency install needs a connection of its own (user_type=Company, its company_id); "
            raise GHLInstallError(
                f"Connection {self.primary.config.conn_id!r}: {mismatch}. "
                f"{another if tokens.user_type == 'Company' else ''}nothing was stored."
            )
        manager = self.installations.manager(tokens.location_id, self._post_form, self.primary.skew)
        manager.adopt(tokens)
        with self._lock:
            self._managers[tokens.location_id] = manager
            if self._listed is not None:
                self._listed = self._listed | {tokens.location_id}
        return "location"

    def forget(self, location_id: str, uninstalled_at: float | None = None) -> bool:
        """The app was uninstalled from ``location_id``: drop its minted token, and its own installation's set
        when that set is older than the uninstall (a set obtained later is a re-install's, and is kept).

        :param location_id: the location.
        :param uninstalled_at: POSIX time of the uninstall (None: now).
        :return: whether an installation's set was deleted.
        """
        self.primary.forget_location(location_id)
        if self.installations is None:
            return False
        store = self.installations.store(location_id)
        stored = store.load()
        if stored is None or (uninstalled_at is not None and stored.refreshed_at > uninstalled_at):
            return False
        store.delete()
        with self._lock:
            manager = self._managers.pop(location_id, None)
            if manager is not None:
                manager.forget_tokens()
            if self._listed is not None:
                self._listed = self._listed - {location_id}
        return True
