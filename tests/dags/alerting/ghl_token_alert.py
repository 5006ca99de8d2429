"""A token refresh without retries whose failure is alerted (the example ``ghl_token_refresh`` retries after 10
minutes, too long for a test)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_ghl.alerts import GHLAlertNotifier
from airflow_provider_ghl.operators.token import GHLRefreshTokenOperator

with DAG(
    dag_id="ghl_token_alert", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False
) as dag:
    GHLRefreshTokenOperator(
        task_id="refresh_token", retries=0, on_failure_callback=GHLAlertNotifier(send_variable="ghl_alert_send")
    )
