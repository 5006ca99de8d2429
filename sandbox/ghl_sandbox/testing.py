"""Run the sandbox in a child process and steer it: for pytest fixtures, benchmarks and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from types import TracebackType
from typing import Any

import requests

# Start-up options that map to ``ghl-sandbox`` flags; everything else is runtime state set via admin routes.
_FLAGS = {
    "contacts", "locations", "seed", "anchor", "max_requests", "interval_ms", "daily_limit", "token_ttl",
    "latency_ms", "jitter_ms", "error_rate", "drop_rate", "storm_rate", "mutate_on_search", "pit_scopes",
}  # fmt: skip
# Start-up switches (flags without a value).
_SWITCHES = {"allow_duplicates", "webhook_legacy_signature"}


def stop_child(process: subprocess.Popen[Any] | None) -> None:
    """End a server child process: terminate, and kill it if it has not gone within 10 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


class SandboxError(RuntimeError):
    """The sandbox process failed to start or an admin call was refused."""


class SandboxServer:
    """A ``ghl-sandbox`` process on a free loopback port.

    :param contacts: contacts per location.
    :param locations: number of locations.
    :param seed: data seed.
    :param webhook_urls: URLs the sandbox delivers its webhooks to from the start (``--webhook-url``).
    :param config: other start-up settings (``max_requests``, ``interval_ms``, ``latency_ms``, ...);
        ``allow_duplicates=True`` and ``webhook_legacy_signature=True`` are accepted too.
    """

    def __init__(
        self,
        *,
        contacts: int = 200,
        locations: int = 2,
        seed: int = 1,
        webhook_urls: list[str] | tuple[str, ...] = (),
        **config: Any,
    ) -> None:
        unknown = set(config) - _FLAGS - _SWITCHES
        if unknown:
            raise ValueError(f"unknown sandbox setting(s): {', '.join(sorted(unknown))}")
        self.settings = {"contacts": contacts, "locations": locations, "seed": seed, **config}
        self.webhook_urls = list(webhook_urls)
        self.process: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.base_url = ""
        self._session = requests.Session()
        self._log: deque[str] = deque(maxlen=200)

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> SandboxServer:
        cmd = [sys.executable, "-m", "ghl_sandbox.cli", "--port", "0", "--json"]
        for name, value in self.settings.items():
            if name in _SWITCHES:
                cmd += [f"--{name.replace('_', '-')}"] if value else []
            elif value is not None:
                cmd += [f"--{name.replace('_', '-')}", str(value)]
        for url in self.webhook_urls:
            cmd += ["--webhook-url", url]
        self.process = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.process is not None and self.process.stdout is not None
            for line in self.process.stdout:
                if not ready.is_set() and line.startswith("{"):
                    self.info = json.loads(line)
                    ready.set()
                else:
                    self._log.append(line.rstrip())
            ready.set()

        threading.Thread(target=pump, name="ghl-sandbox-output", daemon=True).start()
        if not ready.wait(timeout) or not self.info:
            self.stop()
            raise SandboxError("ghl-sandbox did not start:\n" + "\n".join(self._log))
        self.base_url = self.info["base_url"]
        return self

    def stop(self) -> None:
        stop_child(self.process)
        self._session.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def output(self) -> str:
        """What the server printed after start-up (errors, warnings)."""
        return "\n".join(self._log)

    # -- admin API ------------------------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        resp = self._session.request(method, f"{self.base_url}/_sandbox/{path}", json=body, params=params, timeout=60)
        if resp.status_code >= 400:
            raise SandboxError(f"{method} /_sandbox/{path}: {resp.status_code} {resp.text}")
        return resp.json()

    def reset(self, **config: Any) -> dict[str, Any]:
        """Back to the seeded start state (data, tokens, limits, faults, stats), optionally with new settings.

        Settings given here hold until the next reset: ``reset()`` always returns to the start-up settings.
        """
        self.info = self.admin("POST", "reset", config)
        return self.info

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault settings; anything not named is off."""
        return self.admin("PUT", "faults", faults)

    def set_limits(
        self, *, max_requests: int | None = None, interval_ms: int | None = None, daily_limit: int | None = None
    ) -> dict[str, Any]:
        limits = {"max_requests": max_requests, "interval_ms": interval_ms, "daily_limit": daily_limit}
        return self.admin("PUT", "limits", {k: v for k, v in limits.items() if v is not None})

    def stats(self) -> dict[str, Any]:
        return self.admin("GET", "stats")

    def clear_stats(self) -> dict[str, Any]:
        return self.admin("DELETE", "stats")

    def expire_tokens(self, access_token: str | None = None) -> int:
        return self.admin("POST", "tokens/expire", {"access_token": access_token} if access_token else {})["expired"]

    def authorize(
        self,
        location_id: str | None = None,
        company_id: str | None = None,
        *,
        scopes: list[str] | None = None,
        redirect_uri: str | None = None,
    ) -> str:
        """An authorization code for an app install on a location (installed if it was not) or the company, with
        ``scopes`` (None: all), as sent to ``redirect_uri``."""
        body: dict[str, Any] = {"locationId": location_id} if location_id else {"companyId": company_id}
        if scopes is not None:
            body["scopes"] = scopes
        if redirect_uri is not None:
            body["redirectUri"] = redirect_uri
        return str(self.admin("POST", "oauth/authorize", body)["code"])

    def choose_on_authorization_page(self, location_id: str | None = None, company_id: str | None = None) -> None:
        """Make the authorization page pick this location or the company without showing itself (both None:
        show the page again)."""
        body = {"locationId": location_id} if location_id else {"companyId": company_id} if company_id else {}
        self.admin("PUT", "oauth/choice", body)

    # -- the app's installs ---------------------------------------------------------------------------------
    def installs(self) -> dict[str, Any]:
        """``GET /_sandbox/installs``: app_id, version_id, plan_id, installed, uninstalled, inactive."""
        return dict(self.admin("GET", "installs"))

    def install(self, location_id: str) -> dict[str, Any]:
        """Install the app on a location (sends INSTALL)."""
        return dict(self.admin("POST", "installs", {"locationId": location_id, "installed": True}))

    def uninstall(self, location_id: str) -> dict[str, Any]:
        """Uninstall the app from a location (sends UNINSTALL, drops the app's tokens of it)."""
        return dict(self.admin("POST", "installs", {"locationId": location_id, "installed": False}))

    def set_active(self, location_id: str, active: bool) -> dict[str, Any]:
        """Suspend (False) or reactivate a location: a suspended one answers refreshes "Location is not active"."""
        return dict(self.admin("POST", "installs", {"locationId": location_id, "active": active}))

    def issue_token(self, index: int = 0, scopes: list[str] | None = None) -> str:
        """A new Private Integration Token of location ``index`` with ``scopes`` (None: all), e.g.
        ``["contacts.readonly"]`` for a least-privilege token."""
        body: dict[str, Any] = {"locationId": self.info["locations"][index]["id"]}
        if scopes is not None:
            body["scopes"] = scopes
        return str(self.admin("POST", "tokens/pit", body)["private_token"])

    def contact_ids(self, location_id: str) -> list[str]:
        return self.admin("GET", "contacts/ids", locationId=location_id)["ids"]

    def touch_contacts(self, location_id: str, count: int | None = None, ids: list[str] | None = None) -> list[str]:
        body: dict[str, Any] = {"locationId": location_id}
        if ids is not None:
            body["ids"] = ids
        else:
            body["count"] = 1 if count is None else count
        return self.admin("POST", "contacts/touch", body)["ids"]

    # -- webhooks -------------------------------------------------------------------------------------------
    def set_webhooks(self, urls: list[str] | None = None, **settings: Any) -> dict[str, Any]:
        """Replace the webhook settings (``PUT /_sandbox/webhooks``): URLs, ``legacy_signature``, timings
        (``timeout_s``, ``backoff_base_s``, ``backoff_cap_s``, ``max_attempts``, ...) and faults
        (``duplicate_rate``, ``reorder_rate``, ``delay_ms``, ``bad_signature_rate``); anything not named is
        its default. Returns settings, public keys and stats.

        :param urls: where to deliver (None: nowhere).
        """
        return self.admin("PUT", "webhooks", {"urls": list(urls or []), **settings})

    def webhooks(self) -> dict[str, Any]:
        """``GET /_sandbox/webhooks``: settings, public keys and stats."""
        return self.admin("GET", "webhooks")

    def webhook_stats(self) -> dict[str, Any]:
        """The delivery counters: events, queued, delivered, attempts, failed_attempts, redelivered, ..."""
        stats: dict[str, Any] = self.webhooks()["stats"]
        return stats

    def wait_webhooks_delivered(self, timeout: float = 30) -> dict[str, Any]:
        """Wait until every queued webhook delivery is accepted or given up; the stats then.

        :param timeout: seconds to wait; ``TimeoutError`` (with the stats) if deliveries are still queued.
        """
        answer = self.admin("POST", "webhooks/wait", {"timeout": timeout})
        if not answer["idle"]:
            raise TimeoutError(f"webhooks still queued after {timeout} s: {answer['stats']}")
        stats: dict[str, Any] = answer["stats"]
        return stats

    def webhook_events(self, limit: int = 1000) -> list[dict[str, str]]:
        """The latest events made (webhookId, type, locationId, id), oldest first, delivered or not."""
        events: list[dict[str, str]] = self.admin("GET", "webhooks/events", limit=limit)["events"]
        return events

    @property
    def webhook_public_key(self) -> str:
        """The sandbox's Ed25519 webhook public key (base64 SPKI), to verify ``X-GHL-Signature``."""
        return str(self.info["webhooks"]["public_key"])

    @property
    def webhook_legacy_public_key(self) -> str:
        """The RSA public key (PEM) of ``X-WH-Signature``."""
        return str(self.info["webhooks"]["legacy_public_key"])

    def changes(self, location_id: str, changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Make GHL-like changes without the API (``POST /_sandbox/changes``), each with its webhook.

        :param location_id: the location.
        :param changes: ``{"op": "contact.create", "fields": {...}}``, ``{"op": "contact.update", "id": ...,
            "fields": {...}}``, ``contact.delete``, ``tags.add`` / ``tags.remove`` (``id``, ``tags``),
            ``note.*`` / ``task.*`` / ``appointment.*`` (``contactId``, ``id``, ``fields``), ``task.complete``;
            ``"$N"`` as an id names the id made by change N of the list.
        :returns: per change, its op, ``id`` and ``contactId``.
        """
        results: list[dict[str, Any]] = self.admin("POST", "changes", {"locationId": location_id, "changes": changes})[
            "results"
        ]
        return results

    # -- conveniences ---------------------------------------------------------------------------------------
    @property
    def location_ids(self) -> list[str]:
        return [loc["id"] for loc in self.info["locations"]]

    def token(self, index: int = 0) -> str:
        """The private integration token of location ``index``."""
        return self.info["locations"][index]["private_token"]

    def airflow_connection(
        self,
        index: int = 0,
        *,
        oauth: bool = False,
        agency: bool = False,
        private_token: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A ``ghl`` connection to location ``index`` (JSON for ``AIRFLOW_CONN_<ID>``).

        :param index: which location: the connection's default ``location_id``.
        :param oauth: use the OAuth app (client id/secret and the location's initial refresh token) instead of
            the location's private integration token.
        :param agency: use the OAuth app installed at agency level (``user_type=Company``, the company's refresh
            token, the app's ``app_id``), which reaches every location of the sandbox through
            ``POST /oauth/locationToken`` and lists them through ``GET /oauth/installedLocations``.
        :param private_token: a Private Integration Token of that location other than its default one (e.g. one
            from :meth:`issue_token` with fewer scopes).
        :param extra: more connection extras (e.g. ``token_variable``).
        """
        location = self.info["locations"][index]
        conn: dict[str, Any] = {"conn_type": "ghl", "host": self.base_url}
        if oauth or agency:
            conn |= {"login": self.info["oauth"]["client_id"], "password": self.info["oauth"]["client_secret"]}
            grant: dict[str, Any] = {"auth_type": "oauth", "refresh_token": location["refresh_token"]}
            if agency:
                grant |= {
                    "user_type": "Company",
                    "company_id": self.info["company_id"],
                    "refresh_token": self.info["oauth"]["company_refresh_token"],
                    "app_id": self.info["oauth"]["app_id"],
                }
            extra = {**grant, **extra}
        else:
            conn["password"] = private_token or location["private_token"]
        conn["extra"] = {"location_id": location["id"], **extra}
        return conn

    def headers(self, index: int = 0) -> dict[str, str]:
        """Request headers a GHL client sends, with location ``index``'s private token."""
        return {"Authorization": f"Bearer {self.token(index)}", "Version": "2021-07-28", "Accept": "application/json"}
