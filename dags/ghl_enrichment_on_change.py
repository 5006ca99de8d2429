"""Hourly enrichment on change: one deferred task waits for contacts changed in the run's hour at every location,
then the locations that changed are enriched."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.operators.probe import GHLChangedLocationsOperator

from ghl_alerts import alert_callbacks
from ghl_layout import ENRICHMENT, LOCATION, LOOKBACK
from ghl_locations import configuration_doc, locations

#: Airflow Variable with the seconds between the trigger's looks (read at run time; default ``POKE_INTERVAL``).
POKE_INTERVAL_VARIABLE = "ghl_sensor_poke_interval"
#: One search request per quiet location per minute while waiting: 60 an hour, against GHL's 200,000 a day.
POKE_INTERVAL = timedelta(minutes=1)
#: How long after the hour the wait goes on: GHL's search index lags a little behind writes.
INDEX_LAG = timedelta(minutes=10)

DOC_MD = f"""
### GHL enrichment on change

Every hour, for every configured HighLevel location:

1. `wait_for_changes`: a **deferrable** `GHLChangedLocationsOperator` asks every location at once (one
   `POST /contacts/search` each, concurrently, in that one task) whether a contact's `dateUpdated` falls in the
   run's data interval. If some are still quiet, it **defers**: the worker slot is released and one trigger
   asks the quiet ones again every interval until each has changed, or until the window has closed plus
   {INDEX_LAG // timedelta(minutes=1)} minutes for GHL's search index to catch up. A scheduled run (whose hour
   is already over) waits only for late-indexed changes; a manual run for the current hour waits for that
   hour's changes.
2. `enrich`, mapped over the locations that changed only: writes the contacts changed in the window (widened
   {LOOKBACK // timedelta(minutes=1)} minutes backwards, as GHL's search index lags) with their **tasks, notes
   and appointments** to
   `{ENRICHMENT.describe()}`
   (`ts_nodash` timestamps; part files plus `_manifest.json`, written last), as `ghl_incremental_enrichment`
   does.

Quiet locations cost one search per look, never an Airflow task: with hundreds of locations the run is one
waiting trigger and an `enrich` task per location that changed. A location without the app is left out with a
warning; an error the hook's retries do not cure (a bad token) fails `wait_for_changes`.

{configuration_doc(("Variable", POKE_INTERVAL_VARIABLE, "`60`: seconds between the trigger's looks"))}"""

with DAG(
    dag_id="ghl_enrichment_on_change",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2), **alert_callbacks()},
    tags=["ghl", "enrichment", "sensor", "example"],
    doc_md=DOC_MD,
) as dag:
    changed = GHLChangedLocationsOperator(
        task_id="wait_for_changes",
        locations=locations(),
        # The window is the run's data interval; only changes the enrichment's window holds count.
        wait_until=f"{{{{ data_interval_end + macros.timedelta(seconds={INDEX_LAG.total_seconds():.0f}) }}}}",
        # Rendered at run time: reading a Variable while the file is parsed would cost a request per parse.
        poll_interval=(f"{{{{ var.value.get('{POKE_INTERVAL_VARIABLE}', {POKE_INTERVAL.total_seconds():.0f}) }}}}"),
        deferrable=True,
    )
    GHLEnrichContactsOperator.partial(
        task_id="enrich",
        # Each location brings its connection id; LOCATION is this mapped task's location_id.
        output_path=ENRICHMENT.template(),
        lookback=LOOKBACK,
        include=["tasks", "notes", "appointments"],
        map_index_template=LOCATION,
    ).expand_kwargs(changed.output)
