"""Fixtures of the webhook tests: both inbox engines (SQLite file, real redis-server), test key pairs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from airflow_provider_ghl.webhooks.inbox import Inbox, open_inbox
from ghl_sandbox.redis_server import RedisServer
from tests.webhooks.signing import Signer


@pytest.fixture
def redis_inbox_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """``redis://<conn_id>`` of an Airflow redis connection (env) to the test server, its data flushed."""
    import redis

    redis.Redis(host="127.0.0.1", port=redis_server.port).flushall()
    conn_id = f"ghl_inbox_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(redis_server.airflow_connection()))
    return f"redis://{conn_id}"


@pytest.fixture(params=["sqlite", "redis"])
def inbox_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a fresh inbox, once per engine."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_inbox_url"))
    return f"sqlite:///{tmp_path_factory.mktemp('inbox')}/ghl_webhooks.db"


@pytest.fixture
def inbox(inbox_url: str) -> Iterator[Inbox]:
    opened = open_inbox(inbox_url)
    yield opened
    opened.close()


@pytest.fixture(scope="session")
def signer() -> Signer:
    """Fresh Ed25519 and RSA-4096 key pairs standing in for GHL's."""
    return Signer.generate()
