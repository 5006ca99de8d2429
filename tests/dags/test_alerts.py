"""Each alert condition, produced against the sandbox, reaches the notifier once with its message.

The example DAGs (and, for the token refresh, a test DAG without retries) run under ``airflow dags test``; the
``ghl_alert_send`` Variable names ``tests.alert_sink.record``, which appends each message to a file the test
reads. Conditions: the daily budget at its reserve, a refused refresh token, an uninstalled location, webhook
events waiting (as behind a paused ``ghl_webhook_sync``), a location never exported, custom fields changed.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airflow_provider_ghl.webhooks.inbox import open_inbox
from ghl_sandbox.testing import SandboxServer
from tests.alert_sink import messages
from tests.dag_run import dags_test
from tests.webhooks.signing import event

REPO = Path(__file__).resolve().parents[2]
TEST_DAGS = Path(__file__).with_name("alerting")


def alert_env(sink: Path) -> dict[str, str]:
    """What sends the example DAGs' alerts to ``sink``."""
    return {
        "AIRFLOW_VAR_GHL_ALERT_SEND": "tests.alert_sink.record",
        "GHL_ALERT_SINK": str(sink),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }


def test_the_daily_budget_at_its_reserve_is_one_alert(sandbox: SandboxServer, airflow_db: Path, tmp_path: Path) -> None:
    sandbox.reset()
    location = sandbox.location_ids[0]
    sink = tmp_path / "alerts.jsonl"
    try:
        # 51 a day, 50 kept in reserve: after the first answer the budget is at its reserve, and the next request
        # is not sent.
        sandbox.set_limits(daily_limit=51)
        # A budget directory of its own: the spent daily figure must not hold back the other tests' requests.
        conn = sandbox.airflow_connection(0, budget_dir=str(tmp_path / "budgets"))
        output = dags_test(
            sandbox, tmp_path / "out", "ghl_full_export", datetime(2026, 11, 2, tzinfo=UTC), conn=conn, fails=True,
            AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY="0", **alert_env(sink),
        )  # fmt: skip
    finally:
        sandbox.reset()
    assert "GHLDailyBudgetExhausted" in output, output[-3000:]
    # Three tries (retries=2), one alert: the task's final failure.
    (message,) = messages(sink)
    assert message.startswith(f"GHL daily budget of location {location} reached its reserve: "), message
    assert "reserve 50; ghl_full_export.full_export stopped" in message and "wait_for_daily_reset=True" in message


def test_a_refused_refresh_token_is_one_alert(sandbox: SandboxServer, airflow_db: Path, tmp_path: Path) -> None:
    sandbox.reset()
    sink = tmp_path / "alerts.jsonl"
    # A refresh token GHL does not know (revoked): invalid_grant, and no newer set appears in the Variable.
    conn = sandbox.airflow_connection(
        0, oauth=True, refresh_token="revoked-refresh-token", token_variable=f"ghl_oauth_alert_{tmp_path.name}"
    )
    dags_test(
        sandbox, tmp_path / "out", "ghl_token_alert", datetime.now(UTC).replace(microsecond=0), conn=conn, fails=True,
        AIRFLOW__CORE__DAGS_FOLDER=str(TEST_DAGS), **alert_env(sink),
    )  # fmt: skip
    (message,) = messages(sink)
    assert message.startswith("GHL refused the credentials of ghl_token_alert.refresh_token: "), message
    assert "invalid_grant" in message and "re-authorized" in message


def test_an_uninstalled_location_is_one_alert(sandbox: SandboxServer, airflow_db: Path, tmp_path: Path) -> None:
    sandbox.reset()
    first, second = sandbox.location_ids
    sink = tmp_path / "alerts.jsonl"
    agency = sandbox.airflow_connection(0, agency=True, token_variable=f"ghl_oauth_gone_{tmp_path.name}")
    sandbox.uninstall(second)
    try:
        dags_test(
            sandbox, tmp_path / "out", "ghl_full_export", datetime(2026, 11, 3, tzinfo=UTC), conn=agency,
            AIRFLOW_VAR_GHL_LOCATION_IDS=json.dumps([first, second]), **alert_env(sink),
        )  # fmt: skip
    finally:
        sandbox.reset()
    (message,) = messages(sink)  # the skipped location; the one that exported tells nothing
    assert message.startswith(f"GHL app no longer installed in location {second}: "), message
    assert "ghl_full_export.full_export skipped it" in message


def test_the_health_check_alerts_on_lag_missing_exports_and_schema_drift(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    sandbox.reset()
    first, second = sandbox.location_ids
    sink = tmp_path / "alerts.jsonl"
    out = tmp_path / "out"
    inbox_url = f"sqlite:///{tmp_path / 'inbox.db'}"
    both = {"AIRFLOW_VAR_GHL_LOCATION_IDS": json.dumps({first: "ghl_default", second: "ghl_second"}),
            "AIRFLOW_CONN_GHL_SECOND": json.dumps(sandbox.airflow_connection(1))}  # fmt: skip
    # Location 0 is exported twice; between the two its recorded custom fields are changed, so the second export
    # finds one field added and one retyped. Location 1 is never exported.
    days = [datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)]
    dags_test(sandbox, out, "ghl_full_export", days[0], **alert_env(sink))
    manifest_path = out / first / "contacts" / "full" / "2026-11-09" / "_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    fields = dict(manifest["custom_fields"])
    added, retyped = sorted(fields)[:2]
    del fields[added]
    fields[retyped] = "LARGE_TEXT" if fields[retyped] != "LARGE_TEXT" else "NUMERICAL"
    manifest_path.write_text(json.dumps({**manifest, "custom_fields": fields}))
    checked_from = datetime.now(UTC) - timedelta(minutes=1)
    dags_test(sandbox, out, "ghl_full_export", days[1], **alert_env(sink))
    # Webhook events wait for location 0, as when ghl_webhook_sync is paused.
    inbox = open_inbox(inbox_url)
    try:
        for contact in sandbox.contact_ids(first)[:3]:
            body = event(first, id=contact)
            inbox.store(first, body["webhookId"], body["type"], body["timestamp"], body)
    finally:
        inbox.close()
    time.sleep(2)
    assert messages(sink) == []  # the exports succeeded: nothing told so far

    dags_test(
        sandbox, out, "ghl_health", checked_from, fails=True, **both, **alert_env(sink),
        AIRFLOW__GHL_WEBHOOKS__INBOX=inbox_url, AIRFLOW_VAR_GHL_MAX_WEBHOOK_LAG_SECONDS="1",
    )  # fmt: skip
    found = messages(sink)
    assert len(found) == 3, found
    drift, overdue, lag = found
    assert drift.startswith(f"GHL custom fields of location {first} changed (export of "), drift
    assert f"added {added}" in drift and f"retyped {retyped}" in drift
    assert overdue == f"GHL location {second} has no committed full export (ghl_full_export.full_export) yet."
    assert lag.startswith(f"GHL webhooks of location {first} are not being applied: 3 events wait, the oldest for ")
    assert "is ghl_webhook_sync paused or failing?" in lag
