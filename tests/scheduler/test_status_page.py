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
        "AIRFLOW_VAR_GHL_LOCATION_IDS": json.dumps({loc: f"ghl_loc_{i}" for i, loc in enumerate(sandbox.location_ids)}),
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


def run_to_success(airflow: AirflowDeployment, dag_id: str, run_id: str, start: datetime, end: datetime) -> None:
    airflow.trigger_run(dag_id, run_id, start, (start, end))
    final = airflow.wait_for_run(dag_id, run_id, 240)
    tis = airflow.api("GET", f"dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    assert final["state"] == "success", [(t["task_id"], t["map_index"], t["state"]) for t in tis]


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
        for location in locations:
            sandbox.touch_contacts(location, count=TOUCHED)
        end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        day = end - timedelta(days=1)
        run_to_success(airflow, EXPORT, "status_export", day, day)
        run_to_success(airflow, ENRICH, "status_enrich", end - timedelta(hours=1), end)
        inbox = open_inbox(inbox_url)
        try:
            for location in locations:
                for contact in sandbox.contact_ids(location)[:APPLIED]:
                    body = event(location, id=contact)
                    inbox.store(location, body["webhookId"], body["type"], body["timestamp"], body)
            run_to_success(airflow, WEBHOOKS, "status_webhooks", end, end)
            stored_at = time.time()
            for location in locations:
                for contact in sandbox.contact_ids(location)[APPLIED : APPLIED + WAITING]:
                    body = event(location, id=contact)
                    inbox.store(location, body["webhookId"], body["type"], body["timestamp"], body)
        finally:
            inbox.close()

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
            assert status["last_error"] is None

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
