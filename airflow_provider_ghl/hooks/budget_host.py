"""The ``host`` budget backend: every process of one machine shares a budget through a locked state file.

The window is the very :class:`~airflow_provider_ghl.hooks.ratelimit.RateLimiter` of one process; only where
its state lives changes. Each step (take a slot, observe a response, pause, release) locks the budget's file
(``flock``, released by the kernel if the process dies), loads the shared state, runs the process limiter's
own step on it, and writes it back. ``time.monotonic()`` is one clock for every process of a Linux machine, so
the stamps mean the same to all of them. What stays local: the round trips a process measured (its own
network path).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from airflow_provider_ghl.exceptions import GHLBudgetBackendError
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
        # flock belongs to an open file, not a thread: threads of this process take turns here first.
        self._file_mutex = threading.Lock()
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with self._shared():
                pass  # fail now, before any request, when the directory is not usable
        except OSError as err:
            raise self._error(err) from None

    def _error(self, err: OSError) -> GHLBudgetBackendError:
        return GHLBudgetBackendError(
            "host", self.conn_id, f"budget_dir {str(self.path.parent)!r} is not usable: {err.strerror or err}"
        )

    @contextlib.contextmanager
    def _shared(self) -> Iterator[None]:
        """Hold the budget's file lock with the shared state loaded into this limiter; write it back after."""
        with self._file_mutex:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as err:
                raise self._error(err) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                raw = _read_all(fd)
                self._load(raw)
                try:
                    yield
                finally:
                    # orjson: this runs twice per request, and the window's log can hold many stamps.
                    data = orjson.dumps({name: getattr(self, name) for name in SHARED_FIELDS})
                    # Write only a change, in place, and cut the file only when it shrank: truncating to 0
                    # first cost more than all the rest of the step (it makes the filesystem free the blocks).
                    if data != raw:
                        os.pwrite(fd, data, 0)
                        if len(data) < len(raw):
                            os.ftruncate(fd, len(data))
            except OSError as err:
                raise self._error(err) from None
            finally:
                os.close(fd)  # also releases the lock

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

    def observe(self, headers: Mapping[str, str], sent_at: float) -> None:
        with self._shared():
            super().observe(headers, sent_at)

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
        with self._file_mutex, contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
