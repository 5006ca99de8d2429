"""``ghl_enrichment_on_change`` under ``airflow dags test``: the deferred sensor completes because data changed.

The run starts with no contact changed in its window, so the sensor defers and its trigger polls the sandbox;
only then does the test touch contacts, and the run must finish with exactly those contacts enriched.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ghl_sandbox.testing import SandboxServer
from tests.dags.rendering import render

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "ghl_enrichment_on_change"
SENSOR = "per_location.wait_for_changes"
SEARCH = "POST /contacts/search"
#: Trigger polls seen before the test touches contacts: the sensor was deferred and waiting, not done at once.
POLLS_BEFORE_TOUCH = 3
RUN_TIMEOUT = 180


def search_requests(sandbox: SandboxServer) -> int:
    return sandbox.stats()["requests_by_route"].get(SEARCH, 0)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.2 s; ``TimeoutError`` naming ``what`` when it stays false."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def quiet_sandbox(sandbox: SandboxServer) -> None:
    """Reset the sandbox with its data generated three days ago, so no contact changed in the current hour.

    The seeded data has a few contacts updated shortly before the anchor (start-up time by default); with an old
    anchor, a window around now starts empty and fills only with contacts the test touches.
    """
    sandbox.reset(anchor=(datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).isoformat())
    sandbox.clear_stats()


def current_hour(margin: timedelta = timedelta(seconds=90)) -> datetime:
    """Start of the current UTC hour, first waiting out the hour's last ``margin`` so the run stays inside it."""
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    if hour + timedelta(hours=1) - now < margin:
        time.sleep((hour + timedelta(hours=1) - now).total_seconds() + 1)
        hour += timedelta(hours=1)
    return hour


def read_field(out: Path, dataset: str, field: str) -> list[str]:
    """``field`` of every record of ``dataset`` in the export at ``out``, as listed by its manifest."""
    manifest = json.loads((out / "_manifest.json").read_text())
    return [
        json.loads(line)[field]
        for f in manifest["datasets"][dataset]["files"]
        for line in (out / f).read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / f"{DAG_ID}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[DAG_ID]


def test_dag_shape(dag: Any) -> None:
    from airflow.sdk import CronDataIntervalTimetable
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
    from airflow_provider_ghl.sensors.ghl import GHLContactChangedSensor

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {"ghl", "sensor"} <= set(dag.tags)
    assert "ghl_sensor_poke_interval" in dag.doc_md
    sensor, enrich = dag.get_task(SENSOR), dag.get_task("per_location.enrich")
    assert isinstance(sensor, GHLContactChangedSensor) and isinstance(enrich, GHLEnrichContactsOperator)
    assert sensor.deferrable is True
    assert sensor.poke_interval == 60
    assert sensor.skip_on_timeout is True and sensor.soft_fail is False
    # One mapped task group: each location's enrich waits for that location's sensor only.
    assert isinstance(sensor.task_group, MappedTaskGroup)
    assert sensor.task_group is enrich.task_group
    assert enrich.upstream_task_ids == {SENSOR, "locations"}  # locations: the group's expand input


def test_each_location_of_the_group_renders_its_own_layout_directory(dag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the mapped task group, ``location_id`` resolves only as its own field renders, after ``output_path``:
    the layout's LOCATION template must still name this map index's location."""
    from airflow.sdk.definitions._internal.expandinput import MappedArgument

    from ghl_layout import ENRICHMENT

    monkeypatch.setenv("AIRFLOW_VAR_GHL_EXPORT_ROOT", "s3://bucket/ghl")
    start, end = datetime(2026, 11, 23, 19, tzinfo=UTC), datetime(2026, 11, 23, 20, tzinfo=UTC)
    locations = [{"location_id": f"loc-{i}", "ghl_conn_id": f"ghl_{i}"} for i in range(3)]
    for i, location in enumerate(locations):
        for task_id in (SENSOR, "per_location.enrich"):
            task = render(
                dag.get_task(task_id), logical_date=end, data_interval=(start, end), locations=locations, map_index=i
            )
            assert (task.location_id, task.ghl_conn_id) == (location["location_id"], location["ghl_conn_id"])
        assert task.output_path == ENRICHMENT.path(
            "s3://bucket/ghl", location["location_id"], data_interval_start=start, data_interval_end=end
        )
        assert task.output_path == f"s3://bucket/ghl/loc-{i}/enrichment/20261123T190000__20261123T200000"
    assert isinstance(dag.get_task("per_location.enrich").location_id, MappedArgument)  # the parsed DAG unchanged


def test_sensor_wait_and_interval_are_set_at_run_time(dag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = copy.deepcopy(dag.get_task(SENSOR))  # the hook sets attributes: keep the parsed DAG as it was
    hook = sensor._pre_execute_hook
    now = datetime.now(UTC)
    monkeypatch.delenv("AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL", raising=False)

    # The current hour: wait until it ends, plus 10 minutes for GHL's search index; default poll interval.
    hook({"task": sensor, "data_interval_end": now + timedelta(minutes=30)})
    assert 39 * 60 < sensor.timeout <= 40 * 60
    assert sensor.poke_interval == 60

    # A past hour (a scheduled run starts after its window): only the index lag; the Variable sets the interval.
    monkeypatch.setenv("AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL", "2.5")
    hook({"task": sensor, "data_interval_end": now - timedelta(hours=1)})
    assert sensor.timeout == 10 * 60
    assert sensor.poke_interval == 2.5


def test_deferred_sensor_completes_when_contacts_change_during_the_run(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    quiet_sandbox(sandbox)
    location = sandbox.location_ids[0]
    hour = current_hour()
    end = hour + timedelta(hours=1)  # a manual run's logical date is the END of its hour: [hour, end) holds now
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(sandbox.airflow_connection(0)),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path}",
        "AIRFLOW_VAR_GHL_LOCATION_IDS": json.dumps([location]),
        "AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL": "1",
    }
    touched: list[str] = []
    errors: list[BaseException] = []

    def touch_once_polling() -> None:
        # The worker's first check plus trigger polls: once these are seen, the sensor is deferred and waiting.
        try:
            wait_for(lambda: search_requests(sandbox) >= POLLS_BEFORE_TOUCH, 60, "the trigger's polls")
            touched.extend(sandbox.touch_contacts(location, count=3))
        except BaseException as err:
            errors.append(err)

    toucher = threading.Thread(target=touch_once_polling, name="touch-contacts", daemon=True)
    started = time.monotonic()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", DAG_ID, end.isoformat()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as proc:
            watchdog = threading.Timer(RUN_TIMEOUT, proc.kill)
            watchdog.start()
            lines = []
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                # dags test has no triggerer: once the task has deferred, it runs the trigger inline.
                if "[DAG TEST] running trigger in line" in line and toucher.ident is None:
                    toucher.start()
            watchdog.cancel()
        toucher.join(60)
        output = "".join(lines)
        assert proc.returncode == 0, output[-6000:]
        assert not errors, errors
        print(f"dags test took {time.monotonic() - started:.1f} s")
    finally:
        sandbox.reset()  # back to the session's start-up state for other tests

    assert touched, output[-6000:]
    finished = [line for line in lines if f"DagRun Finished: dag_id={DAG_ID}," in line]
    assert len(finished) == 1 and "state=success," in finished[0], output[-6000:]
    # The sensor deferred, and its trigger polled without result until the contacts changed.
    assert "Pausing task as DEFERRED" in output
    assert output.count("ContactChangedCondition: not met yet") >= POLLS_BEFORE_TOUCH - 1

    run_dir = tmp_path / location / "enrichment" / f"{hour:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
    assert sorted(read_field(run_dir, "contacts", "id")) == sorted(touched)
    assert set(read_field(run_dir, "notes", "contactId")) <= set(touched)

    # The sensor's XCom: the ids it saw, the window start and the location searched.
    with sqlite3.connect(airflow_db) as con:
        row = con.execute(
            "select x.value from xcom x join dag_run r on r.id = x.dag_run_id "
            "where x.dag_id = ? and x.task_id = ? and x.key = 'return_value' and r.logical_date = ?",
            (DAG_ID, SENSOR, end.strftime("%Y-%m-%d %H:%M:%S.%f")),
        ).fetchone()
    assert row is not None
    value = json.loads(row[0])
    assert sorted(value["ids"]) == sorted(touched)
    assert value["total"] == len(touched)
    assert value["location_id"] == location
    assert value["since"].startswith(f"{hour:%Y-%m-%dT%H:%M:%S}")
