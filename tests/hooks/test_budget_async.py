"""The triggerer's path on a shared budget: a backend step that has to wait (the Redis server paused, the budget
file locked by someone else) waits in a thread, and the event loop goes on running its other tasks meanwhile.

The backend itself is held, for real: ``CLIENT PAUSE`` on the ``redis-server`` (scripts wait, reads do not), an
``flock`` on the host budget's file. A ticker task on the same loop asks the backend whether one of our steps is
waiting on it: if the step blocked the loop, the ticker could not run until the step was over, and would never
see it waiting. Whatever happens, the hold ends by itself after :data:`HOLD_SECONDS` (under the 5 s Redis
timeout), so a failing implementation fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis

from airflow_provider_ghl.hooks.budget_host import HostRateLimiter
from ghl_sandbox.redis_server import RedisServer
from tests.hooks.shared_budget import Shared

#: How long a hold lasts at most.
HOLD_SECONDS = 4.0
#: Ticks the ticker must run while a step waits on the held backend before it lets go.
TICKS_WHILE_HELD = 5


class Hold(Protocol):
    """Holds a budget backend so that the next step of ours waits on it."""

    def hold(self) -> None: ...

    def let_go(self) -> None: ...

    def waited_on(self) -> bool:
        """Whether one of our steps is waiting on the backend now."""
        ...


class RedisPause:
    """``CLIENT PAUSE ... WRITE`` from a client of the test's own: every script waits, ``INFO`` still answers."""

    def __init__(self, port: int) -> None:
        self.client = redis.Redis(host="127.0.0.1", port=port)

    def hold(self) -> None:
        self.client.execute_command("CLIENT", "PAUSE", int(HOLD_SECONDS * 1000), "WRITE")

    def let_go(self) -> None:
        self.client.execute_command("CLIENT", "UNPAUSE")

    def waited_on(self) -> bool:
        return int(self.client.info("clients")["blocked_clients"]) > 0


class FileLock:
    """An ``flock`` on the budget's state file through a descriptor of the test's own (another open file, so
    the limiter's lock waits for it as it would for another process); let go by a timer at the latest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._mutex = threading.Lock()
        self._timer: threading.Timer | None = None

    def hold(self) -> None:
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._timer = threading.Timer(HOLD_SECONDS, self.let_go)
        self._timer.start()

    def let_go(self) -> None:
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)  # releases the lock
                self._fd = None
            if self._timer is not None:
                self._timer.cancel()

    def waited_on(self) -> bool:
        # /proc/locks lists a request that waits for a lock as "N: -> FLOCK ADVISORY WRITE <pid> <dev>:<inode> ...".
        inode, pid = os.stat(self.path).st_ino, str(os.getpid())
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) > 6 and fields[1] == "->" and fields[5] == pid and fields[6].endswith(f":{inode}"):
                    return True
        return False


def _hold_of(shared: Shared, limiter: Any, request: pytest.FixtureRequest) -> Hold:
    if shared.backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return RedisPause(server.port)
    assert isinstance(limiter, HostRateLimiter)
    return FileLock(limiter.path)


@pytest.mark.parametrize("step", ["acquire", "observe"])
def test_a_held_backend_does_not_block_the_event_loop(
    shared: Shared, step: str, request: pytest.FixtureRequest
) -> None:
    sandbox = shared.sandbox
    hook = shared.hook()
    limiter = hook._limiter(None)  # made (and its backend checked) before the backend is held
    assert limiter.blocking_steps
    hold = _hold_of(shared, limiter, request)
    if step == "observe":
        # The answer takes a second: time to hold the backend once the request is out (its slot taken).
        sandbox.set_faults(latency_ms=1000)

    async def scenario() -> tuple[dict[str, Any], int]:
        if step == "acquire":
            hold.hold()
        call = asyncio.create_task(hook.aget_contact(shared.contact_id))
        held, ticks_while_held = step == "acquire", 0
        while not call.done():
            await asyncio.sleep(0.005)  # the ticker: it runs only while the loop is free
            if not held and sandbox.stats()["in_flight"] > 0:
                hold.hold()  # the request is at GHL: its answer's observe step will wait
                held = True
            elif held and ticks_while_held < TICKS_WHILE_HELD and hold.waited_on():
                ticks_while_held += 1
                if ticks_while_held == TICKS_WHILE_HELD:
                    hold.let_go()
        return await call, ticks_while_held

    try:
        contact, ticks_while_held = asyncio.run(scenario())
    finally:
        hold.let_go()
        sandbox.set_faults()
    assert contact["id"] == shared.contact_id  # the held step went on once the backend was let go
    assert ticks_while_held == TICKS_WHILE_HELD  # the loop ran the ticker while the step waited
    hook.close()
