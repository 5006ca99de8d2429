"""Every 15 minutes: are the GHL locations' webhooks applied, their exports on time, their custom fields as
before? One alert per location and condition, sent where the ``ghl_alert_send`` Variable says."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_ghl.operators.health import GHLHealthCheckOperator

from ghl_alerts import ALERT_SEND_VARIABLE, alert_notifier
from ghl_locations import configuration_doc, locations

MAX_WEBHOOK_LAG_VARIABLE = "ghl_max_webhook_lag_seconds"
MAX_EXPORT_AGE_VARIABLE = "ghl_max_export_age_seconds"

DOC_MD = f"""
### GHL health

Reads only what the provider recorded (no GHL request) and fails with one alert per location and condition:

- **webhook lag**: the oldest webhook event not yet applied is older than `{MAX_WEBHOOK_LAG_VARIABLE}`
  (default 1800 s): `ghl_webhook_sync` is paused or failing;
- **export overdue**: the last committed `ghl_full_export` of the location is older than
  `{MAX_EXPORT_AGE_VARIABLE}` (default 8 days), or there is none;
- **schema drift**: an export committed since the previous check found custom fields added, removed or retyped.

The alerts go to the function the Variable `{ALERT_SEND_VARIABLE}` names (see `ghl_alerts.py`); unset, they are
logged as errors. The other example DAGs send theirs the same way (a task failure, the daily budget at its
reserve, a refused token or refresh, an uninstalled location).

{configuration_doc()}"""

with DAG(
    dag_id="ghl_health",
    # Data intervals: a run looks at the exports committed in its 15 minutes, so each drift is told once.
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["ghl", "alerts", "example"],
    doc_md=DOC_MD,
) as dag:
    GHLHealthCheckOperator(
        task_id="check",
        locations=locations(),
        max_webhook_lag=f"{{{{ var.value.get('{MAX_WEBHOOK_LAG_VARIABLE}', 1800) }}}}",
        max_export_age=f"{{{{ var.value.get('{MAX_EXPORT_AGE_VARIABLE}', 691200) }}}}",
        on_failure_callback=alert_notifier(),
    )
