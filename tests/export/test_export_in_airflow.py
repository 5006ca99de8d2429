"""Both export operators in a real Airflow run (``dag.test()`` on the migrated test DB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ghl_sandbox.testing import SandboxServer
from tests.dag_run import announced_outputs, exported_records, run_dag_file

DAGS = Path(__file__).with_name("dags")


def test_exports_run_in_airflow_and_emit_asset_events(sandbox: SandboxServer, airflow_db: Path, tmp_path: Path) -> None:
    sandbox.reset()
    location = sandbox.info["locations"][0]
    changed = sandbox.touch_contacts(location["id"], count=12)
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    # A manual run's logical date ends its hourly data interval: [hour, hour + 1h) holds the changes just made.
    end = hour + timedelta(hours=1)
    run_dag_file(
        DAGS / "ghl_export_in_airflow.py",
        "ghl_airflow_export",
        sandbox.airflow_connection(0),
        f"file://{tmp_path}",
        end.isoformat(),
    )

    full = tmp_path / "contacts" / "full" / end.strftime("%Y-%m-%d")
    ids = [record["id"] for record in exported_records(full)]
    assert sorted(ids) == sorted(sandbox.contact_ids(location["id"]))

    enrichment = tmp_path / "enrichment" / f"{hour:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
    enriched = json.loads((enrichment / "_manifest.json").read_text())
    assert enriched["window"]["updated_since"].startswith(hour.strftime("%Y-%m-%dT%H:00:00"))
    contacts = [
        json.loads(line)["id"]
        for f in enriched["datasets"]["contacts"]["files"]
        for line in (enrichment / f).read_text().splitlines()
    ]
    assert set(changed) <= set(contacts)

    # Each committed output is an event of its task's asset for the location, the directory in its extra.
    announced = {
        path: name for path, name in announced_outputs(airflow_db).items() if path.startswith(f"file://{tmp_path}")
    }
    assert announced == {
        f"file://{full}": f"ghl/{location['id']}/ghl_export_in_airflow.full_export",
        f"file://{enrichment}": f"ghl/{location['id']}/ghl_export_in_airflow.enrich",
    }
