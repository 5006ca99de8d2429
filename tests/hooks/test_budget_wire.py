"""One rate budget shared by several processes, over the wire: the ``host`` and ``redis`` budget backends.

Worker processes (``_budget_worker.py``) and the test share a budget through a real file or a real
``redis-server`` while talking HTTP to the sandbox; the sandbox's own counters are the judge.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from airflow_provider_ghl.exceptions import (
    GHLBudgetBackendError,
    GHLConfigError,
    GHLDailyBudgetExhausted,
    GHLRateLimitError,
)
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.redis_server import RedisServer
from ghl_sandbox.testing import SandboxServer
from tests.hooks.shared_budget import Shared, result


def test_processes_share_one_window(shared: Shared, tmp_path: Path) -> None:
    shared.sandbox.reset(max_requests=8, interval_ms=1000)
    go = tmp_path / "go"
    readies = [tmp_path / f"ready-{i}" for i in range(3)]
    procs = [shared.worker("fetch", str(ready), str(go), "12", shared.contact_id) for ready in readies]
    deadline = time.monotonic() + 120
    while not all(r.exists() for r in readies) and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()
    reports = [result(proc) for proc in procs]
    stats = shared.sandbox.stats()
    # 36 reads by three processes through an 8-per-second window: not one answer was a 429.
    assert [r["requests"] for r in reports] == [12, 12, 12]
    assert [r["max_requests"] for r in reports] == [8, 8, 8]  # every one of them learnt the budget
    assert stats["responses_429"] == 0
    assert stats["requests_total"] == 36


def test_headers_resize_the_shared_window(shared: Shared) -> None:
    # A first window longer than a worker's start-up (seconds on a loaded machine): the first read must still
    # be in it when the second read learns the new window, or the check below would count one read too few.
    shared.sandbox.reset(max_requests=7, interval_ms=15_000)
    hook = shared.hook()
    hook.get_contact(shared.contact_id)
    seen = shared.run_worker("inspect")  # a process that has sent nothing knows the budget already
    assert (seen["max_requests"], seen["interval"], seen["wait"]) == (7, 15.0, 0.0)

    shared.sandbox.set_limits(max_requests=3, interval_ms=30_000)
    hook.get_contact(shared.contact_id)
    seen = shared.run_worker("inspect")
    # Our two reads and the inspector's slot fill the new, smaller and longer window: it must wait.
    assert (seen["max_requests"], seen["interval"]) == (3, 30.0)
    assert seen["wait"] > 10.0
    hook.close()


def test_a_429_pauses_every_sharer(shared: Shared) -> None:
    sandbox = shared.sandbox
    sandbox.reset(max_requests=3, interval_ms=30_000)
    with requests.Session() as other_client:  # someone outside the budget backend spends the window
        for _ in range(3):
            other_client.get(f"{sandbox.base_url}/contacts/{shared.contact_id}", headers=sandbox.headers(0))
    hook = shared.hook(retry_max_seconds=0)
    with pytest.raises(GHLRateLimitError):
        hook.get_contact(shared.contact_id)
    seen = shared.run_worker("inspect")
    assert seen["wait"] > 10.0  # the other process is held for the window too
    hook.close()


def test_outside_spenders_halve_the_share_until_room_restores_it(any_backend: Shared) -> None:
    """Every backend does ``RateLimiter._adapt_share``: a window all but full of requests sent from outside
    the backend halves its share of the window; answers with room grow it back one slot each."""
    sandbox, contact_id = any_backend.sandbox, any_backend.contact_id
    interval = 2.0
    sandbox.reset(max_requests=10, interval_ms=int(interval * 1000))
    hook = any_backend.hook()
    limiter = hook._limiter(None)
    with requests.Session() as outsider:  # same token and location, but no limiter of ours sees it send
        for _ in range(8):
            outsider.get(f"{sandbox.base_url}/contacts/{contact_id}", headers=sandbox.headers(0)).raise_for_status()
    hook.get_contact(contact_id)  # answered with Remaining 1: 8 of the 9 requests in GHL's window were not ours
    # Our log holds 9 of 10 slots, yet none is free: the share of the window is down to half (5 slots).
    assert limiter.reserve() > 0

    _let_the_window_pass(interval)
    hook.get_contact(contact_id)  # Remaining 9: room, the share grows by one slot (6)
    assert _free_slots(limiter) == 5  # 6 slots, 1 of them spent (the whole window would leave 9)

    _let_the_window_pass(interval)
    for _ in range(4):  # Remaining 9, 8, 7, 6: each answer with room gives a slot back (7, 8, 9, 10)
        hook.get_contact(contact_id)
    assert _free_slots(limiter) == 6  # the whole window again, 4 of it spent
    assert sandbox.stats()["responses_429"] == 0
    hook.close()


def _let_the_window_pass(interval: float) -> None:
    """Sleep until every stamp of now has left the window (its margin and a slow round trip's excess too)."""
    time.sleep(interval * 1.2)


def _free_slots(limiter: Any) -> int:
    """Take every slot the limiter gives now, without sending (GHL never sees them); how many there were."""
    taken = 0
    while limiter.reserve() == 0:
        taken += 1
    return taken


def test_daily_reserve_across_processes(shared: Shared) -> None:
    sandbox = shared.sandbox
    sandbox.reset(daily_limit=30)
    hook = shared.hook(daily_reserve=20)
    for _ in range(4):
        hook.get_contact(shared.contact_id)
    assert hook._limiter(None).daily_remaining == 26
    # The worker's connection keeps the default reserve (50); give it the same reserve as this hook.
    drained = _drain_with_reserve(shared, 20)
    assert drained == {"sent": 6, "remaining": 20}  # together the processes stopped at the reserve
    with pytest.raises(GHLDailyBudgetExhausted):
        hook.get_contact(shared.contact_id)
    assert sandbox.stats()["requests_total"] == 10  # the last call sent nothing
    hook.close()


def _drain_with_reserve(shared: Shared, reserve: int) -> dict[str, Any]:
    conn = json.loads(os.environ[f"AIRFLOW_CONN_{shared.conn_id.upper()}"])
    conn["extra"]["daily_reserve"] = reserve
    os.environ[f"AIRFLOW_CONN_{shared.conn_id.upper()}"] = json.dumps(conn)  # restored by monkeypatch
    return shared.run_worker("drain", shared.contact_id)


# -- the backend down -----------------------------------------------------------------------------------------
def test_an_unusable_budget_dir_is_one_clear_error(
    fast_sandbox: SandboxServer, conn_factory: Callable[..., str], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    loc = fast_sandbox.info["locations"][0]
    conn_id = conn_factory(host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"],
                           budget_backend="host", budget_dir=str(tmp_path / "a-file" / "budgets"))  # fmt: skip
    fast_sandbox.clear_stats()
    with pytest.raises(GHLBudgetBackendError, match=f"backend 'host' of connection '{conn_id}'.*budget_dir"):
        GHLHook(conn_id).get_contact(fast_sandbox.contact_ids(loc["id"])[0])
    assert fast_sandbox.stats()["requests_total"] == 0


def test_redis_down_is_one_clear_error(
    redis_server: RedisServer,
    fast_sandbox: SandboxServer,
    conn_factory: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    own = RedisServer().start()  # a server of this test alone, to stop halfway
    monkeypatch.setenv("AIRFLOW_CONN_GHL_TEST_OWN_REDIS", json.dumps(own.airflow_connection()))
    loc = fast_sandbox.info["locations"][0]
    conn_id = conn_factory(host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"],
                           budget_backend="redis", budget_redis_conn_id="ghl_test_own_redis")  # fmt: skip
    contact_id = fast_sandbox.contact_ids(loc["id"])[0]
    hook = GHLHook(conn_id)
    try:
        hook.get_contact(contact_id)
    finally:
        own.stop()
    fast_sandbox.clear_stats()
    message = f"backend 'redis' of connection '{conn_id}' failed: Redis connection 'ghl_test_own_redis'"
    with pytest.raises(GHLBudgetBackendError, match=message):
        hook.get_contact(contact_id)  # the server died under a running hook
    with pytest.raises(GHLBudgetBackendError, match=message):
        GHLHook(conn_id).get_contact(contact_id)  # and a new hook fails as plainly, before sending
    assert fast_sandbox.stats()["requests_total"] == 0
    hook.close()


# -- configuration ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"budget_backend": "memcached"}, "budget_backend"),
        ({"budget_backend": "redis"}, "budget_redis_conn_id"),
        ({"budget_dir": "relative/dir"}, "budget_dir"),
    ],
)
def test_budget_extras_are_validated(extra: dict[str, str], field: str) -> None:
    from airflow.sdk import Connection

    conn = Connection(conn_id="c", conn_type="ghl", password="pit-x", extra=json.dumps(extra))
    with pytest.raises(GHLConfigError, match=field):
        GHLConnectionConfig.from_connection(conn)


def test_the_default_backend_is_host() -> None:
    from airflow.sdk import Connection

    config = GHLConnectionConfig.from_connection(Connection(conn_id="c", conn_type="ghl", password="pit-x"))
    assert config.budget_backend == "host"
    assert Path(config.budget_dir).is_absolute()


def test_the_scripts_round_the_share_as_python_does(redis_server: RedisServer) -> None:
    """``round()`` halves to even (2.5 -> 2): the scripts' cap of the window must be the very same number."""
    from airflow_provider_ghl.hooks.budget_redis import _CONSTANTS, _PRELUDE
    from airflow_provider_ghl.hooks.ratelimit import RateLimiter

    client = redis.Redis(port=redis_server.port)
    cap = client.register_script(_PRELUDE + "return cap(tonumber(A[1]))")
    keys = ["ghl:test:{cap}", "ghl:test:{cap}:log"]
    checked = set()
    for max_requests in (1, 2, 3, 5, 7, 10, 25, 50, 100, 101):
        limiter = RateLimiter(max_requests, 1000)
        for step in "hhggghgghhhgggggggggg" * 3:  # halvings and growths as _adapt_share does them
            if step == "h":
                limiter._share = max(limiter._share / 2, 1 / max_requests)
            else:
                limiter._share = min(1.0, limiter._share + 1 / max_requests)
            client.hset(keys[0], "share", repr(limiter._share))
            assert cap(keys=keys, args=[*_CONSTANTS, max_requests]) == limiter._cap, (max_requests, limiter._share)
            checked.add(max_requests * limiter._share % 1 == 0.5)
    assert checked == {True, False}  # halves were among the cases
    client.delete(*keys)
