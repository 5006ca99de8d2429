"""The example DAGs on Airflow's distributed engine, deployed as ``docs/scaling.md`` says.

PostgreSQL (metadata DB and Celery result backend) and Redis (broker, and the ``redis`` rate budget) are real
servers the test starts; Airflow's scheduler, triggerer, dag-processor and api-server, and two Celery workers,
are separate processes, each worker with its own AIRFLOW_HOME, temp directory and hostname as on two machines.
Three locations with their own Private Integration Tokens share nothing but the sandbox, at 50 requests / 2 s.

1. ``ghl_full_export`` and ``ghl_incremental_enrichment`` at once, on the ``redis`` budget: every task succeeds
   on one of both workers, GHL answers no 429, every contact of every location is exported exactly once.
2. A worker is killed with SIGKILL mid-export: Airflow notices the lost task (the heartbeat timeout), retries it
   on the other worker, and the export holds every contact exactly once.

About three minutes, most of it Airflow starting on PostgreSQL. Skip with ``GHL_SKIP_SCHEDULER_TESTS=1``.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ghl_sandbox.postgres_server import PostgresServer
from ghl_sandbox.redis_server import REDIS_PACKAGE, RedisServer
from ghl_sandbox.testing import SandboxServer
from tests.scheduler.celery_deployment import CeleryDeployment
from tests.scheduler.harness import scheduler_marks, wait_until
from tests.services import service_missing

pytestmark = scheduler_marks(900)

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPORT, ENRICH, ON_CHANGE = "ghl_full_export", "ghl_incremental_enrichment", "ghl_enrichment_on_change"
LOCATIONS_VARIABLE = "ghl_location_ids"
#: The start of the hook's warning when GHL counts requests that no process sharing the budget sent.
SPLIT_WARNING = "that no process on this machine sent"
WORKERS = ("worker-a", "worker-b")
LOCATIONS = 3
CONTACTS = 1000
TOUCHED = 40
#: Seconds without a heartbeat before Airflow fails a task whose worker is gone (Airflow's default: 300).
HEARTBEAT_TIMEOUT = 20
SEARCH = "POST /contacts/search"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    # Nothing changed lately (the data leads up to three days ago): the enrichment finds what the test touches.
    anchor = (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).isoformat()
    with SandboxServer(
        contacts=CONTACTS, locations=LOCATIONS, seed=7, max_requests=50, interval_ms=2000, anchor=anchor
    ) as server:
        yield server


@pytest.fixture(scope="module")
def broker() -> Iterator[RedisServer]:
    if not RedisServer.available():
        service_missing(f"redis-server not found: install Debian's {REDIS_PACKAGE!r} package")
    with RedisServer() as server:
        yield server


@pytest.fixture
def deployment(
    sandbox: SandboxServer, postgres_server: PostgresServer, broker: RedisServer, tmp_path: Path
) -> Iterator[CeleryDeployment]:
    env = {
        "AIRFLOW_CONN_GHL_REDIS": json.dumps(broker.airflow_connection()),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path / 'exports'}",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        # The example export's retries wait [core] default_task_retry_delay (300 s by default).
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
    }
    for i in range(LOCATIONS):
        conn = sandbox.airflow_connection(i, budget_backend="redis", budget_redis_conn_id="ghl_redis")
        env[f"AIRFLOW_CONN_GHL_LOC_{i}"] = json.dumps(conn)
    # The first location again, on each machine's own budget (the default backend).
    env["AIRFLOW_CONN_GHL_HOST_0"] = json.dumps(sandbox.airflow_connection(0, budget_backend="host"))
    airflow = CeleryDeployment(tmp_path / "airflow-home", DAGS, postgres_server, broker, env)
    with airflow, airflow.logs_on_failure():
        for name in WORKERS:
            airflow.start_worker(name)
        # In the metadata DB, not the environment: phase 3 changes it.
        locations = {loc: f"ghl_loc_{i}" for i, loc in enumerate(sandbox.location_ids)}
        airflow.api("POST", "variables", json={"key": LOCATIONS_VARIABLE, "value": json.dumps(locations)})
        yield airflow


def task_instances(airflow: CeleryDeployment, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    tis: list[dict[str, Any]] = airflow.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    return tis


def contact_ids(folder: Path) -> list[str]:
    """Every contact id in the files of a committed output (its manifest's), as often as it occurs."""
    manifest = json.loads((folder / "_manifest.json").read_text())
    ids = []
    for name in manifest["datasets"]["contacts"]["files"]:
        with (gzip.open if name.endswith(".gz") else open)(folder / name, "rt") as fh:
            ids += [json.loads(line)["id"] for line in fh]
    assert manifest["datasets"]["contacts"]["records"] == len(ids)
    return ids


def assert_every_contact_once(sandbox: SandboxServer, root: Path, ds: str) -> None:
    for location in sandbox.location_ids:
        ids = contact_ids(root / location / "contacts" / "full" / ds)
        twice = [i for i, n in Counter(ids).items() if n > 1]
        assert not twice, f"{location}: {len(twice)} contacts exported more than once"
        assert sorted(ids) == sorted(sandbox.contact_ids(location)), location


def test_celery_deployment(deployment: CeleryDeployment, sandbox: SandboxServer, tmp_path: Path) -> None:
    airflow = deployment
    root = tmp_path / "exports"
    for dag_id in (EXPORT, ENRICH, ON_CHANGE):
        airflow.unpause_when_parsed(dag_id)
    assert airflow.api("GET", "importErrors")["total_entries"] == 0

    # -- 1. export and enrichment of every location at once, on the redis budget --------------------------
    touched = {loc: set(sandbox.touch_contacts(loc, count=TOUCHED)) for loc in sandbox.location_ids}
    sandbox.clear_stats()
    # The window's end is after the touches (whole seconds, rounded up).
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    export_day = now - timedelta(days=1)
    runs = {
        EXPORT: airflow.trigger_run(EXPORT, "celery_export_1", export_day, (export_day, export_day)),
        ENRICH: airflow.trigger_run(
            ENRICH, "celery_enrich_1", now - timedelta(hours=1), (now - timedelta(hours=1), now)
        ),
    }
    started = time.monotonic()
    for dag_id, run in runs.items():
        final = airflow.wait_for_run(dag_id, run["dag_run_id"], 300)
        states = {
            (t["task_id"], t["map_index"]): t["state"] for t in task_instances(airflow, dag_id, run["dag_run_id"])
        }
        assert final["state"] == "success", states
        assert set(states.values()) == {"success"}, states
    print(f"phase 1: both runs done {time.monotonic() - started:.1f} s after they were triggered")
    stats = sandbox.stats()
    assert stats["responses_429"] == 0, stats["responses_by_status"]
    hosts = Counter(
        t["hostname"] for dag_id, run in runs.items() for t in task_instances(airflow, dag_id, run["dag_run_id"])
    )
    assert set(hosts) == set(WORKERS), hosts  # tasks ran on both workers, and nowhere else
    assert_every_contact_once(sandbox, root, f"{export_day:%Y-%m-%d}")
    for location, ids in touched.items():
        window = root / location / "enrichment" / f"{now - timedelta(hours=1):%Y%m%dT%H%M%S}__{now:%Y%m%dT%H%M%S}"
        assert sorted(contact_ids(window)) == sorted(ids), location

    # -- 2. a worker lost mid-export ------------------------------------------------------------------------
    # Slow answers, so the export is still paging when the worker goes.
    sandbox.set_faults(latency_ms=2000)
    sandbox.clear_stats()
    second_day = now - timedelta(days=2)
    run_id = "celery_export_2"
    airflow.trigger_run(EXPORT, run_id, second_day, (second_day, second_day))
    running = wait_until(
        lambda: (
            sandbox.stats()["requests_by_route"].get(SEARCH, 0) >= 1
            and [
                t
                for t in task_instances(airflow, EXPORT, run_id)
                if t["task_id"] == "full_export" and t["state"] == "running"
            ]
        ),
        120,
        "an export to be paging",
        interval=0.1,
    )
    victim = running[0]["hostname"]
    lost = {t["map_index"] for t in running if t["hostname"] == victim}
    airflow.kill_worker(victim)
    killed_at = time.monotonic()
    (survivor,) = set(WORKERS) - {victim}
    sandbox.set_faults()
    final = airflow.wait_for_run(EXPORT, run_id, HEARTBEAT_TIMEOUT + 240)
    print(f"phase 2: run done {time.monotonic() - killed_at:.1f} s after {victim} was killed")
    exports = {t["map_index"]: t for t in task_instances(airflow, EXPORT, run_id) if t["task_id"] == "full_export"}
    assert final["state"] == "success", exports
    for index in lost:
        assert exports[index]["try_number"] == 2, exports[index]
        assert exports[index]["hostname"] == survivor, exports[index]
    assert_every_contact_once(sandbox, root, f"{second_day:%Y-%m-%d}")

    # -- 3. the default `host` budget: one machine shares it, two machines do not, and the hook says so -------
    location = sandbox.location_ids[0]
    airflow.api(
        "PATCH",
        f"variables/{LOCATIONS_VARIABLE}",
        json={"key": LOCATIONS_VARIABLE, "value": json.dumps({location: "ghl_host_0"})},
    )
    # One machine: both enrichments of the location run on the worker left, sharing its budget file.
    single = enrich_twice(airflow, sandbox, location, "single")
    assert hosts_of(airflow, single) == {survivor}
    assert SPLIT_WARNING not in "".join(log for run in single for log in airflow.task_logs(*run).values())
    # Two machines of one slot each: the two enrichments run at once, one on each, on budgets of their own.
    airflow.kill_worker(survivor)
    for name in ("worker-c", "worker-d"):
        airflow.start_worker(name, concurrency=1)
    split = enrich_twice(airflow, sandbox, location, "split")
    assert hosts_of(airflow, split) == {"worker-c", "worker-d"}
    logs = [log for run in split for log in airflow.task_logs(*run).values()]
    warned = [log for log in logs if SPLIT_WARNING in log]
    assert warned, "no task warned that the budget is split across machines"
    assert "budget_backend=redis" in warned[0] and "'ghl_host_0'" in warned[0]


def enrich_twice(airflow: CeleryDeployment, sandbox: SandboxServer, location: str, name: str) -> list[tuple[str, str]]:
    """Touch contacts of ``location``, run both enrichment DAGs over them at once (different windows), and
    return the runs' ``(dag_id, run_id)`` once both succeeded."""
    sandbox.touch_contacts(location, count=TOUCHED)
    sandbox.clear_stats()
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    runs = []
    for dag_id, hours in ((ENRICH, 1), (ON_CHANGE, 2)):
        start = end - timedelta(hours=hours)
        runs.append((dag_id, airflow.trigger_run(dag_id, f"{name}_{dag_id}", start, (start, end))["dag_run_id"]))
    for dag_id, run_id in runs:
        final = airflow.wait_for_run(dag_id, run_id, 300)
        assert final["state"] == "success", task_instances(airflow, dag_id, run_id)
    spans = [
        (t["hostname"], t["start_date"][11:23], t["end_date"][11:23])
        for run in runs
        for t in task_instances(airflow, *run)
        if t["task_id"] == "enrich"
    ]
    print(f"{name}: enrich tasks (worker, start, end) {spans}; 429s: {sandbox.stats()['responses_429']}")
    return runs


def hosts_of(airflow: CeleryDeployment, runs: list[tuple[str, str]]) -> set[str]:
    """The workers that ran the enrichments of ``runs``."""
    return {t["hostname"] for run in runs for t in task_instances(airflow, *run) if t["task_id"] == "enrich"}
