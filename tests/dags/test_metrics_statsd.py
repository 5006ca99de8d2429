"""The provider's metrics through Airflow's own StatsD client: ``ghl_full_export`` under ``airflow dags test`` with
``[metrics] statsd_on`` pointed at a UDP socket this test holds (InfluxDB-style tags, so the tags arrive too).
The ``ghl.`` counters must equal what the run's manifest and the sandbox say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from ghl_sandbox.testing import SandboxServer
from tests.statsd import StatsdListener, parse, statsd_env

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_a_full_export_sends_its_requests_budget_and_records_as_ghl_metrics(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    sandbox.reset()
    location = sandbox.location_ids[0]
    listener = StatsdListener()
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(sandbox.airflow_connection(0)),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path}",
        "AIRFLOW_VAR_GHL_LOCATION_IDS": json.dumps([location]),
        **statsd_env(listener),
    }
    sandbox.clear_stats()
    try:
        day = datetime(2026, 12, 1, tzinfo=UTC).isoformat()
        run = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", "ghl_full_export", day],
            env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    finally:
        listener.stop()
    metrics = parse(listener.lines, "airflow.ghl.")
    manifest = json.loads((tmp_path / location / "contacts" / "full" / "2026-12-01" / "_manifest.json").read_text())
    served = sandbox.stats()

    requests = metrics["requests"]
    assert sum(value for _, value, _ in requests) == manifest["requests"] == served["requests_total"]
    assert all(kind == "c" for _, _, kind in requests)
    assert {tags["location_id"] for tags, _, _ in requests} == {location}
    assert {tags["status"] for tags, _, _ in requests} == {"2xx"}
    assert {tags["operation"] for tags, _, _ in requests} >= {"search_contacts"}
    assert len(metrics["request_latency"]) == manifest["requests"]
    assert all(kind == "ms" and value >= 0 for _, value, kind in metrics["request_latency"])
    # The budget figures of the last answers, as gauges of the location.
    daily = [value for tags, value, kind in metrics["budget.daily_remaining"] if tags == {"location_id": location}]
    assert daily and all(0 < value <= 200_000 for value in daily) and metrics["budget.burst_remaining"]
    records = [(tags, value) for tags, value, _ in metrics["records"]]
    assert records == [({"location_id": location, "dataset": "contacts"}, float(manifest["records"]))]
    assert "token_refreshes" not in metrics  # a Private Integration Token never refreshes
    # No tag value is unbounded: no contact id appears anywhere in what was sent.
    contacts = set(sandbox.contact_ids(location))
    assert not [line for line in listener.lines if any(contact in line for contact in contacts)]


def test_a_committed_write_back_counts_its_actions_and_a_dry_run_nothing(tmp_path: Path) -> None:
    """``OutputDirectory.write_manifest`` of a write-back's results (in a process with StatsD on): one
    ``ghl.writeback.actions`` per outcome; the manifest of a dry-run plan sends none."""
    listener = StatsdListener()
    env = {
        **os.environ,
        **statsd_env(listener),
    }
    counts = {"rows": 50, "create": 4, "update": 8, "skip": 37, "reject": 1, "error": 0, "failed": 1, "writes": 20}
    code = (
        "import json, sys\n"
        "from airflow.sdk import ObjectStoragePath\n"
        "from airflow_provider_ghl.outputs.directory import OutputDirectory\n"
        "counts = json.loads(sys.argv[2])\n"
        "for name, dry in (('results', False), ('plan', True)):\n"
        "    manifest = {'dataset': 'writeback', 'location_id': 'loc1', 'dry_run': dry, 'counts': counts}\n"
        "    OutputDirectory(ObjectStoragePath(sys.argv[1] + '/' + name)).write_manifest(manifest)\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code, f"file://{tmp_path}", json.dumps(counts)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        listener.stop()
    actions = parse(listener.lines, "airflow.ghl.")["writeback.actions"]
    sent = {tags["outcome"]: value for tags, value, _ in actions if tags["location_id"] == "loc1"}
    assert sent == {"create": 4, "update": 8, "skip": 37, "reject": 1}  # the zero "error" is not sent
    assert len(actions) == 4  # the dry run's plan added none
