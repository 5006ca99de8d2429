"""The ``host`` budget backend: every process of one machine shares a budget through a locked state file.

The window is the very :class:`~airflow_provider_ghl.hooks.ratelimit.RateLimiter` of one process; only where
its state lives changes. Each step (take a slot, observe a response, pause, release) locks the budget's file
(``flock``, released by the kernel if the process dies), loads the shared state, runs the process limiter's
own step on it, and writes it back. ``time.monotonic()`` is one clock for every process of a Linux machine, so
the stamps mean the same to all of them. What stays local: the round trips a process measured (its own
network path).

The budget directory is a :class:`~airflow_provider_ghl.hooks.private_files.PrivateDirectory`: trusted only
if it is this user's and no one else may write to it, so another local user can neither plant a link that
makes the hook overwrite a file nor a state that stops or stalls every request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from airflow_provider_ghl.exceptions import GHLBudgetBackendError
from airflow_provider_ghl.hooks.private_files import PrivateDirectory
from airflow_provider_ghl.hooks.ratelimit import RateLimiter

#: The limiter state every sharer of the budget sees (the rest of a limiter is local).
SHARED_FIELDS = (
    "_max",
    "_interval",
    "_log",
    "_sends",
    "_paused_until",
    "_daily_remaining",
    "_daily_limit",
    "_daily_seen_at",
    "_calibrated",
    "_probe_until",
    # The machine's share when spenders outside this backend show up in the headers.
    "_share",
    "_share_cut_at",
)


class HostRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose window lives in ``path``, shared by every process that opens it.

    :param max_requests: starting burst budget, when the file is new.
    :param interval_ms: starting window length, when the file is new.
    :param path: the budget's state file (one per token principal and location).
    :param conn_id: the ``ghl`` connection, named in errors.
    """

    #: Every step waits for the file lock, which another process may hold: off the event loop on the async path.
    blocking_steps = True

    def __init__(self, max_requests: int, interval_ms: int, *, path: Path, conn_id: str) -> None:
        super().__init__(max_requests, interval_ms)
        self.path = path
        self.conn_id = conn_id
        self._initial = {name: getattr(self, name) for name in SHARED_FIELDS}
        self._dir = PrivateDirectory(path.parent, self._error)
        with self._shared():
            pass  # fail now, before any request, when the budget file is not usable

    def _error(self, problem: str) -> GHLBudgetBackendError:
        return GHLBudgetBackendError("host", self.conn_id, f"budget_dir {str(self.path.parent)!r} {problem}")

    @contextlib.contextmanager
    def _shared(self) -> Iterator[None]:
        """Hold the budget's file lock with the shared state loaded into this limiter; write it back after."""
        with self._dir.locked(self.path.name) as file:
            self._load(file.data)
            try:
                yield
            finally:
                # orjson: this runs twice per request, and the window's log can hold many stamps.
                file.write(orjson.dumps({name: getattr(self, name) for name in SHARED_FIELDS}))

    def _load(self, raw: bytes) -> None:
        state: Mapping[str, Any] = {}
        if raw:
            # A process killed mid-write leaves a torn file: start the window afresh rather than fail forever.
            with contextlib.suppress(ValueError):
                loaded = orjson.loads(raw)
                state = loaded if isinstance(loaded, dict) else {}
        for name in SHARED_FIELDS:
            setattr(self, name, state.get(name, self._initial[name]))

    # -- every step runs on the shared state ------------------------------------------------------------------
    def _take(self, daily_reserve: int) -> tuple[float, float | None]:
        with self._shared():
            return super()._take(daily_reserve)

    def observe(self, headers: Mapping[str, str], sent_at: float) -> int:
        with self._shared():
            return super().observe(headers, sent_at)

    def release(self, sent_at: float) -> None:
        with self._shared():
            super().release(sent_at)

    def pause(self, seconds: float) -> None:
        with self._shared():
            super().pause(seconds)

    def forget_daily_figure(self) -> None:
        with self._shared():
            super().forget_daily_figure()

    def forget(self) -> None:
        self._dir.unlink(self.path.name)
