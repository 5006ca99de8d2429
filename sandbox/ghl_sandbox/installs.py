"""Where the sandbox's one Marketplace app is installed: per location, installed or not, active or suspended.

GHL's facts (``ghl-api-details.md`` §5.1, §6; oauth.json, oauth-v3.json):

- ``GET /oauth/installedLocations`` (v2, ``skip``/``limit``) and ``/oauth/installed-locations`` (v3,
  ``pageSize``/``pageToken``) list a company's locations with ``isInstalled`` for one ``appId``; agency tokens
  only, scope ``oauth.readonly``. Sorted by ``installedAt``, newest first (v3's ``sortApplied`` example): an
  install between two pages shifts the later pages, as offset paging does on GHL.
- Installing and uninstalling send the app's ``INSTALL`` / ``UNINSTALL`` webhooks (location level: INSTALL with
  ``appId, locationId, companyId, userId, planId, trial, isWhitelabelCompany, companyName``; UNINSTALL with
  ``appId, locationId``).
- A suspended sub-account answers a refresh with 400 "Location is not active" (GoHighLevel/highlevel-api-docs#249).

At start every location has the app (an agency install with all locations); tests uninstall, install and
suspend through ``/_sandbox/installs``. Company-level INSTALL/UNINSTALL events are not emitted.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ghl_sandbox.data import Store, iso, secret
from ghl_sandbox.vocabulary import PLACES, STREETS

#: ``(location_id, event_type, record, at_ms)``: how an install or uninstall is reported (the webhooks).
LifecycleSink = Callable[[str, str, dict[str, Any], int], None]
#: Largest page of either listing (v3 declares 1-100; v2 declares only its default of 20, taken as the same).
MAX_PAGE = 100
DEFAULT_PAGE = 20


class Installs:
    """The app's install state per location of ``store``.

    :param store: the sandbox's locations.
    :param user_id: the installing user (GHL's ``userId`` of the token and the INSTALL event).
    """

    def __init__(self, store: Store, user_id: str) -> None:
        seed = store.seed
        self.store = store
        self.user_id = user_id
        # GHL's app, version and plan ids are 24-hex object ids.
        self.app_id = secret(seed, "app")[:24]
        self.version_id = secret(seed, "app-version")[:24]
        self.plan_id = secret(seed, "app-plan")[:24]
        self.install_to_future_locations = True
        self.company_name = "Sandbox Agency"
        self.sink: LifecycleSink | None = None
        self.installed_at: dict[str, int | None] = {}
        self.inactive: set[str] = set()
        self.addresses: dict[str, str] = {}
        for n, loc_id in enumerate(store.locations):
            rng = random.Random(f"install:{seed}:{n}")
            # Installed before the data's "now", a minute apart, so the newest-first order is fixed.
            self.installed_at[loc_id] = store.anchor_ms - (n + 1) * 60_000
            city, state, postal, country, _ = rng.choice(PLACES)
            street = f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}"
            self.addresses[loc_id] = f"{street}, {city}, {state} {postal}, {country}"

    # -- state ----------------------------------------------------------------------------------------------
    def is_installed(self, location_id: str) -> bool:
        """Whether the app is installed on ``location_id`` (False for an unknown location).

        :param location_id: the location.
        """
        return self.installed_at.get(location_id) is not None

    def is_active(self, location_id: str) -> bool:
        """Whether the location is active (not suspended).

        :param location_id: the location.
        """
        return location_id not in self.inactive

    def installed_ids(self) -> list[str]:
        """The locations with the app, in the store's order."""
        return [loc for loc in self.store.locations if self.is_installed(loc)]

    def _known(self, location_id: str) -> None:
        if location_id not in self.store.locations:
            raise ValueError(f"unknown locationId {location_id}")

    def install(self, location_id: str) -> bool:
        """Install the app on ``location_id``; reports ``INSTALL``. Returns False (and reports nothing) when it
        was installed already.

        :param location_id: the location.
        """
        self._known(location_id)
        if self.is_installed(location_id):
            return False
        now = self.store.now_ms()
        self.installed_at[location_id] = now
        self._report(
            location_id,
            "INSTALL",
            {
                "appId": self.app_id,
                "companyId": self.store.company_id,
                "userId": self.user_id,
                "planId": self.plan_id,
                "trial": {"onTrial": False},
                "isWhitelabelCompany": False,
                "companyName": self.company_name,
            },
            now,
        )
        return True

    def uninstall(self, location_id: str) -> bool:
        """Uninstall the app from ``location_id``; reports ``UNINSTALL``. False when it was not installed.

        :param location_id: the location.
        """
        self._known(location_id)
        if not self.is_installed(location_id):
            return False
        self.installed_at[location_id] = None
        self._report(location_id, "UNINSTALL", {"appId": self.app_id}, self.store.now_ms())
        return True

    def set_active(self, location_id: str, active: bool) -> None:
        """Suspend (``active`` False) or reactivate a location, as SaaS billing does.

        :param location_id: the location.
        :param active: the new state.
        """
        self._known(location_id)
        (self.inactive.discard if active else self.inactive.add)(location_id)

    def _report(self, location_id: str, event_type: str, record: dict[str, Any], at_ms: int) -> None:
        if self.sink is not None:
            self.sink(location_id, event_type, record, at_ms)

    # -- the listing ----------------------------------------------------------------------------------------
    def listing(
        self,
        *,
        is_installed: bool | None = None,
        query: str | None = None,
        location_id: str | None = None,
        plan_id: str | None = None,
        version_id: str | None = None,
        on_trial: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Every location matching the filters, as ``InstalledLocationSchema`` items, newest install first
        (locations without the app last, by id).

        :param is_installed: only installed (True) or only not installed (False) locations.
        :param query: part of the location's name, any case.
        :param location_id: only this location.
        :param plan_id: only locations on this plan (the app's one plan; others match nothing).
        :param version_id: only locations on this app version (the app's one version).
        :param on_trial: installed in trial mode (nothing is) or not.
        """
        items = []
        for loc in self.store.locations.values():
            installed = self.is_installed(loc.id)
            if is_installed is not None and installed != is_installed:
                continue
            if query and query.lower() not in loc.name.lower():
                continue
            if location_id and loc.id != location_id:
                continue
            on_plan = installed and plan_id in (None, self.plan_id) and version_id in (None, self.version_id)
            if (plan_id or version_id) and not on_plan:
                continue
            if on_trial is True:
                continue
            item: dict[str, Any] = {
                "_id": loc.id,
                "name": loc.name,
                "address": self.addresses[loc.id],
                "isInstalled": installed,
            }
            if installed:
                item["versionId"] = self.version_id
                item["installedAt"] = iso(self.installed_at[loc.id] or 0)
            items.append(item)
        items.sort(key=lambda item: (-(self.installed_at[item["_id"]] or -1), item["_id"]))
        return items

    def view(self) -> dict[str, Any]:
        """``GET /_sandbox/installs``: the app's ids and each location's state."""
        return {
            "app_id": self.app_id,
            "version_id": self.version_id,
            "plan_id": self.plan_id,
            "installed": self.installed_ids(),
            "uninstalled": [loc for loc in self.store.locations if not self.is_installed(loc)],
            "inactive": sorted(self.inactive),
        }
