"""OAuth deployments only: rotate the GHL token set every 6 hours from a single writer."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, DeltaTriggerTimetable

from airflow_provider_ghl.operators.token import GHLRefreshTokenOperator

from ghl_alerts import alert_notifier
from ghl_locations import GHL_CONN_ID

DOC_MD = f"""
### GHL OAuth token refresh

**Only for OAuth connections** (`auth_type: oauth`; a Private Integration Token has nothing to refresh and
this task would fail: pause or delete this DAG then).

Every 6 hours, refreshes the OAuth token set of connection `{GHL_CONN_ID}` and saves it to the connection's
token Variable (`token_variable` extra, default `ghl_oauth_{GHL_CONN_ID}`). GHL refresh tokens are single-use,
so one writer (`max_active_runs=1`) keeps the access token fresh and the export
DAGs never need to refresh inline. Writes nothing else; returns only non-secret facts (expiry, scope).

Configuration: the connection `{GHL_CONN_ID}` (client id as login, client secret as password, extras
`auth_type=oauth`, `location_id`, and `refresh_token` to bootstrap the Variable the first time). Set
`[core] fernet_key` so the token Variable is encrypted, and do not define that Variable via `AIRFLOW_VAR_*`
or a secrets backend.
"""

with DAG(
    dag_id="ghl_token_refresh",
    schedule=DeltaTriggerTimetable(timedelta(hours=6)),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ghl", "oauth", "example"],
    doc_md=DOC_MD,
) as dag:
    GHLRefreshTokenOperator(
        task_id="refresh_token",
        ghl_conn_id=GHL_CONN_ID,  # the OAuth connection whose token set this DAG keeps fresh
        retries=1,
        retry_delay=timedelta(minutes=10),
        # A refused refresh (a revoked app, a spent refresh token) is one alert.
        on_failure_callback=alert_notifier(),
    )
