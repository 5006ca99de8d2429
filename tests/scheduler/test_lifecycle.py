"""An agency install's locations coming and going, under Airflow's real scheduler, dag-processor, triggerer and
api-server: no configuration names a location, and none is changed between the runs.

Three locations: one with the app, one with the app but deactivated by GHL ("Location is not active"), one
without the app. ``ghl_new_locations`` exports the first and skips the deactivated one with a warning; the app is
then installed in the third, and the next run exports it alone; the first then uninstalls the app, and
``ghl_full_export`` leaves it out while the third is exported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ghl_sandbox.testing import SandboxServer
from tests.dag_run import exported_records
from tests.scheduler.harness import AirflowDeployment, scheduler_marks

pytestmark = scheduler_marks(480)

DAGS = Path(__file__).resolve().parents[2] / "dags"
CONTACTS = 30


@pytest.fixture(scope="module")
def agency() -> Iterator[SandboxServer]:
    with SandboxServer(contacts=CONTACTS, locations=3, seed=41) as server:
        yield server


def run_dag(airflow: AirflowDeployment, dag_id: str, when: datetime) -> dict[str, str]:
    """Trigger ``dag_id`` for ``when`` and wait for its end; the state of each mapped task by its location."""
    run_id = f"lifecycle_{when:%Y%m%dT%H%M%S}"
    airflow.trigger_run(dag_id, run_id, when, (when - timedelta(hours=1), when))
    state = airflow.wait_for_run(dag_id, run_id, 240)["state"]
    path = f"dags/{dag_id}/dagRuns/{run_id}"
    instances: list[dict[str, Any]] = airflow.api("GET", f"{path}/taskInstances")["task_instances"]
    mapped = {ti["rendered_map_index"]: ti["state"] for ti in instances if ti["map_index"] >= 0}
    assert state == "success", instances
    return mapped


def test_installs_and_uninstalls_reach_the_dags_without_a_configuration_change(
    agency: SandboxServer, tmp_path: Path
) -> None:
    active, paused, later = agency.location_ids
    agency.set_active(paused, False)
    agency.uninstall(later)
    conn = agency.airflow_connection(0, agency=True)
    del conn["extra"]["location_id"]
    out = tmp_path / "exports"
    env = {"AIRFLOW_CONN_GHL_DEFAULT": json.dumps(conn), "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{out}"}
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with AirflowDeployment(tmp_path / "airflow-home", DAGS, env) as airflow, airflow.logs_on_failure():
        for dag_id in ("ghl_new_locations", "ghl_full_export"):
            airflow.unpause_when_parsed(dag_id)

        # The app's locations: the active one exported, the deactivated one skipped (with a warning).
        assert run_dag(airflow, "ghl_new_locations", now - timedelta(hours=3)) == {
            active: "success",
            paused: "skipped",
        }
        # The app is installed in the third location: the next run finds it and exports it alone.
        agency.install(later)
        assert run_dag(airflow, "ghl_new_locations", now - timedelta(hours=2)) == {
            paused: "skipped",
            later: "success",
        }
        day = (now - timedelta(hours=2)).strftime("%Y-%m-%d")
        assert len(exported_records(out / later / "contacts" / "first" / day)) == CONTACTS
        # The first location uninstalls the app: the weekly export leaves it out, exports the others.
        agency.uninstall(active)
        assert run_dag(airflow, "ghl_full_export", now - timedelta(hours=1)) == {
            paused: "skipped",
            later: "success",
        }
    assert not (out / active / "contacts" / "full").exists()
    assert (out / later / "contacts" / "full").is_dir()
