"""Weekly full export of every contact of every configured GHL location (one mapped task per location)."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_ghl.locations import configured_locations
from airflow_provider_ghl.operators.export import GHLExportContactsOperator

#: Connection of every location the ``ghl_location_ids`` Variable does not give its own.
GHL_CONN_ID = "ghl_default"
#: Airflow Variable with the output root URI, and its default (any Airflow object-storage URI).
EXPORT_ROOT = "{{ var.value.get('ghl_export_root', 'file:///tmp/ghl-exports') }}"

DOC_MD = """
### GHL full contacts export

Exports **every contact** of every configured HighLevel location, one mapped task per location, to

`{ghl_export_root}/<location_id>/contacts/full/<ds>/` (gzip JSON Lines part files plus `_manifest.json`,
written last as the commit marker).

Configuration (Airflow Connections and Variables only, nothing is read when the file is parsed):

| what | name | default |
|---|---|---|
| Connection | `ghl_default` | required: the `ghl` connection (token, and `location_id` extra) |
| Variable | `ghl_export_root` | `file:///tmp/ghl-exports` (any object-storage URI, e.g. `s3://bucket/ghl`) |
| Variable | `ghl_location_ids` | unset: the connection's `location_id`; else a JSON list or object (below) |

`ghl_location_ids` is a list of locations that `ghl_default` reaches (an OAuth or agency token), e.g.
`["loc1", "loc2"]`, or an object giving each location its own connection (a Private Integration Token is
per location), e.g. `{"loc1": "ghl_loc1", "loc2": "ghl_loc2"}`.

The location list is read at run time by the `locations` task. Each location has its own rate budget
(GHL limits per token and location), so the mapped exports run side by side. A retried export resumes from
its checkpoint; an output that already has a manifest is not exported again.
"""


@task
def locations(ghl_conn_id: str = GHL_CONN_ID) -> list[dict[str, str]]:
    """``{"location_id", "ghl_conn_id"}`` per location, from the ``ghl_location_ids`` Variable (a JSON list, or
    an object of location id -> connection id), else the connection's location."""
    return configured_locations(ghl_conn_id)


with DAG(
    dag_id="ghl_full_export",
    schedule="@weekly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["ghl", "export", "example"],
    doc_md=DOC_MD,
) as dag:
    GHLExportContactsOperator.partial(
        task_id="full_export",
        # ``task.location_id`` is this mapped task's location; each location brings its connection id.
        output_path=EXPORT_ROOT + "/{{ task.location_id }}/contacts/full/{{ ds }}",
        compression="gzip",
        map_index_template="{{ task.location_id }}",
    ).expand_kwargs(locations())
