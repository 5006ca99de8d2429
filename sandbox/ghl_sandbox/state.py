"""The sandbox's mutable world: data store, tokens, rate budgets, faults, statistics and the time anchor.

One :class:`Sandbox` lives on the app (``app.state.sandbox``); the request gate counts into it and routes read
and change it. ``POST /_sandbox/reset`` rebuilds all of it from the start-up settings.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from ghl_sandbox.auth import TokenRegistry
from ghl_sandbox.data import Store, iso, secret
from ghl_sandbox.installs import Installs
from ghl_sandbox.ratelimit import RateLimiter
from ghl_sandbox.scopes import parse_scopes, scope_text
from ghl_sandbox.settings import Faults, SandboxConfig
from ghl_sandbox.webhooks import WebhookDelivery


class Sandbox:
    """All sandbox state: data, tokens, rate budgets, faults and statistics.

    :param config: the start-up settings; ``reset`` returns to them.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.base_url = ""
        # The data's "now" is fixed once, at start and to the second: a reset then brings back the very same
        # contacts, dates included, instead of re-reading the clock.
        if config.anchor is None:
            config = config.replace(anchor=datetime.now(UTC).replace(microsecond=0))
        # What ``POST /_sandbox/reset`` returns to; its changes apply to this, never pile up across resets.
        self.start_config = config
        # Lives across resets (its HTTP client and the loop's tasks); a reset empties its queue and counters.
        self.webhooks = WebhookDelivery(config.webhooks, config.seed)
        self.reset(config)

    def reset(self, config: SandboxConfig) -> None:
        """Rebuild data, tokens, rate budgets, faults and statistics from ``config``.

        :param config: the settings to run with from now on.
        """
        self.config = config
        self.store = Store(seed=config.seed, locations=config.locations, contacts=config.contacts, anchor=config.anchor)
        self.webhooks.reset(config.webhooks.model_copy(deep=True), config.seed)
        # From here on every change of the data is a webhook (the generated start state is not).
        for loc in self.store.locations.values():
            loc.sink = self.webhooks.publish
        self.installs = Installs(self.store, user_id=secret(config.seed, "user")[:20])
        self.installs.sink = self.webhooks.publish
        self.tokens = TokenRegistry(
            self.store, self.installs, config.token_ttl, parse_scopes(config.pit_scopes), config.code_ttl
        )
        # What the authorization page answers without asking (PUT /_sandbox/oauth/choice): a test's pick.
        self.oauth_choice: dict[str, str] = {}
        self.limiter = RateLimiter(config.max_requests, config.interval_ms, config.daily_limit)
        self.set_faults(config.faults.model_copy())
        # Fault rolls (and admin picks) have their own seeded stream, apart from the data's.
        self.rng = random.Random(f"faults:{config.seed}")
        self.reset_stats()

    def reset_stats(self) -> None:
        """Zero every counter of :meth:`stats`, the requests in flight included."""
        self.by_route: Counter[str] = Counter()
        self.by_status: Counter[int] = Counter()
        self.fault_counts: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_concurrency = 0
        self.writes = 0
        self.tokens.refresh_reused = 0
        self.tokens.refreshed = 0

    def clear_stats(self) -> None:
        """Zero the counters but keep counting the requests in flight (they finish after the clear)."""
        in_flight = self.in_flight
        self.reset_stats()
        self.in_flight = in_flight

    # -- the app's installs ----------------------------------------------------------------------------------
    def uninstall(self, location_id: str) -> int:
        """Uninstall the app from a location: ``UNINSTALL`` goes out and the app's tokens of it stop working.
        Returns how many tokens were dropped.

        :param location_id: the location.
        """
        self.installs.uninstall(location_id)
        return self.tokens.revoke(location_id)

    def set_faults(self, faults: Faults) -> None:
        """Replace the fault settings; a ``storm_seconds`` storm starts now.

        :param faults: the new settings (anything not set is off).
        """
        self.faults = faults
        self.storm_until = time.monotonic() + faults.storm_seconds if faults.storm_seconds else 0.0

    def info(self) -> dict[str, Any]:
        """Where the sandbox listens, its credentials, locations, limits, seed and anchor."""
        return {
            "base_url": self.base_url,
            "api_version": "2021-07-28",
            "company_id": self.store.company_id,
            "oauth": {
                "client_id": self.tokens.client_id,
                "client_secret": self.tokens.client_secret,
                "company_refresh_token": self.tokens.company_refresh,
                "app_id": self.installs.app_id,
                "version_id": self.installs.version_id,
            },
            "locations": [
                {
                    "id": loc.id,
                    "name": loc.name,
                    "private_token": loc.private_token,
                    "private_token_scopes": scope_text(self.tokens.pits[loc.private_token].scopes),
                    "refresh_token": self.tokens.initial_refresh[loc.id],
                    "contacts": loc.contact_count,
                    "installed": self.installs.is_installed(loc.id),
                    # Ids GHL's other APIs (users, businesses, campaigns, workflows) would list; routes take them.
                    "users": loc.users,
                    "businesses": loc.businesses,
                    "campaigns": loc.campaigns,
                    "workflows": loc.workflows,
                }
                for loc in self.store.locations.values()
            ],
            "limits": self.limits(),
            "seed": self.config.seed,
            "anchor": iso(self.store.anchor_ms),
            "webhooks": {
                "public_key": self.webhooks.signer.public_key,
                "legacy_public_key": self.webhooks.signer.legacy_public_key,
                "urls": self.webhooks.settings.urls,
                "legacy_signature": self.webhooks.settings.legacy_signature,
            },
        }

    def limits(self) -> dict[str, int]:
        """The rate budget in force and the OAuth access token lifetime."""
        return {
            "max_requests": self.limiter.max_requests,
            "interval_ms": self.limiter.interval_ms,
            "daily_limit": self.limiter.daily_limit,
            "token_ttl": self.tokens.token_ttl,
        }

    def stats(self) -> dict[str, Any]:
        """Counters since start, reset or the last clear: requests, statuses, faults, concurrency, writes."""
        return {
            "requests_total": sum(self.by_route.values()),
            "requests_by_route": dict(self.by_route),
            "responses_by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "responses_429": self.by_status.get(429, 0),
            "faults": dict(self.fault_counts),
            "peak_concurrency": self.peak_concurrency,
            "in_flight": self.in_flight,
            "writes": self.writes,
            # Locations whose contacts were made (read or written since the start or reset); the others cost
            # nothing yet.
            "locations_generated": sum(loc.generated for loc in self.store.locations.values()),
            "tokens_refreshed": self.tokens.refreshed,
            "refresh_tokens_reused": self.tokens.refresh_reused,
        }
