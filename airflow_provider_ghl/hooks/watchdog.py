"""The attempt deadline for the sync path's wait for headers.

``requests`` bounds each socket read, never the whole answer: a server that sends its status line and then
one header line every second would hold a request for as long as it likes. :class:`DeadlineAdapter` makes the
session's connections register their socket with one process-wide :class:`Watchdog` while they wait for the
headers; at the attempt's deadline the watchdog shuts the socket down, which ends the blocked read at once.
The body is bounded by the reading loop of :func:`~airflow_provider_ghl.hooks.senders.request_reply`, the
async path by ``asyncio.timeout``.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.response import HTTPResponse

#: [deadline, sequence number, socket or None once the headers are in]
_Entry = list[Any]


class Watchdog:
    """One thread that shuts down sockets whose deadline passed. Registering is a heap push under a lock; the
    thread is woken only when a new deadline is the earliest, so sequential requests rarely wake it at all."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Entry] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, sock: socket.socket) -> _Entry:
        """Shut ``sock`` down at ``deadline`` (``time.monotonic()``) unless :meth:`forget` comes first."""
        entry: _Entry = [deadline, next(self._order), sock]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ghl-deadline-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0] is entry:
                self._cond.notify()
        return entry

    def forget(self, entry: _Entry) -> None:
        """The headers are in: leave the socket alone."""
        with self._cond:
            entry[2] = None

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2] is None or self._heap[0][0] <= now):
                    sock = heapq.heappop(self._heap)[2]
                    if sock is not None:
                        with contextlib.suppress(OSError):  # already closed: nothing to cut
                            sock.shutdown(socket.SHUT_RDWR)
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


WATCHDOG = Watchdog()
_attempt = threading.local()


@contextlib.contextmanager
def headers_deadline(deadline: float) -> Iterator[None]:
    """Within this block, a connection of a :class:`DeadlineAdapter` waiting for headers (on this thread) is
    cut at ``deadline``."""
    _attempt.deadline = deadline
    try:
        yield
    finally:
        _attempt.deadline = None


def _watched(sock: socket.socket | None, getresponse: Callable[[], HTTPResponse]) -> HTTPResponse:
    """``getresponse()`` with ``sock`` watched until the headers are in, when this thread has a deadline."""
    deadline: float | None = getattr(_attempt, "deadline", None)
    if deadline is None or sock is None:
        return getresponse()
    entry = WATCHDOG.watch(deadline, sock)
    try:
        return getresponse()
    finally:
        WATCHDOG.forget(entry)


class _HTTPConnection(HTTPConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3 declares it
        return _watched(self.sock, super().getresponse)


class _HTTPSConnection(HTTPSConnection):
    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3 declares it
        return _watched(self.sock, super().getresponse)


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineAdapter(HTTPAdapter):
    """``HTTPAdapter`` whose connections are cut at the attempt's deadline while they wait for headers."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}
