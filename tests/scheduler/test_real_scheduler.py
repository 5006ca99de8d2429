"""``ghl_enrichment_on_change`` under Airflow's real scheduler, triggerer, dag-processor and api-server.

The test starts the four components as separate processes in a temporary AIRFLOW_HOME (LocalExecutor, SQLite),
logs in through the REST API (``POST /auth/token``), unpauses the DAG and triggers a run whose data interval
holds "now", waits until the sensor is **deferred** and the triggerer is polling the sandbox, then changes
contacts in the sandbox. It asserts that the run succeeds through the scheduler, that the wait's trigger was
served by the triggerer, and that the enrichment wrote exactly the changed contacts.

It takes about a minute (most of it Airflow starting up) and runs by default, as in CI. To skip it locally::

    GHL_SKIP_SCHEDULER_TESTS=1 make test
    # or: pytest -m "not scheduler"
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ghl_sandbox.testing import SandboxServer
from tests.scheduler.harness import AirflowDeployment, scheduler_marks, wait_until

pytestmark = scheduler_marks(420)

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "ghl_enrichment_on_change"
SENSOR = "wait_for_changes"
ENRICH = "enrich"
TRIGGER = "airflow_provider_ghl.triggers.locations.GHLChangedLocationsTrigger"
SEARCH = "POST /contacts/search"
#: Searches seen before the test touches contacts: the worker's check, then the trigger's polls.
POLLS_BEFORE_TOUCH = 3


def search_requests(sandbox: SandboxServer) -> int:
    return sandbox.stats()["requests_by_route"].get(SEARCH, 0)


@pytest.fixture
def deployment(sandbox: SandboxServer, tmp_path: Path) -> Any:
    # No contact changed near now: the sandbox's data leads up to three days ago (touches still use the clock).
    sandbox.reset(anchor=(datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).isoformat())
    env = {
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(sandbox.airflow_connection(0)),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path / 'exports'}",
        "AIRFLOW_VAR_GHL_LOCATION_IDS": json.dumps([sandbox.location_ids[0]]),
        "AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL": "1",
    }
    try:
        with AirflowDeployment(tmp_path / "airflow-home", DAGS, env) as airflow:
            yield airflow
    finally:
        sandbox.reset()  # the session's start-up state for the tests after this one


def ti_path(run_id: str, task_id: str, map_index: int | None = None) -> str:
    path = f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}"
    return path if map_index is None else f"{path}/{map_index}"


def test_dag_run_through_scheduler_and_triggerer(
    deployment: AirflowDeployment, sandbox: SandboxServer, tmp_path: Path
) -> None:
    airflow = deployment
    location = sandbox.location_ids[0]
    with airflow.logs_on_failure():
        # The dag-processor has parsed the DAG folder (the new DAG and the other examples) without errors.
        airflow.unpause_when_parsed(DAG_ID)
        assert airflow.api("GET", "importErrors")["total_entries"] == 0
        sandbox.clear_stats()
        # A manual run for the hour around now. The scheduler refuses a logical date in the future, so the
        # interval is passed explicitly rather than inferred from a logical date at the end of the hour.
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start, end = now - timedelta(minutes=10), now + timedelta(minutes=50)
        run_id = f"scheduler_test_{now:%Y%m%dT%H%M%S}"
        run = airflow.trigger_run(DAG_ID, run_id, now, (start, end))
        assert run["state"] == "queued"
        started = time.monotonic()

        # The scheduler runs `locations`, then a worker runs the wait's first look, which finds nothing and
        # defers. While deferred, the task instance names its trigger and the triggerer job.
        deferred = wait_until(
            lambda: (
                (ti := airflow.api("GET", ti_path(run_id, SENSOR)))["state"] == "deferred"
                and ti["triggerer_job"]
                and ti
            ),
            180,
            "the sensor to be deferred and picked up by the triggerer",
        )
        assert deferred["trigger"]["classpath"] == TRIGGER
        assert deferred["triggerer_job"]["job_type"] == "TriggererJob"
        assert deferred["triggerer_job"]["state"] == "running"
        # The trigger, in the triggerer process, polls the sandbox once a second and finds nothing yet.
        wait_until(lambda: search_requests(sandbox) >= POLLS_BEFORE_TOUCH, 60, "the trigger's polls")
        assert airflow.api("GET", ti_path(run_id, SENSOR))["state"] == "deferred"
        # Airflow 3.3 race (apache/airflow#67287, #72716): the worker process that deferred exits ~5 s later, and
        # if the trigger has fired and the task is queued or running again when the scheduler reads that exit's
        # "success" event, the scheduler calls it a state mismatch and retries the task (after retry_delay).
        # Change the data only once the scheduler has taken that event.
        airflow.wait_for_log(
            "scheduler",
            "Received executor event with state success for task instance TaskInstanceKey("
            f"dag_id='{DAG_ID}', task_id='{SENSOR}', run_id='{run_id}', try_number=1, map_index=-1)",
            60,
        )
        assert airflow.api("GET", ti_path(run_id, SENSOR))["state"] == "deferred"

        touched = sandbox.touch_contacts(location, count=3)

        final = airflow.wait_for_run(DAG_ID, run_id, 240)
        print(f"run finished {time.monotonic() - started:.1f} s after it was triggered")
        states = {
            (ti["task_id"], ti["map_index"]): ti["state"]
            for ti in airflow.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")["task_instances"]
        }
        assert final["state"] == "success", states
        assert states == {("locations", -1): "success", (SENSOR, -1): "success", (ENRICH, 0): "success"}

        sensor = airflow.api("GET", ti_path(run_id, SENSOR))
        assert sensor["try_number"] == 1  # resumed after the trigger fired, not retried
        assert airflow.api("GET", ti_path(run_id, ENRICH, 0))["rendered_map_index"] == location
        value = airflow.api("GET", f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{SENSOR}/xcomEntries/return_value")[
            "value"
        ]
        # Without ?deserialize the API returns the value as the XCom table stores it: JSON text.
        value = json.loads(value) if isinstance(value, str) else value
        assert value == [{"location_id": location, "ghl_conn_id": "ghl_default"}]

        # The trigger's own log lines are in the sensor's task log, written by the triggerer.
        log = airflow.api(
            "GET",
            f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{SENSOR}/logs/1",
            headers={"Accept": "application/json"},
        )
        assert "Locations changed so far: 0; still quiet: 1" in json.dumps(log)

        run_dir = tmp_path / "exports" / location / "enrichment" / f"{start:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
        manifest = json.loads((run_dir / "_manifest.json").read_text())
        ids = [
            json.loads(line)["id"]
            for f in manifest["datasets"]["contacts"]["files"]
            for line in (run_dir / f).read_text().splitlines()
        ]
        assert sorted(ids) == sorted(touched)
