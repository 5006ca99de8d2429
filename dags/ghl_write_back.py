"""Write-back: a CSV of contacts in object storage, planned by a dry run, then applied to each GHL location."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task_group

from airflow_provider_ghl.operators.writeback import WRITEBACK_ASSET_ALIAS, GHLWriteBackContactsOperator

from ghl_alerts import alert_callbacks
from ghl_layout import LOCATION, WRITEBACK_INBOX, WRITEBACK_PLAN, WRITEBACK_RESULTS
from ghl_locations import configuration_doc, locations

#: The file each location's run applies.
INPUT_FILE = "contacts.csv"
#: Failed (rejected) share of the rows the plan tolerates; above it the plan fails and nothing is applied.
MAX_FAILED_RATIO = 0.02

DOC_MD = f"""
### GHL write-back: records applied to GHL

For every configured HighLevel location (one mapped task group per location), applies the records of

`{WRITEBACK_INBOX.describe()}{INPUT_FILE}`

(CSV with GHL's field names: `email`, `phone`, `firstName`, `tags` joined with `|`,
`customFields.<key>` columns, optionally `id`, `tasks` and `notes` as JSON) in two steps:

1. **plan**, a dry run: each row is matched (id, then GHL's duplicate lookup by e-mail, then phone) and compared
   with its contact; the plan (create / update with the changed fields / skip / reject, per row) lands in
   `{WRITEBACK_PLAN.describe()}`. No write. More than {MAX_FAILED_RATIO:.0%} rejected rows fail it, and nothing is
   applied.
2. **apply**: the same rows, written: only what changed, tags through the tag endpoints, tasks and notes once.
   It is bound to the plan: if the file changed since it was planned (its SHA-256), the apply fails before any
   request, and the DAG must plan it again.
   Results, the failed rows as they came (`dead_letter-*`) and `_manifest.json` land in
   `{WRITEBACK_RESULTS.describe()}`.

Both directories are announced on the `{WRITEBACK_ASSET_ALIAS}` asset alias (`output_path` in each
event's extra). A retried apply resumes after its last committed row and writes nothing twice; applying the
same file again writes nothing.

{configuration_doc()}
"""


@task_group
def write_back_location(location_id: str, ghl_conn_id: str) -> None:
    """Plan, then apply, one location's file."""
    common: dict[str, Any] = {
        "location_id": location_id,
        "ghl_conn_id": ghl_conn_id,
        "input_path": f"{WRITEBACK_INBOX.template()}/{INPUT_FILE}",
        "max_failed_ratio": MAX_FAILED_RATIO,
    }
    plan = GHLWriteBackContactsOperator(
        task_id="plan", dry_run=True, results_path=WRITEBACK_PLAN.template(), map_index_template=LOCATION, **common
    )
    # Bound to the plan: an input changed since it was planned (reviewed) fails the apply before any request.
    apply = GHLWriteBackContactsOperator(
        task_id="apply",
        results_path=WRITEBACK_RESULTS.template(),
        plan_path=WRITEBACK_PLAN.template(),
        map_index_template=LOCATION,
        **common,
    )
    plan >> apply


with DAG(
    dag_id="ghl_write_back",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), **alert_callbacks()},
    tags=["ghl", "writeback", "example"],
    doc_md=DOC_MD,
) as dag:
    write_back_location.expand_kwargs(locations())
