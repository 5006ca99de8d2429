"""Hourly incremental enrichment: contacts changed in the run's hour, with their tasks, notes and appointments."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, task

from airflow_provider_ghl.locations import configured_locations
from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator

#: Connection of every location the ``ghl_location_ids`` Variable does not give its own.
GHL_CONN_ID = "ghl_default"
#: Airflow Variable with the output root URI, and its default (any Airflow object-storage URI).
EXPORT_ROOT = "{{ var.value.get('ghl_export_root', 'file:///tmp/ghl-exports') }}"
#: Overlap with the previous window: GHL's search index lags a little behind writes.
LOOKBACK = timedelta(minutes=5)

DOC_MD = """
### GHL incremental enrichment

Every hour, for every configured HighLevel location (one mapped task per location), writes the contacts
whose `dateUpdated` falls in the run's data interval (widened 5 minutes backwards, as GHL's search index
lags) together with their **tasks, notes and appointments** to

`{ghl_export_root}/<location_id>/enrichment/<data_interval_start>__<data_interval_end>/`
(`ts_nodash` timestamps; `contacts-*.jsonl`, `tasks-*.jsonl`, ... plus `_manifest.json`, written last).

The schedule is a `CronDataIntervalTimetable`, so each run covers a real `[start, end)` hour. A manual run's
logical date is the **end** of its hour.

Configuration (Airflow Connections and Variables only, nothing is read when the file is parsed):

| what | name | default |
|---|---|---|
| Connection | `ghl_default` | required: the `ghl` connection (token, and `location_id` extra) |
| Variable | `ghl_export_root` | `file:///tmp/ghl-exports` (any object-storage URI, e.g. `s3://bucket/ghl`) |
| Variable | `ghl_location_ids` | unset: the connection's `location_id`; else a JSON list or object (below) |

`ghl_location_ids` is a list of locations that `ghl_default` reaches (an OAuth or agency token), e.g.
`["loc1", "loc2"]`, or an object giving each location its own connection (a Private Integration Token is
per location), e.g. `{"loc1": "ghl_loc1", "loc2": "ghl_loc2"}`.

Each location has its own rate budget (GHL limits per token and location). A retried task resumes from its
checkpoint and never repeats or loses a record.
"""


@task
def locations(ghl_conn_id: str = GHL_CONN_ID) -> list[dict[str, str]]:
    """``{"location_id", "ghl_conn_id"}`` per location, from the ``ghl_location_ids`` Variable (a JSON list, or
    an object of location id -> connection id), else the connection's location."""
    return configured_locations(ghl_conn_id)


with DAG(
    dag_id="ghl_incremental_enrichment",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["ghl", "enrichment", "example"],
    doc_md=DOC_MD,
) as dag:
    GHLEnrichContactsOperator.partial(
        task_id="enrich",
        # ``task.location_id`` is this mapped task's location; each location brings its connection id.
        output_path=EXPORT_ROOT + "/{{ task.location_id }}/enrichment/"
        "{{ data_interval_start | ts_nodash }}__{{ data_interval_end | ts_nodash }}",
        lookback=LOOKBACK,
        include=["tasks", "notes", "appointments"],
        map_index_template="{{ task.location_id }}",
    ).expand_kwargs(locations())
