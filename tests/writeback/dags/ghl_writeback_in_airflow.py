"""DAG run by ``test_writeback_lineage.py`` with ``dag.test()``: a write-back in an Airflow task, templated paths."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator

CONN_ID = os.environ.get("GHL_TEST_CONN", "ghl_default")
ROOT = os.environ.get("GHL_TEST_OUTPUT", "file:///tmp/ghl-sync-test")

with DAG(
    "ghl_writeback_in_airflow",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"root": ROOT},
) as dag:
    GHLWriteBackContactsOperator(
        task_id="sync",
        ghl_conn_id=CONN_ID,
        input_path="{{ params.root }}/inbox/contacts.csv",
        results_path="{{ params.root }}/results/{{ ds }}",
    )


if __name__ == "__main__":
    print("DAGRUN_STATE", dag.test().state)
