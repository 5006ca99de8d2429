"""A health check of GHL locations from what the provider recorded: no GHL request.

It fails with :class:`~airflow_provider_ghl.alerts.GHLHealthAlerts` when a location's webhooks wait too long,
its full export is overdue, or its latest export found its custom fields changed; the task's
``on_failure_callback`` (a :class:`~airflow_provider_ghl.alerts.GHLAlertNotifier`) then sends one message per
alert. Schedule it often (the example ``ghl_health``: every 15 minutes).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_ghl.alerts import GHLAlert, GHLHealthAlerts
from airflow_provider_ghl.checks import require_id, require_positive_duration
from airflow_provider_ghl.hooks.mixin import GHL_UI_COLOR
from airflow_provider_ghl.operators.outputs import committed_output_events, output_asset
from airflow_provider_ghl.operators.probe import location_pairs
from airflow_provider_ghl.operators.webhooks import configured_inbox

if TYPE_CHECKING:
    from airflow.sdk import Context


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"


class GHLHealthCheckOperator(BaseOperator):
    """Fail with one alert per location and condition: webhook lag, an overdue export, schema drift.

    :param locations: ``{"location_id", "ghl_conn_id"}`` per location (the example DAGs' ``locations()``), or
        location ids (templated).
    :param max_webhook_lag: the oldest unapplied webhook event may be this old (a timedelta or seconds;
        templated); None: not checked. Read from ``inbox``.
    :param max_export_age: a location's last full export may be this old (None: not checked). The export is
        the committed output of ``export_task`` (``(dag_id, task_id)``), as its asset events record it.
    :param export_task: the DAG and task of the full export.
    :param inbox: the webhook inbox URL; default ``[ghl_webhooks] inbox``.
    :return: per location, the figures checked.
    """

    template_fields: Sequence[str] = ("locations", "max_webhook_lag", "max_export_age")
    ui_color = GHL_UI_COLOR

    def __init__(
        self,
        *,
        locations: Any,
        max_webhook_lag: float | str | timedelta | None = timedelta(minutes=30),
        max_export_age: float | str | timedelta | None = timedelta(days=8),
        export_task: tuple[str, str] = ("ghl_full_export", "full_export"),
        inbox: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.locations = locations
        self.max_webhook_lag = max_webhook_lag
        self.max_export_age = max_export_age
        self.export_task = export_task
        self.inbox = inbox

    def _location_ids(self) -> list[str]:
        value = self.locations
        if (
            isinstance(value, Sequence)
            and not isinstance(value, str | bytes)
            and all(isinstance(v, str) for v in value)
        ):
            return [require_id("locations", v) for v in value]
        return [pair["location_id"] for pair in location_pairs(value)]

    def execute(self, context: Context) -> dict[str, Any]:
        locations = self._location_ids()
        lag_limit = (
            None if self.max_webhook_lag is None else require_positive_duration("max_webhook_lag", self.max_webhook_lag)
        )
        age_limit = (
            None if self.max_export_age is None else require_positive_duration("max_export_age", self.max_export_age)
        )
        alerts: list[GHLAlert] = []
        figures: dict[str, dict[str, Any]] = {location: {} for location in locations}
        if age_limit is not None:
            since = context.get("data_interval_start")
            for location in locations:
                alerts += self._check_export(location, age_limit, since, figures[location])
        if lag_limit is not None:
            alerts += self._check_webhooks(locations, lag_limit, figures)
        for alert in alerts:
            self.log.warning("GHL health: %s", alert.message)
        if alerts:
            raise GHLHealthAlerts(alerts)
        self.log.info("GHL health: %d locations checked, nothing to report.", len(locations))
        return figures

    def _check_export(
        self, location: str, limit: timedelta, since: datetime | None, figures: dict[str, Any]
    ) -> list[GHLAlert]:
        dag_id, task_id = self.export_task
        events = committed_output_events(output_asset(location, dag_id, task_id), limit=1)
        if not events:
            figures["last_export"] = None
            message = f"GHL location {location} has no committed full export ({dag_id}.{task_id}) yet."
            return [GHLAlert("export_overdue", message, location)]
        event = events[0]
        at = event.timestamp if event.timestamp.tzinfo else event.timestamp.replace(tzinfo=UTC)
        age = (datetime.now(UTC) - at).total_seconds()
        figures["last_export"] = at.isoformat()
        found = []
        if age > limit.total_seconds():
            message = (
                f"GHL location {location} has no full export since {at:%Y-%m-%d %H:%M} UTC ({_ago(age)} ago; "
                f"expected every {_ago(limit.total_seconds())}): is {dag_id} paused or failing?"
            )
            found.append(GHLAlert("export_overdue", message, location))
        drift = (event.extra or {}).get("schema_drift")
        # Once per export: only an export committed since this check's previous run.
        if isinstance(drift, dict) and (since is None or at >= since):
            changes = "; ".join(
                f"{k} {', '.join(drift[k]) if isinstance(drift[k], list) else ', '.join(map(str, drift[k]))}"
                for k in ("added", "removed", "retyped")
                if drift.get(k)
            )
            message = (
                f"GHL custom fields of location {location} changed (export of {at:%Y-%m-%d %H:%M} UTC): {changes}."
            )
            found.append(GHLAlert("schema_drift", message, location))
        return found

    def _check_webhooks(
        self, locations: list[str], limit: timedelta, figures: dict[str, dict[str, Any]]
    ) -> list[GHLAlert]:
        from airflow_provider_ghl.webhooks.inbox import open_inbox

        inbox = open_inbox(self.inbox or configured_inbox())
        try:
            backlog = inbox.backlog()
        finally:
            inbox.close()
        now = time.time()
        found = []
        for location in locations:
            waiting = backlog.get(location)
            lag = (waiting.lag_seconds(now) if waiting else None) or 0.0
            figures[location] |= {"webhooks_waiting": waiting.depth if waiting else 0, "webhook_lag_seconds": lag}
            if waiting and lag > limit.total_seconds():
                message = (
                    f"GHL webhooks of location {location} are not being applied: {waiting.depth} events wait, the "
                    f"oldest for {_ago(lag)} (limit {_ago(limit.total_seconds())}): is ghl_webhook_sync paused "
                    "or failing?"
                )
                found.append(GHLAlert("webhook_lag", message, location))
        return found
