"""Weekly full export of every contact of every configured GHL location (one mapped task per location)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_ghl.operators.export import GHLExportContactsOperator

from ghl_alerts import alert_callbacks
from ghl_layout import FULL_EXPORT, LOCATION
from ghl_locations import configuration_doc, locations

DOC_MD = f"""
### GHL full contacts export

Exports **every contact** of every configured HighLevel location, one mapped task per location, to

`{FULL_EXPORT.describe()}` (gzip JSON Lines part files plus `_manifest.json`,
written last as the commit marker).

{configuration_doc()}
The location list is read at run time by the `locations` task. Each location has its own rate budget
(GHL limits per token and location), so the mapped exports run side by side. A retried export resumes from
its checkpoint; an output that already has a manifest is not exported again.
"""

with DAG(
    dag_id="ghl_full_export",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    # The retry waits [core] default_task_retry_delay (300 s unless the deployment says otherwise): a retried
    # export resumes from its checkpoint, and the pause lets a 429 storm or an outage pass.
    default_args={"retries": 2, **alert_callbacks()},
    tags=["ghl", "export", "example"],
    doc_md=DOC_MD,
) as dag:
    GHLExportContactsOperator.partial(
        task_id="full_export",
        # Each location brings its connection id; LOCATION is this mapped task's location_id.
        output_path=FULL_EXPORT.template(),
        compression="gzip",
        map_index_template=LOCATION,
    ).expand_kwargs(locations())
