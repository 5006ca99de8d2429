"""DAG run by ``test_in_task.py`` with ``dag.test()``: the OAuth token Variable from inside real tasks."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_ghl.operators.token import GHLRefreshTokenOperator

CONN_ID = os.environ.get("GHL_TEST_CONN", "ghl_default")
CONTACT_ID = os.environ.get("GHL_TEST_CONTACT", "none")

with DAG("ghl_token_in_task", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:

    @task
    def read_contact() -> str:
        from airflow_provider_ghl.hooks.ghl import GHLHook
        from airflow_provider_ghl.hooks.tokens import _in_task_context

        assert _in_task_context(), "not running under the task supervisor"
        return GHLHook(CONN_ID).get_contact(CONTACT_ID)["id"]

    GHLRefreshTokenOperator(task_id="refresh", ghl_conn_id=CONN_ID) >> read_contact()


if __name__ == "__main__":
    print("DAGRUN_STATE", dag.test().state)
