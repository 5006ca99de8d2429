"""Real Airflow components in a throwaway AIRFLOW_HOME, and a client for their REST API.

:class:`AirflowDeployment` runs ``airflow scheduler``, ``triggerer``, ``dag-processor`` and ``api-server`` as
separate processes, like a small deployment: LocalExecutor on SQLite (Airflow 3 accepts that pair; only
non-SQLite databases or a distributed executor make the simple auth manager warn), the simple auth manager with a
known user and password (so the test goes through ``POST /auth/token`` like any API client), and loopback ports
chosen at start.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import psutil
import requests

T = TypeVar("T")

COMPONENTS = ("scheduler", "triggerer", "dag-processor", "api-server")


def scheduler_marks(timeout: int) -> list[Any]:
    """The marks of a test module that runs the real components: ``scheduler``, skipped with
    ``GHL_SKIP_SCHEDULER_TESTS=1``, and a ``timeout`` in seconds.

    :param timeout: the module's tests' time limit.
    """
    import pytest

    skipped = os.environ.get("GHL_SKIP_SCHEDULER_TESTS") == "1"
    return [
        pytest.mark.scheduler,
        pytest.mark.skipif(skipped, reason="GHL_SKIP_SCHEDULER_TESTS=1: real scheduler skipped"),
        pytest.mark.timeout(timeout),
    ]


USER = "ghl_test"
#: A second user with Airflow's ``viewer`` role (may read DAGs and runs, not connections or Variables).
VIEWER = "ghl_viewer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.5) -> T:
    """Call ``check`` until it returns something truthy, and return that; ``TimeoutError`` naming ``what``.

    Exceptions from ``check`` count as "not yet" (a server still starting refuses connections), and the last
    one is chained to the timeout.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if result := check():
                return result
        except (requests.RequestException, KeyError, ValueError) as err:
            last = err
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}") from last
        time.sleep(interval)


class AirflowDeployment:
    """Airflow's scheduler, triggerer, dag-processor and api-server on loopback, each in its own process group.

    :param home: the AIRFLOW_HOME to create (config, SQLite DB, logs).
    :param dags_folder: the DAG folder the dag-processor parses.
    :param env: more environment: connections (``AIRFLOW_CONN_*``), Variables (``AIRFLOW_VAR_*``), settings.
    :param components: the ``airflow <component>`` processes :meth:`start` runs.
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        env: Mapping[str, str] | None = None,
        components: tuple[str, ...] = COMPONENTS,
    ) -> None:
        self.home = home
        self.components = components
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(16)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.session = requests.Session()
        home.mkdir(parents=True, exist_ok=True)
        passwords = home / "simple_auth_manager_passwords.json"
        self.viewer_password = secrets.token_urlsafe(16)
        passwords.write_text(json.dumps({USER: self.password, VIEWER: self.viewer_password}))
        self.env = {
            **os.environ,
            # The venv's bin first: Airflow starts some helpers by name.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            # Two cores: more parallel task processes would only compete with the components.
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__WORKERS": "1",
            # Task processes report to the api-server's execution API: on our port, not the default 8080.
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            # One secret for every component, so the scheduler's task tokens pass the api-server's check.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin,{VIEWER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            # Only the runs the test triggers: unpausing a DAG must not also start its latest scheduled run.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # The log servers of the executor and triggerer default to fixed ports (8793, 8794).
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self, timeout: float = 120) -> AirflowDeployment:
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        for name in self.components:
            self.start_process(name, [name])
        self.login(timeout)
        wait_until(self._healthy, timeout, "scheduler, triggerer and dag-processor heartbeats")
        return self

    def start_process(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> None:
        """Run ``airflow <args>`` as the process ``name``, logging to :meth:`log_path`.

        :param name: the process's name in :attr:`processes` and the log's file name.
        :param args: the arguments after ``airflow``.
        :param env: environment over the deployment's.
        """
        with open(self.log_path(name), "wb") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env={**self.env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: teardown signals the component and everything it started.
                start_new_session=True,
            )

    def stop(self, grace: float = 5) -> None:
        """Stop every component and whatever it started: SIGTERM to each group, SIGKILL to what outlives it."""
        survivors: list[psutil.Process] = []
        for proc in self.processes.values():
            with contextlib.suppress(psutil.Error):
                parent = psutil.Process(proc.pid)
                # Children may have left the group (task supervisors, uvicorn workers): remember them by pid.
                survivors += [parent, *parent.children(recursive=True)]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(survivors, timeout=grace)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        for proc in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.session.close()

    def __enter__(self) -> AirflowDeployment:
        try:
            return self.start()
        except BaseException:
            print(self.log_tails())
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- logs -----------------------------------------------------------------------------------------------
    def log_path(self, component: str) -> Path:
        return self.home / f"{component}.log"

    def log_tails(self, lines: int = 60) -> str:
        """The last ``lines`` lines of every component's log, for failure reports."""
        parts = []
        for name in self.processes or self.components:
            path = self.log_path(name)
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
            proc = self.processes.get(name)
            state = "not started" if proc is None else f"exit code {proc.poll()}" if proc.poll() is not None else "up"
            parts.append(f"----- {name} ({state}): last {lines} lines of {path} -----\n" + "\n".join(text))
        return "\n".join(parts)

    def wait_for_log(self, component: str, text: str, timeout: float) -> None:
        """Wait until ``component``'s log contains ``text``."""
        path = self.log_path(component)
        wait_until(lambda: text in path.read_text(errors="replace"), timeout, f"{component} to log {text!r}")

    @contextlib.contextmanager
    def logs_on_failure(self) -> Iterator[None]:
        """Print the components' log tails when the block raises (pytest shows them with the failure)."""
        try:
            yield
        except BaseException:
            print(self.log_tails())
            raise

    # -- REST API -------------------------------------------------------------------------------------------
    def login(self, timeout: float = 120) -> None:
        """Get a JWT from the simple auth manager (``POST /auth/token``) and send it with every request."""

        def token() -> str:
            self._check_alive()
            resp = self.session.post(
                f"{self.base_url}/auth/token", json={"username": USER, "password": self.password}, timeout=10
            )
            resp.raise_for_status()
            return resp.json()["access_token"]

        self.session.headers["Authorization"] = f"Bearer {wait_until(token, timeout, 'the api-server')}"

    def token(self, username: str, password: str) -> str:
        """A JWT of ``username`` from ``POST /auth/token``."""
        resp = requests.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=10
        )
        resp.raise_for_status()
        token: str = resp.json()["access_token"]
        return token

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call ``/api/v2/<path>`` and return the JSON body; ``HTTPError`` with the body on a 4xx/5xx."""
        resp = self.session.request(method, f"{self.base_url}/api/v2/{path.lstrip('/')}", timeout=30, **kwargs)
        if resp.status_code >= 400:
            raise requests.HTTPError(f"{method} {path}: {resp.status_code} {resp.text}", response=resp)
        return resp.json()

    def unpause_when_parsed(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the dag-processor has parsed ``dag_id``, then unpause it."""
        wait_until(lambda: self.api("GET", f"dags/{dag_id}")["dag_id"], timeout, f"{dag_id} to be parsed")
        self.api("PATCH", f"dags/{dag_id}", json={"is_paused": False})

    def trigger_run(
        self, dag_id: str, run_id: str, logical_date: datetime, interval: tuple[datetime, datetime]
    ) -> dict[str, Any]:
        """Trigger a run of ``dag_id`` with its data interval given (the scheduler refuses a logical date in the
        future, so a run whose interval holds now cannot have it inferred); returns the new run.

        :param dag_id: the DAG.
        :param run_id: the run's id.
        :param logical_date: the run's logical date.
        :param interval: its data interval, start and end.
        """
        body = {
            "dag_run_id": run_id,
            "logical_date": logical_date.isoformat(),
            "data_interval_start": interval[0].isoformat(),
            "data_interval_end": interval[1].isoformat(),
        }
        run: dict[str, Any] = self.api("POST", f"dags/{dag_id}/dagRuns", json=body)
        return run

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float, interval: float = 0.5) -> dict[str, Any]:
        """Wait until the run has ended (success or failed) and return it."""
        path = f"dags/{dag_id}/dagRuns/{run_id}"
        run: dict[str, Any] = wait_until(
            lambda: (r := self.api("GET", path))["state"] in ("success", "failed") and r,
            timeout,
            f"run {run_id} of {dag_id} to end",
            interval,
        )
        return run

    def _healthy(self) -> bool:
        self._check_alive()
        health = self.api("GET", "monitor/health")
        components = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all(health[c]["status"] == "healthy" for c in components)

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with code {proc.returncode}")
