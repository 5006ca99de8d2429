"""DAG run by ``test_export_in_airflow.py`` with ``dag.test()``: both export operators inside real Airflow tasks,
templated paths, the run's data interval as the enrichment window, and the Asset events they emit."""

from __future__ import annotations

import os
import sys

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.operators.export import GHLExportContactsOperator

CONN_ID = os.environ.get("GHL_TEST_CONN", "ghl_default")
ROOT = os.environ.get("GHL_TEST_OUTPUT", "file:///tmp/ghl-export-test")

with DAG(
    "ghl_export_in_airflow",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"root": ROOT},
) as dag:
    full = GHLExportContactsOperator(
        task_id="full_export",
        ghl_conn_id=CONN_ID,
        output_path="{{ params.root }}/contacts/full/{{ ds }}",
        compression="gzip",
    )
    enrich = GHLEnrichContactsOperator(
        task_id="enrich",
        ghl_conn_id=CONN_ID,
        output_path="{{ params.root }}/enrichment/"
        "{{ data_interval_start | ts_nodash }}__{{ data_interval_end | ts_nodash }}",
    )
    full >> enrich


if __name__ == "__main__":
    logical_date = pendulum.parse(sys.argv[1]) if len(sys.argv) > 1 else None
    print("DAGRUN_STATE", dag.test(logical_date=logical_date).state)
