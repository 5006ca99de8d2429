"""DAG run by ``test_tombstones_wire.py`` with ``dag.test()``: a full export whose runs share no directory pattern
(``<root>/<ds_nodash>/ghl-contacts``), so its tombstones can only come from the previous run's asset event."""

from __future__ import annotations

import os
import sys

import pendulum
from airflow.sdk import DAG

from airflow_provider_ghl.operators.export import GHLExportContactsOperator

CONN_ID = os.environ.get("GHL_TEST_CONN", "ghl_default")
ROOT = os.environ.get("GHL_TEST_OUTPUT", "file:///tmp/ghl-tombstones-test")

with DAG(
    "ghl_tombstones_in_airflow",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"root": ROOT},
) as dag:
    GHLExportContactsOperator(
        task_id="full_export",
        ghl_conn_id=CONN_ID,
        output_path="{{ params.root }}/{{ ds_nodash }}/ghl-contacts",
        page_limit=100,
    )


if __name__ == "__main__":
    print("DAGRUN_STATE", dag.test(logical_date=pendulum.parse(sys.argv[1])).state)
