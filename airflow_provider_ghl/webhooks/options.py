"""The ``[ghl_webhooks]`` Airflow config section: its options and defaults, as plain data.

No imports: ``get_provider_info`` declares the section from :func:`config_section` while Airflow is still
discovering providers. :class:`~airflow_provider_ghl.webhooks.settings.WebhookSettings` reads and validates it.
"""

from __future__ import annotations

from typing import Any

SECTION = "ghl_webhooks"
#: Where the receiver is mounted, on the api-server (the plugin) and on its own (the CLI) alike.
URL_PREFIX = "/ghl"

#: GHL's published Ed25519 key for ``X-GHL-Signature`` (base64 SPKI), from GHL's Webhook Integration Guide.
GHL_PUBLIC_KEY = "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg="

#: GHL's RSA-4096 key for the legacy ``X-WH-Signature`` (base64 SPKI: the PEM body of the key printed in
#: GHL's Webhook Integration Guide and docs/oauth/WebhookAuthentication.md, on one line).
GHL_LEGACY_PUBLIC_KEY = (
    "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC"
    "Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6"
    "dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB"
    "csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv"
    "uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF"
    "3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU"
    "J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp"
    "IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN"
    "h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC"
    "HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ"
    "PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk"
    "T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ=="
)

DEFAULT_INBOX = "sqlite:///{AIRFLOW_HOME}/ghl_webhooks.db"
#: GHL retries a delivery answered 429 about every 10 minutes for an hour, keeping (it seems) its first
#: ``timestamp``: the window covers that hour and some, or a retried event would be refused as stale and lost.
DEFAULT_MAX_AGE_SECONDS = 4200
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_BODY_TIMEOUT_SECONDS = 10

#: option -> (type, default as text, example, description)
OPTIONS: dict[str, tuple[str, str, str | None, str]] = {
    "enabled": (
        "boolean",
        "False",
        "True",
        "Mount the receiver on the api-server at /ghl (POST /ghl/webhooks is anonymous: GHL's signature is its "
        "authentication). Off by default, so installing the provider exposes no route. ghl-webhooks serve "
        "ignores it.",
    ),
    "locations": (
        "string",
        "",
        "ve9EPM428h8vShlRW1KT, Hp2hSg7dWnLg9kkRxXAj",
        "The locations whose events the receiver stores, comma-separated; with app_id, the locations that install "
        "the app are added (and removed when they uninstall it). Events of any other location are refused (403) "
        "and logged once per location, so one missing here is noticed.",
    ),
    "app_id": (
        "string",
        "",
        "6578278e879ad2646715ba9f",
        "The Marketplace app's id: its INSTALL and UNINSTALL events add and remove served locations. Install "
        "events of any other app are refused (403): GHL signs every app's deliveries with one key.",
    ),
    "install_flow": (
        "boolean",
        "False",
        "True",
        "Serve the app's install flow: GET /ghl/oauth/start?conn_id=<ghl connection> sends the user to GHL's "
        "authorization page, GET /ghl/oauth/callback stores the installation's token set. In the api-server both "
        "need a logged-in Airflow user allowed to edit that connection; ghl-webhooks serve asks no login, so "
        "turn it on there only where the port is reachable by the operators alone.",
    ),
    "oauth_redirect_uri": (
        "string",
        "",
        "https://airflow.example.com/ghl/oauth/callback",
        "The install flow's redirect URL, exactly as registered with the app in GHL's Marketplace. Default: "
        "/ghl/oauth/callback on the host and scheme the request to /ghl/oauth/start came to (set it behind a "
        "proxy that terminates TLS).",
    ),
    "inbox": (
        "string",
        DEFAULT_INBOX,
        "redis://ghl_redis",
        "Where the receiver stores verified events and the DAG drains them: sqlite:///<absolute path> (one "
        "machine; {AIRFLOW_HOME} is replaced) or redis://<conn_id> (an Airflow redis connection, for several "
        "machines).",
    ),
    "public_key": (
        "string",
        GHL_PUBLIC_KEY,
        None,
        "Ed25519 public key that verifies X-GHL-Signature, as base64 SPKI or PEM. Default: the key GHL publishes.",
    ),
    "legacy_public_key": (
        "string",
        GHL_LEGACY_PUBLIC_KEY,
        None,
        "RSA public key that verifies the legacy X-WH-Signature (PKCS#1 v1.5, SHA-256), as base64 SPKI or PEM. "
        "Default: GHL's.",
    ),
    "accept_legacy": (
        "boolean",
        "True",
        "False",
        "Accept a delivery signed only with X-WH-Signature. GHL drops that header in 2026; turn it off then.",
    ),
    "max_age_seconds": (
        "integer",
        str(DEFAULT_MAX_AGE_SECONDS),
        "600",
        "Refuse a delivery whose timestamp is older than this (or more than a minute ahead): replay protection. "
        "The default covers GHL's retries of a delivery answered 429 (about an hour); it must stay under the "
        "inbox's 7-day memory of webhookIds, which stops replays inside the window.",
    ),
    "max_body_bytes": (
        "integer",
        str(DEFAULT_MAX_BODY_BYTES),
        "262144",
        "Refuse (413) a body larger than this many bytes, before reading the rest of it.",
    ),
    "body_timeout_seconds": (
        "integer",
        str(DEFAULT_BODY_TIMEOUT_SECONDS),
        "30",
        "Refuse (408) a delivery whose whole body has not arrived within this many seconds of its headers, so "
        "slow senders cannot hold the receiver's connections (1 to 300).",
    ),
}


def config_section() -> dict[str, Any]:
    """The section as the provider info's ``config`` key declares it."""
    return {
        SECTION: {
            "description": "The GHL webhook receiver (plugin at /ghl/webhooks or `ghl-webhooks serve`) and its inbox.",
            "options": {
                name: {
                    "description": description,
                    "version_added": None,
                    "type": type_,
                    "example": example,
                    "default": default,
                }
                for name, (type_, default, example, description) in OPTIONS.items()
            },
        }
    }
