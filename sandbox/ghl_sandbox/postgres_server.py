"""A throwaway PostgreSQL server on a free loopback port, for the tests that need a real SQL database.

Debian's ``postgresql`` package provides the binaries, under ``/usr/lib/postgresql/<version>/bin`` (not on
PATH); binaries on PATH win. The cluster lives in a fresh private temporary directory, listens on 127.0.0.1 only
(its Unix socket in that directory, not ``/var/run/postgresql``), requires a password (``scram-sha-256``), and
runs without fsync: it is lost with :meth:`PostgresServer.stop`. PostgreSQL refuses to run as root, so as root
the server runs as the package's ``postgres`` user, owner of the directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO
from urllib.parse import quote

from ghl_sandbox.redis_server import _free_port
from ghl_sandbox.testing import stop_child

#: The package that provides the server, named when it is missing.
POSTGRES_PACKAGE = "postgresql"
#: The role and database the tests use; the role is the cluster's superuser.
USER = "ghl_test"
#: The unprivileged account PostgreSQL runs as when the tests run as root (created by Debian's package).
SERVICE_ACCOUNT = "postgres"


class PostgresServerMissing(RuntimeError):
    """No PostgreSQL server binaries found."""


def _bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(os.path.realpath(on_path)).parent
    # Debian installs each major version beside the others; the newest is the one a user would get.
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A PostgreSQL server child process on 127.0.0.1, with a superuser ``ghl_test`` and its database.

    :param port: the port; default: a free one.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.password = secrets.token_urlsafe(16)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self._dir = ""

    @staticmethod
    def available() -> bool:
        return _bin_dir() is not None

    def _run_as(self) -> dict[str, Any]:
        """``subprocess`` arguments that drop root for the server's own account (PostgreSQL insists)."""
        if os.geteuid() != 0:
            return {}
        try:
            account = pwd.getpwnam(SERVICE_ACCOUNT)
        except KeyError:
            raise PostgresServerMissing(
                f"running as root and no {SERVICE_ACCOUNT!r} user to run PostgreSQL as: install Debian's "
                f"{POSTGRES_PACKAGE!r} package"
            ) from None
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def start(self, timeout: float = 60) -> PostgresServer:
        bin_dir = _bin_dir()
        if bin_dir is None:
            raise PostgresServerMissing(f"PostgreSQL not found: install Debian's {POSTGRES_PACKAGE!r} package")
        run_as = self._run_as()
        # mkdtemp: a new directory only we can enter, never one another local user made first.
        self._dir = tempfile.mkdtemp(prefix="ghl-postgres-")
        data = Path(self._dir) / "data"
        pwfile = Path(self._dir) / "pwfile"
        pwfile.write_text(self.password + "\n")
        if run_as:
            for path in (self._dir, pwfile):
                os.chown(path, run_as["user"], run_as["group"])
        env = {**os.environ, "LC_ALL": "C", "TZ": "UTC"}
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
                  "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync"]  # fmt: skip
        done = subprocess.run(initdb, env=env, capture_output=True, text=True, timeout=120, **run_as)
        pwfile.unlink()
        if done.returncode:
            raise RuntimeError(f"initdb failed (code {done.returncode}): {done.stderr or done.stdout}")
        server = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port), "-h", "127.0.0.1", "-k", self._dir,
                  "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"]  # fmt: skip
        self._log = open(Path(self._dir) / "server.log", "wb")  # noqa: SIM115 - open while the server runs
        self.process = subprocess.Popen(server, env=env, stdout=self._log, stderr=subprocess.STDOUT, **run_as)
        ready = [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", USER]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (Path(self._dir) / "server.log").read_text(errors="replace")
                self.stop()
                raise RuntimeError(f"postgres exited at start (code {self.process.returncode}):\n{log}")
            if subprocess.run(ready, env=env, timeout=10).returncode == 0:
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"postgres did not accept connections on port {self.port} within {timeout:g} s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            # SIGINT is PostgreSQL's "fast" shutdown: it ends open sessions instead of waiting for them.
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
        stop_child(self.process)
        if self._log:
            self._log.close()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def create_database(self, name: str) -> str:
        """Create database ``name`` (owned by ``ghl_test``) and return its SQLAlchemy URL (psycopg2 driver)."""
        bin_dir = _bin_dir()
        assert bin_dir is not None
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name],
            env={**os.environ, "PGPASSWORD": self.password},
            check=True,
            capture_output=True,
            timeout=60,
        )
        return self.url(name)

    def url(self, database: str = USER, driver: str = "postgresql+psycopg2") -> str:
        """A SQLAlchemy URL of ``database`` on this server."""
        return f"{driver}://{USER}:{quote(self.password, safe='')}@127.0.0.1:{self.port}/{database}"

    def airflow_connection(self, database: str = USER) -> dict[str, Any]:
        """This server's ``database`` as an Airflow ``postgres`` connection (JSON for ``AIRFLOW_CONN_<ID>``)."""
        return {"conn_type": "postgres", "host": "127.0.0.1", "port": self.port, "login": USER,
                "password": self.password, "schema": database}  # fmt: skip
