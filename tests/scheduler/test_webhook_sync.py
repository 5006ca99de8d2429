"""``ghl_webhook_sync`` end to end under Airflow's real scheduler, triggerer, dag-processor and api-server.

The receiver is the provider's plugin, mounted on the api-server: the sandbox delivers its signed webhooks to
``{api-server}/ghl/webhooks`` with duplicates, reordering and delays injected. 200 changes are made in the
sandbox (contact creates, updates, tag changes, deletes, notes, tasks) through its admin route, which is not
an API request: every API request the sandbox counts is the DAG's own. The inbox Asset's watcher starts DAG
runs that drain and apply the inbox; the DAG is paused for part of the burst (no run starts, the events wait
in the inbox) and unpaused (they are applied). The batches together must hold exactly the final state of every
changed record, as the sandbox has it, and a tombstone for every deleted contact, at <= 0.2 requests per event.

Skip it locally with ``GHL_SKIP_SCHEDULER_TESTS=1`` or ``-m "not scheduler"``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.webhooks.inbox import open_inbox
from ghl_sandbox.testing import SandboxServer
from tests.scheduler.harness import AirflowDeployment, scheduler_marks, wait_until
from tests.statsd import StatsdListener, parse, statsd_env
from tests.webhooks.burst import Burst, applied_state, assert_final_state, committed_manifests, event_count

pytestmark = scheduler_marks(300)

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "ghl_webhook_sync.py"
DAG_ID = "ghl_webhook_sync"
#: The most API requests per applied event (the issue's bound).
MAX_REQUESTS_PER_EVENT = 0.2


@pytest.fixture
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    yield listener
    listener.stop()


@pytest.fixture
def deployment(sandbox: SandboxServer, statsd: StatsdListener, tmp_path: Path) -> Iterator[AirflowDeployment]:
    sandbox.reset()
    home = tmp_path / "airflow-home"
    dags = tmp_path / "dags"
    dags.mkdir()
    # Only this DAG (and the helpers it imports from its folder): the dag-processor re-parses often (below), and the
    # other examples would cost CPU for nothing.
    for name in (DAG_FILE.name, "ghl_layout.py", "ghl_locations.py", "ghl_alerts.py"):
        (dags / name).symlink_to(DAG_FILE.with_name(name))
    env = {
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(sandbox.airflow_connection(0)),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path / 'exports'}",
        "AIRFLOW_VAR_GHL_LOCATION_IDS": json.dumps([sandbox.location_ids[0]]),
        "AIRFLOW__GHL_WEBHOOKS__ENABLED": "True",
        "AIRFLOW__GHL_WEBHOOKS__INBOX": f"sqlite:///{home / 'ghl_webhooks.db'}",
        "AIRFLOW__GHL_WEBHOOKS__PUBLIC_KEY": sandbox.webhook_public_key,
        "AIRFLOW__GHL_WEBHOOKS__LOCATIONS": ",".join(sandbox.location_ids),
        # Watchers follow pausing and unpausing when the DAG file is parsed next: parse every few seconds.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3",
        # The harness turns the scheduler's run creation off (only runs a test triggers); asset-triggered runs
        # are created by that same step. The DAG has no time schedule, so nothing else starts.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
        # The trigger's inbox gauges (and Airflow's own metrics) to the test's StatsD socket.
        **statsd_env(statsd),
    }
    # The receiver is mounted by the package's airflow.plugins entry point alone (make test installs it).
    try:
        with AirflowDeployment(home, dags, env) as airflow:
            yield airflow
    finally:
        sandbox.reset()  # webhooks off, the session's start-up data for the tests after this one


def watchers(airflow: AirflowDeployment) -> int:
    with sqlite3.connect(airflow.home / "airflow.db") as con:
        return int(con.execute("select count(*) from asset_watcher").fetchone()[0])


def triggers_stopped(airflow: AirflowDeployment) -> int:
    """How many triggers the triggerer has ended so far (its log's ``trigger completed`` lines)."""
    return airflow.log_path("triggerer").read_text(errors="replace").count("trigger completed")


def runs(airflow: AirflowDeployment) -> list[dict[str, Any]]:
    return list(airflow.api("GET", f"dags/{DAG_ID}/dagRuns", params={"limit": 100})["dag_runs"])


def settled(airflow: AirflowDeployment, inbox_url: str) -> bool:
    """Nothing left to apply and no run queued or running."""
    inbox = open_inbox(inbox_url)
    try:
        pending = inbox.pending()
    finally:
        inbox.close()
    return not pending and all(r["state"] in ("success", "failed") for r in runs(airflow))


def test_webhooks_drive_dag_runs_that_apply_every_change_exactly_once(
    deployment: AirflowDeployment, sandbox: SandboxServer, statsd: StatsdListener, tmp_path: Path
) -> None:
    airflow = deployment
    location = sandbox.location_ids[0]
    inbox_url = airflow.env["AIRFLOW__GHL_WEBHOOKS__INBOX"]
    folder = tmp_path / "exports" / location / "webhooks"
    with airflow.logs_on_failure():
        wait_until(lambda: airflow.api("GET", f"dags/{DAG_ID}")["dag_id"], 120, f"{DAG_ID} to be parsed")
        assert airflow.api("GET", "importErrors")["total_entries"] == 0
        airflow.api("PATCH", f"dags/{DAG_ID}", json={"is_paused": False})
        wait_until(lambda: watchers(airflow) == 1, 60, "the inbox Asset's watcher")
        sandbox.set_webhooks(
            [f"{airflow.base_url}/ghl/webhooks"],
            duplicate_rate=0.1,
            reorder_rate=0.5,
            delay_ms=20,
            backoff_base_s=0.2,
            backoff_cap_s=2.0,
        )
        sandbox.clear_stats()
        burst = Burst(sandbox, location)

        # Part 1, unpaused: the watcher rings, runs drain the inbox.
        burst.send(120)
        sandbox.wait_webhooks_delivered(timeout=60)
        wait_until(lambda: settled(airflow, inbox_url), 150, "the first part of the burst to be applied")
        first_runs = runs(airflow)
        assert first_runs and all(r["run_type"] == "asset_triggered" for r in first_runs)

        # Part 2, paused: once the dag-processor has taken the watcher down and the triggerer has stopped its
        # trigger, nothing starts a run. The triggerer follows the watcher's removal a moment later: a trigger
        # still running then would ring for part 2 into the paused DAG, a bell Airflow drops (and the trigger only
        # rings again after ``resignal_after``, longer than this test waits).
        stopped = triggers_stopped(airflow)
        airflow.api("PATCH", f"dags/{DAG_ID}", json={"is_paused": True})
        wait_until(lambda: watchers(airflow) == 0, 60, "the watcher to stop while the DAG is paused")
        wait_until(lambda: triggers_stopped(airflow) > stopped, 60, "the triggerer to stop the watcher's trigger")
        burst.send(80)
        delivered = sandbox.wait_webhooks_delivered(timeout=60)
        inbox = open_inbox(inbox_url)
        waiting, backlog = inbox.pending(), inbox.backlog()
        inbox.close()
        assert waiting == {location: delivered["events"]}  # stored, not applied (seq = events made, all here)
        assert 0 < backlog[location].depth < delivered["events"]  # part 2 only: part 1 was applied
        assert len(runs(airflow)) == len(first_runs)

        # Unpaused: the watcher comes back, rings for what waits, a run applies it.
        airflow.api("PATCH", f"dags/{DAG_ID}", json={"is_paused": False})
        wait_until(lambda: settled(airflow, inbox_url) and len(runs(airflow)) > len(first_runs), 150, "the rest")

        all_runs = runs(airflow)
        assert [r["state"] for r in all_runs] == ["success"] * len(all_runs)
        requests = sandbox.stats()["requests_total"]  # the DAG's own: the burst went through admin routes
        stats = sandbox.webhook_stats()

    assert burst.made == 200
    assert stats["duplicates_sent"] > 0 and stats["reordered"] > 0 and stats["given_up"] == 0
    manifests = committed_manifests(folder)
    # Every event made reached the inbox once and was applied once: the batches' seqs tile 1..events.
    assert [(m["first_seq"], m["last_seq"]) for m in manifests] == [
        (prev["last_seq"] + 1 if prev else 1, m["last_seq"])
        for prev, m in zip([None, *manifests], manifests, strict=False)
    ]
    assert manifests[-1]["last_seq"] == event_count(manifests) == stats["events"]
    assert requests == sum(m["requests"] for m in manifests)
    assert requests <= MAX_REQUESTS_PER_EVENT * stats["events"]
    print(f"{len(all_runs)} runs, {len(manifests)} batches, {stats['events']} events, {requests} API requests")
    assert_final_state(applied_state(folder), burst)
    # The trigger's gauges: at its first look after the unpause, the events that waited, and how long.
    gauges = parse(statsd.lines, "airflow.ghl.")
    depths = [value for tags, value, _ in gauges["webhooks.inbox_depth"] if tags.get("location_id") == location]
    assert backlog[location].depth in depths, depths
    lags = [value for tags, value, _ in gauges["webhooks.lag_seconds"] if tags.get("location_id") == location]
    assert lags and max(lags) > 0, lags
