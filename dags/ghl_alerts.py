"""The example DAGs' alerts: one notifier for every failure and uninstall, sent where the ``ghl_alert_send``
Variable says.

Set the Variable to the dotted path of a function that takes the message (and sends it, or returns an Airflow
notifier to call), e.g. in a module of your plugins folder::

    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    def to_slack(message: str) -> SlackWebhookNotifier:
        return SlackWebhookNotifier(slack_webhook_conn_id="slack_alerts", text=message)

Unset, each alert is logged as an error in the task's log.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_ghl.alerts import GHLAlertNotifier

#: The Variable with the dotted path of the alerts' sender.
ALERT_SEND_VARIABLE = "ghl_alert_send"


def alert_notifier() -> GHLAlertNotifier:
    """The notifier of the example DAGs' alerts."""
    return GHLAlertNotifier(send_variable=ALERT_SEND_VARIABLE)


def alert_callbacks() -> dict[str, Any]:
    """``default_args`` entries that alert on a task's failure and on a location skipped for an uninstall."""
    notifier = alert_notifier()
    return {"on_failure_callback": notifier, "on_skipped_callback": notifier}
