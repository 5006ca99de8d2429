"""``ghl_enrichment_on_change`` under ``airflow dags test``: the deferred wait completes because data changed.

The run starts with no contact changed in its window, so ``wait_for_changes`` defers and its trigger polls the
sandbox; only then does the test touch contacts at one location, and the run must finish with exactly those
contacts enriched, and no enrich task for the location that stayed quiet until the deadline.
"""

from __future__ import annotations

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
SENSOR = "wait_for_changes"
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

    from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
    from airflow_provider_ghl.operators.probe import GHLChangedLocationsOperator

    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert {"ghl", "sensor"} <= set(dag.tags)
    assert "ghl_sensor_poke_interval" in dag.doc_md
    wait, enrich = dag.get_task(SENSOR), dag.get_task("enrich")
    assert isinstance(wait, GHLChangedLocationsOperator) and wait.deferrable is True
    # One task waits for every location; the enrichment is mapped over those that changed only.
    assert wait.upstream_task_ids == {"locations"} and enrich.upstream_task_ids == {SENSOR}
    assert enrich.operator_class is GHLEnrichContactsOperator


def test_each_location_renders_its_own_layout_directory(dag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The enrichment is mapped over the changed locations: each map index names its own location's folder."""
    from ghl_layout import ENRICHMENT

    monkeypatch.setenv("AIRFLOW_VAR_GHL_EXPORT_ROOT", "s3://bucket/ghl")
    start, end = datetime(2026, 11, 23, 19, tzinfo=UTC), datetime(2026, 11, 23, 20, tzinfo=UTC)
    changed = [{"location_id": f"loc-{i}", "ghl_conn_id": f"ghl_{i}"} for i in range(3)]
    for i, location in enumerate(changed):
        task = render(
            dag.get_task("enrich"), logical_date=end, data_interval=(start, end), locations=changed, map_index=i
        )
        assert (task.location_id, task.ghl_conn_id) == (location["location_id"], location["ghl_conn_id"])
        assert task.output_path == ENRICHMENT.path(
            "s3://bucket/ghl", location["location_id"], data_interval_start=start, data_interval_end=end
        )


def test_the_wait_and_its_interval_are_set_at_run_time(dag: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline is the window's end plus the index lag; the interval comes from the Variable, else 60 s."""
    start, end = datetime(2026, 11, 23, 19, tzinfo=UTC), datetime(2026, 11, 23, 20, tzinfo=UTC)
    locations = [{"location_id": "loc-0", "ghl_conn_id": "ghl_0"}]
    monkeypatch.delenv("AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL", raising=False)
    task = render(dag.get_task(SENSOR), logical_date=end, data_interval=(start, end), locations=locations)
    args = task.validate({"data_interval_start": start, "data_interval_end": end})
    assert args["wait_until"] == end + timedelta(minutes=10)
    assert args["poll_interval"] == 60

    monkeypatch.setenv("AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL", "2.5")
    task = render(dag.get_task(SENSOR), logical_date=end, data_interval=(start, end), locations=locations)
    assert task.validate({"data_interval_start": start, "data_interval_end": end})["poll_interval"] == 2.5


def test_the_deferred_wait_ends_when_every_location_has_changed(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    """Two locations, each through its own connection: one trigger asks both; the first is touched, then (asked
    no more) the second; the run ends and each location is enriched with exactly its touched contacts."""
    quiet_sandbox(sandbox)
    first, second = sandbox.location_ids
    hour = current_hour()
    end = hour + timedelta(hours=1)  # a manual run's logical date is the END of its hour: [hour, end) holds now
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW_CONN_GHL_FIRST": json.dumps(sandbox.airflow_connection(0)),
        "AIRFLOW_CONN_GHL_SECOND": json.dumps(sandbox.airflow_connection(1)),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path}",
        "AIRFLOW_VAR_GHL_LOCATION_IDS": json.dumps({first: "ghl_first", second: "ghl_second"}),
        "AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL": "1",
    }
    touched: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def touch_while_waiting() -> None:
        # The task's first look (2 searches) and a trigger look (2 more): the wait is deferred and asking both.
        try:
            wait_for(lambda: search_requests(sandbox) >= 4, 60, "the trigger's looks")
            touched[first] = sandbox.touch_contacts(first, count=3)
            # The look that sees the first location changed, then at least two that ask the second alone.
            seen = search_requests(sandbox)
            wait_for(lambda: search_requests(sandbox) >= seen + 4, 60, "looks at the second location alone")
            touched[second] = sandbox.touch_contacts(second, count=2)
        except BaseException as err:
            errors.append(err)

    toucher = threading.Thread(target=touch_while_waiting, name="touch-contacts", daemon=True)
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

    assert set(touched) == {first, second}, output[-6000:]
    finished = [line for line in lines if f"DagRun Finished: dag_id={DAG_ID}," in line]
    assert len(finished) == 1 and "state=success," in finished[0], output[-6000:]
    # The wait deferred, and its trigger asked again until both had changed.
    assert "Pausing task as DEFERRED" in output
    assert "Locations changed so far: 1; still quiet: 1" in output
    for location in (first, second):
        run_dir = tmp_path / location / "enrichment" / f"{hour:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
        assert sorted(read_field(run_dir, "contacts", "id")) == sorted(touched[location])

    # The wait's XCom: the locations that changed, in the configured order, each with its connection.
    with sqlite3.connect(airflow_db) as con:
        row = con.execute(
            "select x.value from xcom x join dag_run r on r.id = x.dag_run_id "
            "where x.dag_id = ? and x.task_id = ? and x.key = 'return_value' and r.logical_date = ?",
            (DAG_ID, SENSOR, end.strftime("%Y-%m-%d %H:%M:%S.%f")),
        ).fetchone()
    assert row is not None
    assert json.loads(row[0]) == [
        {"location_id": first, "ghl_conn_id": "ghl_first"},
        {"location_id": second, "ghl_conn_id": "ghl_second"},
    ]
