"""The ``host`` budget backend: every process of one machine shares a budget through a locked state file.

The window is the very :class:`~airflow_provider_ghl.hooks.ratelimit.RateLimiter` of one process; only where
its state lives changes. Each step (take a slot, observe a response, pause, release) locks the budget's file
(``flock``, released by the kernel if the process dies), loads the shared state, runs the process limiter's
own step on it, and writes it back. ``time.monotonic()`` is one clock for every process of a Linux machine, so
the stamps mean the same to all of them. What stays local: the round trips a process measured (its own
network path).

The budget directory is trusted only if this process's user owns it and no one else may write to it: it is
opened once (no symbolic link followed) and kept open, and its files are opened relative to it, without
following links, and checked to be this user's regular files. So another local user can neither plant a link
that makes the hook overwrite a file nor a state that stops or stalls every request.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
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
        self._dir = self._open_directory()
        with self._shared():
            pass  # fail now, before any request, when the budget file is not usable

    def _error(self, problem: str) -> GHLBudgetBackendError:
        return GHLBudgetBackendError("host", self.conn_id, f"budget_dir {str(self.path.parent)!r} {problem}")

    def _open_directory(self) -> int:
        """The budget directory, created private when missing, opened and held; refused unless it is a real
        directory of this process's user that neither its group nor others may write to."""
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if directory.is_symlink():
                raise self._error("is a symbolic link: name the directory itself")
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError as err:
            raise self._error(f"is not usable: {err.strerror or err}") from None
        info = os.fstat(fd)
        problem = None
        if info.st_uid != os.geteuid():
            problem = f"is owned by uid {info.st_uid}, not by this process's user (uid {os.geteuid()})"
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problem = f"may be written by its group or others (mode {stat.filemode(info.st_mode)})"
        if problem is not None:
            os.close(fd)
            raise self._error(f"{problem}: use a directory only the Airflow user can write to (chmod 700)")
        return fd

    @contextlib.contextmanager
    def _shared(self) -> Iterator[None]:
        """Hold the budget's file lock with the shared state loaded into this limiter; write it back after."""
        with self._file_mutex:
            fd = self._open_file()
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
                raise self._error(f"is not usable: {err.strerror or err}") from None
            finally:
                os.close(fd)  # also releases the lock

    def _open_file(self) -> int:
        """The budget file, opened in the held directory without following a link; this user's regular file."""
        try:
            fd = os.open(self.path.name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600, dir_fd=self._dir)
        except OSError as err:
            raise self._error(
                f"holds {self.path.name!r}, which cannot be opened as a file: {err.strerror or err}"
            ) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
            os.close(fd)
            raise self._error(f"holds {self.path.name!r}, which is not this user's own regular file")
        return fd

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
            os.unlink(self.path.name, dir_fd=self._dir)


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
