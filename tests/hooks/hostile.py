"""A small hostile HTTP server on 127.0.0.1 for the hook's safety tests: it answers the way broken proxies,
gateways and outages do (redirects to another host, wrong-shaped 200s, slow drips, echoed headers, huge
bodies) and records every request it received."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple


class Received(NamedTuple):
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Answer(NamedTuple):
    """What to answer: status, headers, and the body as chunks sent ``interval`` seconds apart.

    :param chunks: the body pieces; an iterator may be endless (the server stops when the client leaves).
    :param length: the ``Content-Length`` to declare (None: close-delimited body).
    """

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes] | list[bytes]
    interval: float = 0.0
    length: int | None = None
    #: Seconds between header lines (0: headers at once).
    header_interval: float = 0.0


def json_answer(body: Any, status: int = 200) -> Answer:
    data = b"" if body is None else json.dumps(body).encode()
    return Answer(status, {"Content-Type": "application/json"}, [data], length=len(data))


def raw_answer(data: bytes, status: int = 200, content_type: str = "application/json") -> Answer:
    return Answer(status, {"Content-Type": content_type}, [data], length=len(data))


def redirect(status: int, location: str) -> Answer:
    return Answer(status, {"Location": location}, [b""], length=0)


def drip(data: bytes, interval: float) -> Answer:
    """``data`` one byte at a time, ``interval`` seconds apart, with its true ``Content-Length``."""
    return Answer(200, {"Content-Type": "application/json"}, [bytes([b]) for b in data], interval, len(data))


def stall_after_headers(seconds: float) -> Answer:
    """Headers that promise a body, then silence."""
    return Answer(200, {"Content-Type": "application/json"}, iter([b"", b"{}"]), seconds, 2)


def header_drip(interval: float) -> Answer:
    """A status line, then one header line every ``interval`` seconds, for ever."""
    return Answer(200, {}, [], header_interval=interval)


def endless(chunk: bytes = b" " * 65536) -> Answer:
    """A body that never ends, close-delimited (no ``Content-Length``)."""

    def forever() -> Iterator[bytes]:
        while True:
            yield chunk

    return Answer(200, {"Content-Type": "application/json"}, forever())


Script = Callable[[Received], Answer]


class HostileServer:
    """A threaded HTTP server whose answers come from ``script`` (settable per test); :attr:`received` lists
    every request, :attr:`sent_bytes` the body bytes written."""

    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or (lambda request: json_answer({}))
        self.received: list[Received] = []
        self.sent_bytes = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length) if length else b""
                )
                with owner._lock:
                    owner.received.append(request)
                answer = owner.script(request)
                if answer.header_interval:
                    self._drip_headers(answer.header_interval)
                    return
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                if answer.length is None:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(answer.length))
                self.end_headers()
                try:
                    for chunk in answer.chunks:
                        if answer.interval:
                            self.wfile.flush()
                            time.sleep(answer.interval)
                        self.wfile.write(chunk)
                        with owner._lock:
                            owner.sent_bytes += len(chunk)
                    self.wfile.flush()
                except (TimeoutError, BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _drip_headers(self, interval: float) -> None:
                self.close_connection = True
                try:
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    for line in itertools.count():
                        time.sleep(interval)
                        self.wfile.write(f"X-Pad-{line}: x\r\n".encode())
                except (TimeoutError, BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
