"""A throwaway ``redis-server`` on a free loopback port, for the tests and benchmarks of the ``redis`` budget.

Debian's ``redis-server`` package provides the binary. Nothing is persisted (``--save '' --appendonly no``) and
the server is a child process, not a daemon: it ends with :meth:`RedisServer.stop`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from types import TracebackType
from typing import Any

from ghl_sandbox.testing import stop_child

#: The package that provides the server, named when it is missing.
REDIS_PACKAGE = "redis-server"


class RedisServerMissing(RuntimeError):
    """No ``redis-server`` binary on PATH."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1.

    :param port: the port; default: a free one.
    :param persist: keep an append-only file fsynced at every write (``appendfsync always``), as a deployment
        that must not lose a write would; default: nothing persisted.
    """

    def __init__(self, port: int | None = None, *, persist: bool = False) -> None:
        self.port = port or _free_port()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = ""

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self, timeout: float = 20) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerMissing(f"redis-server not found: install Debian's {REDIS_PACKAGE!r} package")
        self._dir = tempfile.mkdtemp(prefix="ghl-redis-")
        cmd = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--daemonize", "no", "--dir", self._dir]  # fmt: skip
        if self.persist:
            cmd += ["--appendonly", "yes", "--appendfsync", "always"]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start (code {self.process.returncode})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        stop_child(self.process)
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def airflow_connection(self) -> dict[str, Any]:
        """This server as an Airflow ``redis`` connection (JSON for ``AIRFLOW_CONN_<ID>``)."""
        return {"conn_type": "redis", "host": "127.0.0.1", "port": self.port, "extra": {"db": 0}}
