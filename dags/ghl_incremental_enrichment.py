"""Hourly incremental enrichment: contacts changed in the run's hour, with their tasks, notes and appointments."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.operators.probe import GHLChangedLocationsOperator

from ghl_alerts import alert_callbacks
from ghl_layout import ENRICHMENT, LOCATION, LOOKBACK
from ghl_locations import configuration_doc, locations

DOC_MD = f"""
### GHL incremental enrichment

Every hour, for every configured HighLevel location where a contact changed (one mapped task per such
location), writes the contacts whose `dateUpdated` falls in the run's data interval (widened
{LOOKBACK // timedelta(minutes=1)} minutes backwards, as GHL's search index lags) together with their **tasks,
notes and appointments** to

`{ENRICHMENT.describe()}`
(`ts_nodash` timestamps; `contacts-*.jsonl`, `tasks-*.jsonl`, ... plus `_manifest.json`, written last).

The schedule is a `CronDataIntervalTimetable`, so each run covers a real `[start, end)` hour. A manual run's
logical date is the **end** of its hour.

{configuration_doc()}
The `changed_locations` task first asks every location at once whether anything changed in the window (one
search request each, concurrently, in that one task); the enrichment is mapped over the locations that
changed only, so quiet locations cost one request, not one task. Each location has its own rate budget (GHL
limits per token and location). A retried task resumes from its checkpoint and never repeats or loses a record.
"""

with DAG(
    dag_id="ghl_incremental_enrichment",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), **alert_callbacks()},
    tags=["ghl", "enrichment", "example"],
    doc_md=DOC_MD,
) as dag:
    changed = GHLChangedLocationsOperator(task_id="changed_locations", locations=locations(), lookback=LOOKBACK)
    GHLEnrichContactsOperator.partial(
        task_id="enrich",
        # Each location brings its connection id; LOCATION is this mapped task's location_id.
        output_path=ENRICHMENT.template(),
        lookback=LOOKBACK,
        include=["tasks", "notes", "appointments"],
        map_index_template=LOCATION,
    ).expand_kwargs(changed.output)
