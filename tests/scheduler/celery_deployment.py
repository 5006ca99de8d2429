"""Airflow on its distributed engine: CeleryExecutor, a PostgreSQL metadata DB, a Redis broker, and Celery
workers that stand in for separate machines.

:class:`CeleryDeployment` is the harness's :class:`~tests.scheduler.harness.AirflowDeployment` with the
settings ``docs/scaling.md`` gives for such a deployment: ``postgresql+psycopg2`` for the metadata DB (Airflow
derives its async ``asyncpg`` URL from it), a ``db+postgresql+psycopg2://`` result backend, Redis as the broker.
Each worker has what a machine of its own would have: its AIRFLOW_HOME (so its own ``ghl-budgets`` directory
for the ``host`` budget, and its task logs), its temp directory, its pid file, its log-server port and its
hostname (recorded in ``ti.hostname`` through ``tests.scheduler.hostname``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

import psutil

from ghl_sandbox.postgres_server import PostgresServer
from ghl_sandbox.redis_server import RedisServer
from tests.scheduler.harness import AirflowDeployment, free_port

REPO = Path(__file__).resolve().parents[2]
#: Redis database of the Celery broker; the tests' budget and inbox use database 0.
BROKER_DB = 1


class CeleryDeployment(AirflowDeployment):
    """The four components on CeleryExecutor, and workers started with :meth:`start_worker`.

    :param home: the components' AIRFLOW_HOME; each worker's is beside it.
    :param dags_folder: the DAG folder.
    :param postgres: the server of the metadata DB (a database ``airflow`` is created on it).
    :param redis: the broker's server.
    :param env: more environment (connections, Variables, settings).
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        postgres: PostgresServer,
        redis: RedisServer,
        env: Mapping[str, str] | None = None,
    ) -> None:
        database = postgres.create_database(f"airflow_{free_port()}")
        settings = {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis.port}/{BROKER_DB}",
            # Plain "db+postgresql://" makes SQLAlchemy pick psycopg 3, which Airflow does not bring.
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + database,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.scheduler.hostname.hostname",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            **(env or {}),
        }
        super().__init__(home, dags_folder, settings)
        self.workers: list[str] = []
        self.killed: list[str] = []

    def worker_home(self, name: str) -> Path:
        """The AIRFLOW_HOME of worker ``name``: its task logs and ``host`` budget files."""
        return self.home.parent / name

    def start_worker(self, name: str, concurrency: int = 2, timeout: float = 120) -> None:
        """Start a Celery worker ``name`` (its hostname too) as a machine of its own would run it; wait until
        it is ready for tasks.

        :param name: the worker's name and hostname.
        :param concurrency: its task slots.
        :param timeout: seconds to wait for Celery's "ready".
        """
        home = self.worker_home(name)
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        env = {
            "AIRFLOW_HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "GHL_TEST_HOSTNAME": name,
            # Each worker serves its task logs on a port of its own: two on one host would collide on 8793.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        }
        args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(concurrency),
                "--pid", str(home / "worker.pid")]  # fmt: skip
        self.start_process(name, args, env)
        self.workers.append(name)
        self.wait_for_log(name, f"{name}@", timeout)
        self.wait_for_log(name, " ready.", timeout)

    def kill_worker(self, name: str) -> None:
        """SIGKILL worker ``name`` and everything it started (its pool and the tasks it runs), as a machine
        that is lost would end them: no clean-up, no message back."""
        proc = self.processes.pop(name)
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.workers.remove(name)
        self.killed.append(name)

    def task_logs(self, dag_id: str, run_id: str) -> dict[str, str]:
        """The task logs of one run that each worker wrote, by worker name (killed workers too).

        :param dag_id: the DAG.
        :param run_id: the run.
        :return: per worker, its log files of the run concatenated.
        """
        logs: dict[str, str] = {}
        for name in [*self.workers, *self.killed]:
            folder = self.worker_home(name) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
            logs[name] = "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.log")))
        return logs
