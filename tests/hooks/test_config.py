"""Connection parsing: every misconfiguration is one GHLConfigError, raised before any request."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.hooks.connection import DEFAULT_HOST, GHLConnectionConfig, normalize_base_url
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer


def _config(extra: dict[str, Any] | None = None, **fields: Any) -> GHLConnectionConfig:
    conn = Connection(conn_id="ghl_cfg", conn_type="ghl", extra=json.dumps(extra or {}), **fields)
    return GHLConnectionConfig.from_connection(conn)


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        (None, None, DEFAULT_HOST),
        ("", None, DEFAULT_HOST),
        ("services.leadconnectorhq.com", None, DEFAULT_HOST),
        ("https://services.leadconnectorhq.com/", None, DEFAULT_HOST),
        ("http://127.0.0.1:8080", None, "http://127.0.0.1:8080"),
        ("127.0.0.1", 9000, "https://127.0.0.1:9000"),
        ("https://proxy.example.com/ghl/", None, "https://proxy.example.com/ghl"),
    ],
)
def test_base_url_normalisation(host: str | None, port: int | None, expected: str) -> None:
    assert normalize_base_url(host, port) == expected


@pytest.mark.parametrize(
    "host",
    ["ftp://services.leadconnectorhq.com", "https://", "https://user:pw@host.example", "http://h:99999", "a b.com",
     "https://host.example/?q=1"],
)  # fmt: skip
def test_malformed_host_is_a_config_error(host: str) -> None:
    with pytest.raises(GHLConfigError, match="Malformed GHL host"):
        normalize_base_url(host)


def test_private_token_defaults() -> None:
    config = _config({"location_id": "L1"}, password="pit-abc")
    assert config.auth_type == "private_token"
    assert config.api_version == "2021-07-28"
    assert config.token_variable == "ghl_oauth_ghl_cfg"
    assert (config.max_requests, config.interval_ms) == (100, 10_000)
    assert "pit-abc" not in repr(config)


def test_an_agency_install_needs_no_location_and_names_its_app() -> None:
    config = _config(
        {"auth_type": "oauth", "user_type": "company", "company_id": "C1", "app_id": " 64f0a1b2c3d4e5f6a7b8c9d0 "},
        login="client",
        password="secret",
    )
    assert config.is_agency and config.location_id is None
    assert (config.company_id, config.app_id) == ("C1", "64f0a1b2c3d4e5f6a7b8c9d0")
    assert _config({"location_id": "L1"}, password="pit-x").app_id is None


def test_extras_from_the_ui_form_are_prefixed() -> None:
    config = _config(
        {"extra__ghl__location_id": "L9", "extra__ghl__max_requests": "25", "extra__ghl__api_version": "v3"},
        password="pit-abc",
    )
    assert (config.location_id, config.max_requests, config.api_version) == ("L9", 25, "v3")


@pytest.mark.parametrize(
    ("extra", "fields", "message"),
    [
        ({}, {}, "no token"),
        ({"auth_type": "basic"}, {"password": "x"}, "unknown auth_type"),
        ({"auth_type": "oauth"}, {"password": "secret"}, "client id"),
        ({"auth_type": "oauth"}, {"login": "client"}, "client secret"),
        ({"api_version": "2023-02-21"}, {"password": "x"}, "api_version"),
        ({"user_type": "Agency"}, {"password": "x"}, "user_type"),
        ({"max_requests": "lots"}, {"password": "x"}, "max_requests"),
        ({"max_requests": 0}, {"password": "x"}, "max_requests"),
        ({"timeout": -1}, {"password": "x"}, "timeout"),
        (
            {"auth_type": "oauth", "user_type": "Company", "location_id": "L1"},
            {"login": "c", "password": "s"},
            "company_id",
        ),
        ({}, {"password": "x", "host": "ftp://x"}, "Malformed"),
        ({"marketplace_url": "ftp://market.example"}, {"password": "x"}, "marketplace_url"),
    ],
)
def test_misconfiguration_is_one_clear_error(extra: dict[str, Any], fields: dict[str, Any], message: str) -> None:
    with pytest.raises(GHLConfigError, match=message):
        _config(extra, **fields)


def test_malformed_extra_json() -> None:
    conn = Connection(conn_id="c", conn_type="ghl", password="pit-x", extra="{not json")
    with pytest.raises(GHLConfigError, match="not a JSON object"):
        GHLConnectionConfig.from_connection(conn)


def test_hook_arguments_override_the_connection() -> None:
    conn = Connection(conn_id="c", conn_type="ghl", password="pit-x", extra='{"location_id": "L1", "timeout": 5}')
    config = GHLConnectionConfig.from_connection(conn, location_id="L2", timeout=None, max_retries=1)
    assert (config.location_id, config.timeout, config.max_retries) == ("L2", 5.0, 1)


def test_config_errors_come_before_any_request(fast_sandbox: SandboxServer, conn_factory: Callable[..., str]) -> None:
    loc = fast_sandbox.info["locations"][0]
    fast_sandbox.clear_stats()
    no_client = conn_factory(host=fast_sandbox.base_url, password="secret", auth_type="oauth", location_id=loc["id"])
    with pytest.raises(GHLConfigError, match="client id"):
        GHLHook(no_client).get_contact("abc")
    no_location = conn_factory(host=fast_sandbox.base_url, password=loc["private_token"])
    with pytest.raises(GHLConfigError, match="needs a location"):
        GHLHook(no_location).search_contacts()
    ok, message = GHLHook(no_location).test_connection()
    assert not ok and "location_id" in message
    assert fast_sandbox.stats()["requests_total"] == 0
