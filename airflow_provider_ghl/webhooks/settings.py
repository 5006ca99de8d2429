"""The receiver's settings: the ``[ghl_webhooks]`` Airflow config section, read once and validated.

Every option can come from ``airflow.cfg`` or ``AIRFLOW__GHL_WEBHOOKS__<OPTION>``; the section is declared in
the provider info (:mod:`~airflow_provider_ghl.webhooks.options`), so ``airflow config list`` shows it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from airflow_provider_ghl.checks import require_id
from airflow_provider_ghl.exceptions import GHLInputError, GHLInstallError
from airflow_provider_ghl.hooks.install import check_redirect_uri
from airflow_provider_ghl.webhooks.inbox import RETENTION_SECONDS
from airflow_provider_ghl.webhooks.options import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    DEFAULT_INBOX,
    DEFAULT_MAX_AGE_SECONDS,
    DEFAULT_MAX_BODY_BYTES,
    GHL_LEGACY_PUBLIC_KEY,
    GHL_PUBLIC_KEY,
    OPTIONS,
    SECTION,
)
from airflow_provider_ghl.webhooks.signatures import MIN_RSA_BITS, SignatureVerifier, load_public_key

_TRUE, _FALSE = ("true", "t", "1", "yes", "y", "on"), ("false", "f", "0", "no", "n", "off")


def _option(name: str) -> str:
    return f"[{SECTION}] {name}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class WebhookSettings:
    """The receiver's settings; an unusable one raises :class:`GHLInputError` naming the option.

    :param enabled: whether the api-server mounts the receiver (the plugin reads it itself, when it is imported;
        ``ghl-webhooks serve`` ignores it).
    :param locations: the locations served by configuration (the app's installs add more, in the inbox).
    :param app_id: the Marketplace app whose INSTALL and UNINSTALL events are accepted ("": none).
    :param install_flow: whether ``GET /oauth/start`` and ``GET /oauth/callback`` are served.
    :param oauth_redirect_uri: the install flow's redirect URL ("": derived from the request).
    :param inbox: inbox URL (``sqlite:///<absolute path>`` or ``redis://<conn_id>[/<prefix>]``).
    :param public_key: Ed25519 key of ``X-GHL-Signature`` (base64 SPKI or PEM).
    :param legacy_public_key: RSA key of ``X-WH-Signature`` (base64 SPKI or PEM).
    :param accept_legacy: whether a delivery signed only with ``X-WH-Signature`` is accepted.
    :param max_age_seconds: the oldest ``timestamp`` accepted, in seconds before now.
    :param max_body_bytes: the largest body accepted.
    :param body_timeout_seconds: how long the whole body may take to arrive after the headers.
    """

    enabled: bool = False
    locations: tuple[str, ...] = ()
    app_id: str = ""
    install_flow: bool = False
    oauth_redirect_uri: str = ""
    inbox: str = DEFAULT_INBOX
    public_key: str = GHL_PUBLIC_KEY
    legacy_public_key: str = GHL_LEGACY_PUBLIC_KEY
    accept_legacy: bool = True
    max_age_seconds: int = DEFAULT_MAX_AGE_SECONDS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout_seconds: int = DEFAULT_BODY_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        for location in self.locations:
            try:
                require_id(_option("locations"), location)
            except GHLInputError as err:
                raise GHLInputError(_option("locations"), err.problem) from None
        if self.oauth_redirect_uri:
            try:
                check_redirect_uri(self.oauth_redirect_uri)
            except GHLInstallError as err:
                raise GHLInputError(_option("oauth_redirect_uri"), str(err)) from None
        if not self.inbox.startswith(("sqlite:///", "redis://")):
            raise GHLInputError(
                _option("inbox"), f"use sqlite:///<absolute path> or redis://<conn_id>, got {self.inbox!r}"
            )
        if not 1 <= self.max_age_seconds < RETENTION_SECONDS:
            # A delivery older than the inbox remembers webhookIds for could be replayed once that memory expired.
            raise GHLInputError(
                _option("max_age_seconds"),
                f"must be 1 to {RETENTION_SECONDS - 1} (under the inbox's {RETENTION_SECONDS} s memory of "
                f"webhookIds), got {self.max_age_seconds}",
            )
        if self.max_body_bytes < 1024:
            raise GHLInputError(_option("max_body_bytes"), f"must be at least 1024, got {self.max_body_bytes}")
        if not 1 <= self.body_timeout_seconds <= 300:
            raise GHLInputError(
                _option("body_timeout_seconds"), f"must be 1 to 300 seconds, got {self.body_timeout_seconds}"
            )
        self.verifier()  # both keys parse and are of the right kind

    def verifier(self) -> SignatureVerifier:
        """The signature checker of these keys."""
        key = self._key("public_key", self.public_key)
        if not isinstance(key, ed25519.Ed25519PublicKey):
            raise GHLInputError(_option("public_key"), "must be an Ed25519 public key")
        if not self.accept_legacy:
            return SignatureVerifier(key, None)
        legacy = self._key("legacy_public_key", self.legacy_public_key)
        if not isinstance(legacy, rsa.RSAPublicKey) or legacy.key_size < MIN_RSA_BITS:
            raise GHLInputError(_option("legacy_public_key"), f"must be an RSA public key of >= {MIN_RSA_BITS} bits")
        return SignatureVerifier(key, legacy)

    @staticmethod
    def _key(name: str, text: str) -> ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
        try:
            return load_public_key(text)
        except ValueError as err:
            raise GHLInputError(_option(name), str(err)) from None

    @classmethod
    def load(cls, **overrides: Any) -> WebhookSettings:
        """The settings from Airflow's config (``airflow.cfg``, ``AIRFLOW__GHL_WEBHOOKS__*``); ``overrides`` win."""
        from airflow.configuration import conf

        values: dict[str, Any] = {}
        for name, (type_, default, _, _) in OPTIONS.items():
            if name in overrides:
                values[name] = overrides[name]
                continue
            raw = str(conf.get(SECTION, name, fallback=default)).strip()
            values[name] = _parse(name, type_, raw)
        values["locations"] = _id_list(values["locations"])
        return cls(**values)


def _id_list(value: Any) -> tuple[str, ...]:
    """Comma- or space-separated ids (or a sequence of them), without repeats, in order."""
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(v).strip() for v in value]
    return tuple(dict.fromkeys(i for i in items if i))


def configured_locations() -> tuple[str, ...]:
    """The ``[ghl_webhooks] locations`` setting alone (the trigger reads it without the receiver's keys); ids that
    do not check out are left out, the receiver's own settings naming them."""
    from airflow.configuration import conf

    ids = _id_list(str(conf.get(SECTION, "locations", fallback="")))
    valid = []
    for location in ids:
        try:
            valid.append(require_id("locations", location))
        except GHLInputError:
            continue
    return tuple(valid)


def _parse(name: str, type_: str, raw: str) -> Any:
    if type_ == "boolean":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise GHLInputError(_option(name), f"must be a boolean (True or False), got {raw!r}")
    if type_ == "integer":
        try:
            return int(raw)
        except ValueError:
            raise GHLInputError(_option(name), f"must be an integer, got {raw!r}") from None
    return raw
