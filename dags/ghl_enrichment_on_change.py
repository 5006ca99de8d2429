"""Hourly enrichment on change: a deferred sensor waits for contacts changed in the run's hour, then enriches them."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Variable, task_group

from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.sensors.ghl import GHLContactChangedSensor

from ghl_layout import ENRICHMENT, LOCATION, LOOKBACK
from ghl_locations import configuration_doc, locations

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Airflow Variable with the seconds between the trigger's checks (read at run time; default ``POKE_INTERVAL``).
POKE_INTERVAL_VARIABLE = "ghl_sensor_poke_interval"
#: One search request per location per minute while waiting: 60 an hour, against GHL's 200,000 a day.
POKE_INTERVAL = timedelta(minutes=1)
#: How long after the hour the sensor keeps waiting: GHL's search index lags a little behind writes.
INDEX_LAG = timedelta(minutes=10)

DOC_MD = f"""
### GHL enrichment on change

Every hour, for every configured HighLevel location (one mapped task group per location):

1. `wait_for_changes`: a **deferrable** `GHLContactChangedSensor` checks once for contacts whose `dateUpdated`
   falls in the run's data interval; if there are none yet, it **defers**: the worker slot is released and
   the triggerer polls GHL (one `POST /contacts/search` per check) until a contact changes in the window.
2. `enrich`: writes the contacts changed in the window (widened {LOOKBACK // timedelta(minutes=1)} minutes backwards, as
   GHL's search index lags) with their **tasks, notes and appointments** to
   `{ENRICHMENT.describe()}`
   (`ts_nodash` timestamps; part files plus `_manifest.json`, written last), as `ghl_incremental_enrichment`
   does.

The sensor waits until the window has closed plus 10 minutes for GHL's search index to catch up: a scheduled
run (whose hour is already over) waits only for late-indexed changes, a manual run for the current hour waits
for that hour's first change. A location with no change by then is **skipped** (`skip_on_timeout`), so quiet
hours cost a few searches per location and do not fail the run; an error (a bad token, GHL failing after the
hook's retries) still fails the task.

{configuration_doc(("Variable", POKE_INTERVAL_VARIABLE, "`60`: seconds between the trigger's checks"))}"""


def fit_sensor_to_run(context: Context) -> None:
    """Set the sensor's wait and poll interval from the run, just before it executes.

    Neither is a template field, and reading a Variable while the file is parsed would cost a request per parse.

    - ``timeout``: until the run's window closes, plus ``INDEX_LAG``; the sensor fixes its deadline from it.
    - ``poke_interval``: the ``ghl_sensor_poke_interval`` Variable, if set; the trigger polls at this interval.
    """
    sensor = context["task"]
    remaining = (context["data_interval_end"] - pendulum.now("UTC")).total_seconds()
    sensor.timeout = max(remaining, 0.0) + INDEX_LAG.total_seconds()
    if (seconds := Variable.get(POKE_INTERVAL_VARIABLE, default=None)) is not None:
        sensor.poke_interval = float(seconds)


with DAG(
    dag_id="ghl_enrichment_on_change",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["ghl", "enrichment", "sensor", "example"],
    doc_md=DOC_MD,
) as dag:
    # A mapped task group, not two mapped tasks: each location's enrich waits for its own sensor only.
    @task_group
    def per_location(location_id: str, ghl_conn_id: str) -> None:
        """Wait for changes at one location, then enrich them."""
        wait = GHLContactChangedSensor(
            task_id="wait_for_changes",
            ghl_conn_id=ghl_conn_id,
            location_id=location_id,
            # ``since`` defaults to the run's data_interval_start; only changes the enrichment's window holds count.
            until="{{ data_interval_end }}",
            deferrable=True,
            poke_interval=POKE_INTERVAL,
            pre_execute=fit_sensor_to_run,
            skip_on_timeout=True,
            map_index_template=LOCATION,
        )
        enrich = GHLEnrichContactsOperator(
            task_id="enrich",
            ghl_conn_id=ghl_conn_id,
            location_id=location_id,
            output_path=ENRICHMENT.template(),
            lookback=LOOKBACK,
            include=["tasks", "notes", "appointments"],
            map_index_template=LOCATION,
        )
        wait >> enrich

    per_location.expand_kwargs(locations())
