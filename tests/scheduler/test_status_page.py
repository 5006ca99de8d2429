"""The GHL status page, in the real api-server and in a real browser.

The example DAGs run under Airflow's scheduler for two locations: a full export, an enrichment window and a
webhook batch (events stored in the inbox, applied by ``ghl_webhook_sync``); more events then wait in the inbox.
The page's JSON must hold, per location, the figures the manifests and the inbox hold; both routes answer 401
to an anonymous caller and 403 to a viewer. Headless Chromium (Debian's ``chromium``, driven by Playwright) opens
the UI's "GHL" view logged in, and the iframed page shows both locations and their figures; its screenshot is
kept in ``test-artifacts/status-page.png``.

Skip it locally with ``GHL_SKIP_SCHEDULER_TESTS=1``; without Chromium the browser part skips, except in CI.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_ghl.webhooks.inbox import open_inbox
from ghl_sandbox.testing import SandboxServer
from tests.scheduler.harness import VIEWER, AirflowDeployment, scheduler_marks
from tests.services import service_missing
from tests.webhooks.signing import event

pytestmark = scheduler_marks(600)

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
ARTIFACTS = REPO / "test-artifacts"
EXPORT, ENRICH, WEBHOOKS = "ghl_full_export", "ghl_incremental_enrichment", "ghl_webhook_sync"
TOUCHED = 4
APPLIED, WAITING = 3, 2


@pytest.fixture
def deployment(sandbox: SandboxServer, tmp_path: Path) -> Iterator[AirflowDeployment]:
    sandbox.reset(anchor=(datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).isoformat())
    home = tmp_path / "airflow-home"
    env = {
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path / 'exports'}",
        # A revoked token for location 1: its first export fails (and is retried at once).
        "AIRFLOW_CONN_GHL_REVOKED": json.dumps(sandbox.airflow_connection(1, private_token="pit-revoked")),
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "0",
        "AIRFLOW__GHL_WEBHOOKS__INBOX": f"sqlite:///{home / 'ghl_webhooks.db'}",
        "AIRFLOW__GHL_WEBHOOKS__LOCATIONS": ",".join(sandbox.location_ids),
    }
    for i in range(len(sandbox.location_ids)):
        env[f"AIRFLOW_CONN_GHL_LOC_{i}"] = json.dumps(sandbox.airflow_connection(i))
    try:
        with AirflowDeployment(home, DAGS, env) as airflow:
            yield airflow
    finally:
        sandbox.reset()


def run_to_end(
    airflow: AirflowDeployment, dag_id: str, run_id: str, start: datetime, end: datetime, state: str = "success"
) -> None:
    airflow.trigger_run(dag_id, run_id, start, (start, end))
    final = airflow.wait_for_run(dag_id, run_id, 240)
    tis = airflow.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    assert final["state"] == state, [(t["task_id"], t["map_index"], t["state"]) for t in tis]


def manifest_of_batch(root: Path, location: str) -> dict[str, Any]:
    (batch,) = (root / location / "webhooks").iterdir()
    return manifest(batch)


def manifest(folder: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((folder / "_manifest.json").read_text())
    return found


def test_status_page_shows_each_location_from_what_was_recorded(
    deployment: AirflowDeployment, sandbox: SandboxServer, tmp_path: Path
) -> None:
    airflow = deployment
    locations = sandbox.location_ids
    root = tmp_path / "exports"
    inbox_url = airflow.env["AIRFLOW__GHL_WEBHOOKS__INBOX"]
    with airflow.logs_on_failure():
        for dag_id in (EXPORT, ENRICH, WEBHOOKS):
            airflow.unpause_when_parsed(dag_id)
        # In the metadata DB, not the environment: changed below.
        mapping = {loc: f"ghl_loc_{i}" for i, loc in enumerate(locations)}
        value = json.dumps({**mapping, locations[1]: "ghl_revoked"})
        airflow.api("POST", "variables", json={"key": "ghl_location_ids", "value": value})
        first_day = datetime(2026, 11, 1, tzinfo=UTC)
        sandbox.clear_stats()
        run_to_end(airflow, EXPORT, "status_export_revoked", first_day, first_day, state="failed")
        airflow.api(
            "PATCH", "variables/ghl_location_ids", json={"key": "ghl_location_ids", "value": json.dumps(mapping)}
        )
        for location in locations:
            sandbox.touch_contacts(location, count=TOUCHED)
        end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        day = end - timedelta(days=1)
        run_to_end(airflow, EXPORT, "status_export", day, day)
        run_to_end(airflow, ENRICH, "status_enrich", end - timedelta(hours=1), end)
        inbox = open_inbox(inbox_url)
        try:
            for location in locations:
                for contact in sandbox.contact_ids(location)[:APPLIED]:
                    body = event(location, id=contact)
                    inbox.store(location, body["webhookId"], body["type"], body["timestamp"], body)
            run_to_end(airflow, WEBHOOKS, "status_webhooks", end, end)
            stored_at = time.time()
            for location in locations:
                for contact in sandbox.contact_ids(location)[APPLIED : APPLIED + WAITING]:
                    body = event(location, id=contact)
                    inbox.store(location, body["webhookId"], body["type"], body["timestamp"], body)
            inbox.set_installed(locations[1], True)  # as an INSTALL webhook does
        finally:
            inbox.close()
        requests_sent = sandbox.stats()["requests_total"]
        # Location 0 has an installation of its own (a token set in its Variable, as the install flow stores it).
        expires_at = time.time() + 3600
        secret_set = {"access_token": "secret-access", "refresh_token": "secret-refresh", "expires_at": expires_at}
        airflow.api(
            "POST", "variables", json={"key": f"ghl_oauth_x__location_{locations[0]}", "value": json.dumps(secret_set)}
        )

        # -- the JSON, as a logged-in user ------------------------------------------------------------------
        report = airflow.session.get(f"{airflow.base_url}/ghl-status/api/status", timeout=30).json()
        by_location = {loc["location_id"]: loc for loc in report["locations"]}
        assert sorted(by_location) == sorted(locations)
        for location in locations:
            status = by_location[location]
            export = manifest(root / location / "contacts" / "full" / f"{day:%Y-%m-%d}")
            assert status["outputs"]["contacts"]["counts"]["contacts"] == export["datasets"]["contacts"]["records"]
            assert status["outputs"]["contacts"]["dag_id"] == EXPORT
            window = manifest(
                root / location / "enrichment" / f"{end - timedelta(hours=1):%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
            )
            assert status["outputs"]["enrichment"]["counts"]["contacts"] == window["datasets"]["contacts"]["records"]
            assert window["datasets"]["contacts"]["records"] == TOUCHED
            assert status["outputs"]["webhooks"]["counts"]["events"] == APPLIED
            assert status["inbox_depth"] == WAITING
            assert 0 <= status["webhook_lag_seconds"] <= time.time() - stored_at + 5
            # Requests per hour: what the location's export, enrichment and apply recorded, each as its manifest.
            sent = [export["requests"], window["requests"], manifest_of_batch(root, location)["requests"]]
            if location == locations[0]:  # its first export too; location 1's failed there
                sent.append(manifest(root / location / "contacts" / "full" / f"{first_day:%Y-%m-%d}")["requests"])
                assert status["requests_24h"] == sum(sent)
            else:  # and its last failed try (Airflow clears a task's XComs when it retries: the earlier ones' go)
                assert status["requests_24h"] >= sum(sent) + 1
            assert len(status["hourly"]) == 24 and sum(h[1] for h in status["hourly"]) == status["requests_24h"]
            assert status["daily_limit"] == 200_000
        # Every request the sandbox counted is in a task's record, but the probe's one per location (it has none)
        # and those of the failed tries that were retried.
        assert sum(by_location[loc]["requests_24h"] for loc in locations) <= requests_sent - len(locations)
        # Location 0's daily budget, as its last answer gave it: every request of its token since the reset.
        assert 200_000 - by_location[locations[0]]["daily_remaining"] == by_location[locations[0]]["requests_24h"] + 1
        assert by_location[locations[0]]["token_expires_at"] == datetime.fromtimestamp(expires_at, UTC).isoformat()
        assert by_location[locations[1]]["token_expires_at"] is None
        assert [by_location[loc]["webhook_installed"] for loc in locations] == [False, True]
        # The failed export of location 1 (before its token was fixed) is its last error, with its message.
        assert by_location[locations[0]]["last_error"] is None
        error = by_location[locations[1]]["last_error"]
        assert (error["dag_id"], error["task_id"]) == (EXPORT, "full_export")
        assert error["message"].startswith("GHLAuthError: "), error

        # -- nobody logged in, or a viewer (who may not read connections): refused ----------------------------
        viewer = {"Authorization": f"Bearer {airflow.token(VIEWER, airflow.viewer_password)}"}
        for path in ("/ghl-status/api/status", "/ghl-status/"):
            assert requests.get(f"{airflow.base_url}{path}", timeout=30).status_code == 401
            assert requests.get(f"{airflow.base_url}{path}", headers=viewer, timeout=30).status_code == 403

        # -- the UI's "GHL" view in a real browser ----------------------------------------------------------
        text = browse_status_view(airflow)
        for location in locations:
            assert location in text
            contacts = by_location[location]["outputs"]["contacts"]["counts"]["contacts"]
            assert f"contacts {contacts:,}" in text
        assert f"events {APPLIED}" in text
        assert "INSTALL webhook received" in text and "own token set, expires" in text
        assert error["message"][:40] in text
        assert "secret-access" not in text and "secret-refresh" not in json.dumps(report)


def browse_status_view(airflow: AirflowDeployment) -> str:
    """Log in through Airflow's login form in headless Chromium, open the "GHL" view from the Plugins menu's
    route, screenshot it, and return the text of the status page in its frame."""
    chromium = shutil.which("chromium")
    if chromium is None:
        service_missing("chromium not found: install Debian's 'chromium' package (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    from tests.scheduler.harness import USER

    ARTIFACTS.mkdir(exist_ok=True)
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{airflow.base_url}/auth/login/", wait_until="networkidle")
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", airflow.password)
            page.keyboard.press("Enter")
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)
            page.goto(f"{airflow.base_url}/plugin/ghl", wait_until="networkidle")
            frame = page.frame_locator("iframe").first
            frame.locator("table tbody tr").first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
            return str(frame.locator("body").inner_text())
        finally:
            browser.close()
