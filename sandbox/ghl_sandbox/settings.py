"""Start-up settings and runtime fault settings of the GHL sandbox."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ghl_sandbox.scopes import parse_scopes


class Faults(BaseModel):
    """Faults the sandbox injects; all off by default and changeable at runtime (``PUT /_sandbox/faults``).

    Probabilities are per API request. A write request hit by an error or a drop has it injected either before
    the write (nothing changes) or after it was applied (the client cannot tell), never half-way.
    """

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0.0, ge=0, description="Fixed latency added to every API response.")
    jitter_ms: float = Field(default=0.0, ge=0, description="Uniform random extra latency, 0..jitter_ms.")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="Probability of a 5xx response.")
    error_statuses: list[int] = Field(default_factory=lambda: [500, 502, 503])
    drop_rate: float = Field(default=0.0, ge=0, le=1, description="Probability of a connection dropped mid-response.")
    storm_rate: float = Field(default=0.0, ge=0, le=1, description="Probability of a 429 whatever the budget.")
    storm_seconds: float = Field(default=0.0, ge=0, description="Answer every API request with 429 for this long.")
    mutate_on_search: int = Field(default=0, ge=0, description="Contacts updated (dateUpdated=now) per search page.")


class WebhookSubscription(BaseModel):
    """Where and how the sandbox delivers its webhooks (``PUT /_sandbox/webhooks``); faults all off by default.

    Probabilities are per event (``duplicate_rate``, ``bad_signature_rate``) or per delivery taken from a queue
    (``reorder_rate``). A corrupted signature is sent once; a receiver refusing it gets the event again, signed
    right, on the next retry.
    """

    model_config = ConfigDict(extra="forbid")

    urls: list[str] = Field(default_factory=list, description="Subscribed URLs; every event goes to each.")
    legacy_signature: bool = Field(default=False, description="Also sign with RSA in X-WH-Signature.")
    timeout_s: float = Field(default=10.0, gt=0, description="A delivery not answered in time is retried.")
    backoff_base_s: float = Field(default=1.0, ge=0, description="First retry delay; doubles per attempt.")
    backoff_cap_s: float = Field(default=30.0, ge=0, description="Longest retry delay.")
    max_attempts: int = Field(default=20, ge=1, description="Attempts per delivery before it is given up.")
    max_in_flight: int = Field(default=8, ge=1, description="Deliveries in flight at once, all URLs together.")
    duplicate_rate: float = Field(default=0.0, ge=0, le=1, description="Probability an event is delivered twice.")
    reorder_rate: float = Field(default=0.0, ge=0, le=1, description="Probability a later event overtakes.")
    reorder_window: int = Field(default=3, ge=1, description="How many events later the overtaking one may be.")
    delay_ms: float = Field(default=0.0, ge=0, description="Uniform random extra delay before each delivery.")
    bad_signature_rate: float = Field(default=0.0, ge=0, le=1, description="Probability of a corrupted signature.")

    @field_validator("urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"not an http(s) URL: {url!r}")
        return urls


#: Most locations one sandbox holds (each costs a few KB until its contacts are read).
MAX_LOCATIONS = 10_000


@dataclasses.dataclass
class SandboxConfig:
    """Settings fixed when the sandbox starts (or is reset).

    :param contacts: contacts generated per location.
    :param locations: number of locations (sub-accounts), all under one company (agency), at most
        :data:`MAX_LOCATIONS`; their contacts are generated when first read.
    :param seed: seed of the deterministic data and credential generator.
    :param anchor: "now" of the generated data; dates fall before it. Default: start time, to the second.
    :param max_requests: burst budget per token and location in each interval.
    :param interval_ms: length of the sliding rate-limit window.
    :param daily_limit: requests per token and location per UTC day.
    :param token_ttl: lifetime of OAuth access tokens in seconds.
    :param code_ttl: how long an authorization code can be exchanged, in seconds.
    :param allow_duplicates: whether locations accept contacts with an email or phone already in use.
    :param pit_scopes: scopes of the locations' Private Integration Tokens (space-separated, as GHL writes
        them); None: every scope the sandbox knows. E.g. ``"contacts.readonly"`` for a least-privilege token.
    :param faults: the API faults.
    :param webhooks: where the webhooks go and their faults.
    """

    contacts: int = 200
    locations: int = 2
    seed: int = 1
    anchor: datetime | None = None
    max_requests: int = 100
    interval_ms: int = 10_000
    daily_limit: int = 200_000
    token_ttl: int = 86_399
    code_ttl: int = 600
    allow_duplicates: bool = False
    pit_scopes: str | None = None
    faults: Faults = dataclasses.field(default_factory=Faults)
    webhooks: WebhookSubscription = dataclasses.field(default_factory=WebhookSubscription)

    def __post_init__(self) -> None:
        checks = {
            "contacts": self.contacts >= 0,
            "locations": 1 <= self.locations <= MAX_LOCATIONS,
            "max_requests": self.max_requests >= 1,
            "interval_ms": self.interval_ms >= 1,
            "daily_limit": self.daily_limit >= 1,
            "token_ttl": self.token_ttl >= 1,
            "code_ttl": self.code_ttl >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                bound = {"contacts": ">= 0", "locations": f"between 1 and {MAX_LOCATIONS}"}.get(name, ">= 1")
                raise ValueError(f"{name} must be {bound}, got {getattr(self, name)!r}")
        try:
            parse_scopes(self.pit_scopes)
        except ValueError as exc:
            raise ValueError(f"pit_scopes: {exc}") from None

    def replace(self, **changes: Any) -> SandboxConfig:
        """Return a copy with ``changes``; unknown names raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown sandbox setting(s): {', '.join(unknown)}")
        if isinstance(changes.get("faults"), dict):
            changes["faults"] = Faults(**changes["faults"])
        if isinstance(changes.get("webhooks"), dict):
            changes["webhooks"] = WebhookSubscription(**changes["webhooks"])
        if isinstance(changes.get("anchor"), str):
            changes["anchor"] = datetime.fromisoformat(changes["anchor"].replace("Z", "+00:00"))
        return dataclasses.replace(self, **changes)
