"""A ``ghl`` connection on a shared budget backend, for the tests of the ``host`` and ``redis`` backends."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.redis_server import RedisServer
from ghl_sandbox.testing import SandboxServer

ROOT = Path(__file__).resolve().parents[2]
REDIS_CONN_ID = "ghl_test_redis"


@dataclasses.dataclass
class Shared:
    """A ``ghl`` connection on a shared backend, and what its tests need."""

    backend: str
    conn_id: str
    sandbox: SandboxServer
    contact_id: str

    def hook(self, **kwargs: Any) -> GHLHook:
        return GHLHook(self.conn_id, retry_backoff=0.05, **kwargs)

    def worker(self, mode: str, *args: str) -> subprocess.Popen[str]:
        cmd = [sys.executable, "-m", "tests.hooks._budget_worker", mode, self.conn_id, *args]
        return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run_worker(self, mode: str, *args: str) -> dict[str, Any]:
        return result(self.worker(mode, *args))


def result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def shared_connection(
    backend: str,
    request: pytest.FixtureRequest,
    fast_sandbox: SandboxServer,
    conn_factory: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Shared:
    """A ``ghl`` connection for location 0 of the sandbox on ``backend`` (a fresh window, whichever it is)."""
    extra: dict[str, Any] = {"budget_backend": backend, "budget_dir": str(tmp_path / "budgets")}
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        redis.Redis(port=server.port).flushall()  # no window left over from an earlier test
        monkeypatch.setenv(f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}", json.dumps(server.airflow_connection()))
        extra["budget_redis_conn_id"] = REDIS_CONN_ID
    loc = fast_sandbox.info["locations"][0]
    conn_id = conn_factory(host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"], **extra)
    contact_id = fast_sandbox.contact_ids(loc["id"])[0]
    return Shared(backend, conn_id, fast_sandbox, contact_id)
