"""Run one write-back in this process (the worker a test kills): ``python writeback_child.py INPUT RESULTS``."""

from __future__ import annotations

import sys

from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator

if __name__ == "__main__":
    input_path, results_path = sys.argv[1:3]
    GHLWriteBackContactsOperator(
        task_id="sync",
        ghl_conn_id="ghl_sync",
        input_path=input_path,
        results_path=results_path,
        rows_per_file=100,
        max_failed_ratio=0.05,
        retry_backoff=0.01,
        hook_params={"retry_backoff": 0.01, "max_retries": 8},
    ).execute(context={})
