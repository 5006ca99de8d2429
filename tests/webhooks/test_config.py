"""The ``[ghl_webhooks]`` section: declared in the provider info, read from Airflow's config, validated."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from airflow_provider_ghl import get_provider_info
from airflow_provider_ghl.exceptions import GHLInputError
from airflow_provider_ghl.webhooks.options import GHL_LEGACY_PUBLIC_KEY, GHL_PUBLIC_KEY, OPTIONS, SECTION
from airflow_provider_ghl.webhooks.settings import WebhookSettings
from airflow_provider_ghl.webhooks.signatures import load_public_key
from tests.webhooks.signing import Signer


def test_the_defaults_are_ghls_published_keys() -> None:
    current = load_public_key(GHL_PUBLIC_KEY)
    legacy = load_public_key(GHL_LEGACY_PUBLIC_KEY)
    assert isinstance(current, ed25519.Ed25519PublicKey)
    assert isinstance(legacy, rsa.RSAPublicKey) and legacy.key_size == 4096
    settings = WebhookSettings()
    assert (settings.accept_legacy, settings.max_age_seconds, settings.max_body_bytes) == (True, 4200, 1024 * 1024)
    assert settings.inbox == "sqlite:///{AIRFLOW_HOME}/ghl_webhooks.db"
    pem = current.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert WebhookSettings(public_key=pem.decode()).verifier().public_key == current  # PEM is accepted too


def test_the_section_is_declared_in_the_provider_info() -> None:
    section = get_provider_info()["config"][SECTION]
    assert set(section["options"]) == set(OPTIONS) == {
        "enabled", "locations", "app_id", "install_flow", "oauth_redirect_uri", "inbox", "public_key",
        "legacy_public_key", "accept_legacy", "max_age_seconds", "max_body_bytes", "body_timeout_seconds",
    }  # fmt: skip
    for name, option in section["options"].items():
        assert option["description"] and option["type"] in ("string", "boolean", "integer"), name
    from airflow.configuration import conf

    # Airflow knows the defaults from the declaration itself (no fallback given here).
    assert conf.get(SECTION, "max_age_seconds") == "4200"
    assert conf.get(SECTION, "public_key") == GHL_PUBLIC_KEY


def test_load_reads_airflow_ghl_webhooks_environment_variables(signer: Signer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__INBOX", "redis://ghl_redis")
    monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__PUBLIC_KEY", signer.public_key)
    monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__LEGACY_PUBLIC_KEY", signer.legacy_public_key)
    monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__ACCEPT_LEGACY", "false")
    monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__MAX_AGE_SECONDS", "120")
    monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__MAX_BODY_BYTES", "65536")
    settings = WebhookSettings.load()
    assert settings == WebhookSettings(
        inbox="redis://ghl_redis",
        public_key=signer.public_key,
        legacy_public_key=signer.legacy_public_key.strip(),  # read trimmed
        accept_legacy=False,
        max_age_seconds=120,
        max_body_bytes=65536,
    )
    assert settings.verifier().legacy_key is None
    assert WebhookSettings.load(max_age_seconds=5).max_age_seconds == 5


@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("max_age_seconds", "soon", "must be an integer, got 'soon'"),
        ("max_age_seconds", "0", "must be 1 to 604799"),
        # Past the inbox's 7-day memory of webhookIds a replay would be stored again.
        ("max_age_seconds", str(7 * 24 * 3600), "under the inbox's 604800 s memory of webhookIds"),
        ("max_body_bytes", "10", "must be at least 1024"),
        ("locations", "loc1, ..", "not a valid id: '..'"),
        ("accept_legacy", "maybe", "must be a boolean"),
        ("inbox", "postgres://db/x", "use sqlite:///<absolute path> or redis://<conn_id>"),
        ("public_key", "not a key", "not a PEM or base64 SPKI public key"),
        ("public_key", GHL_LEGACY_PUBLIC_KEY, "must be an Ed25519 public key"),
        ("legacy_public_key", GHL_PUBLIC_KEY, "must be an RSA public key of >= 2048 bits"),
        ("legacy_public_key", base64.b64encode(b"\x30\x03\x02\x01\x01").decode(), "not a PEM or base64 SPKI"),
    ],
)
def test_a_bad_option_is_refused_naming_it(
    option: str, value: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"AIRFLOW__GHL_WEBHOOKS__{option.upper()}", value)
    with pytest.raises(GHLInputError, match=f"^\\[ghl_webhooks\\] {option}: ") as err:
        WebhookSettings.load()
    assert problem in str(err.value)
    assert err.value.field == f"[ghl_webhooks] {option}"


def test_the_legacy_key_is_not_needed_when_legacy_is_off() -> None:
    settings = WebhookSettings(accept_legacy=False, legacy_public_key="anything")
    assert settings.verifier().legacy_key is None


def test_the_install_flow_is_off_by_default_and_its_redirect_url_is_checked() -> None:
    assert WebhookSettings().install_flow is False
    with pytest.raises(GHLInputError, match="oauth_redirect_uri"):
        WebhookSettings(oauth_redirect_uri="/ghl/oauth/callback")
    assert WebhookSettings(oauth_redirect_uri="https://a.example/ghl/oauth/callback").oauth_redirect_uri
