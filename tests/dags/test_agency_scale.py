"""An agency install of the Marketplace app with hundreds of locations: the shipped ``ghl_full_export`` finds them
itself (no ``ghl_location_ids``), exports each installed one exactly once and skips the uninstalled one, at the
request floor: the discovery pages, one location-token mint per location, and the export floor."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ghl_sandbox.testing import SandboxServer
from tests.dag_run import announced_outputs, exported_records

DAGS = Path(__file__).resolve().parents[2] / "dags"
LOCATIONS = 300
CONTACTS = 200


@pytest.fixture(scope="module")
def agency() -> Iterator[SandboxServer]:
    """300 locations of 200 contacts, all with the app installed (contacts are made on first read)."""
    with SandboxServer(contacts=CONTACTS, locations=LOCATIONS, seed=22) as server:
        yield server


def test_full_export_discovers_every_installed_location_and_skips_the_uninstalled(
    agency: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    gone = agency.location_ids[7]
    agency.uninstall(gone)
    agency.clear_stats()
    conn = agency.airflow_connection(0, agency=True, token_variable=f"ghl_oauth_agency_{tmp_path.name}")
    del conn["extra"]["location_id"]  # one connection for the whole agency: no location of its own
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(conn),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path}",
    }
    env.pop("AIRFLOW_VAR_GHL_LOCATION_IDS", None)
    day = datetime(2026, 12, 6, tzinfo=UTC)

    run = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "ghl_full_export", day.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    installed = [loc for loc in agency.location_ids if loc != gone]
    exported = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert exported == sorted(installed)  # every installed location, and not the uninstalled one
    announced = announced_outputs(airflow_db)
    for location in installed[::37]:  # a sample read back whole: exactly its contacts, each once
        full = tmp_path / location / "contacts" / "full" / "2026-12-06"
        ids = [record["id"] for record in exported_records(full)]
        assert sorted(ids) == sorted(agency.contact_ids(location))
        assert announced[f"file://{full}"] == f"ghl/{location}/ghl_full_export.full_export"
    for location in installed:
        manifest = json.loads((tmp_path / location / "contacts" / "full" / "2026-12-06" / "_manifest.json").read_text())
        assert (manifest["location_id"], manifest["records"], manifest["requests"]) == (location, CONTACTS, 2)

    # The floor. Discovery: ceil(299 / 100) pages of GET /oauth/installedLocations on the agency token, plus
    # the one refresh that bootstraps the agency's token set. Per installed location: one mint of its token,
    # one page of the contact search (200 contacts < 500 a page) and the custom-field names. Nothing for the
    # uninstalled location, and nothing else.
    routes = agency.stats()["requests_by_route"]
    n = len(installed)
    assert routes == {
        "POST /oauth/token": 1,
        "GET /oauth/installedLocations": math.ceil(n / 100),
        "POST /oauth/locationToken": n,
        "POST /contacts/search": n,
        "GET /locations/{locationId}/customFields": n,
    }
