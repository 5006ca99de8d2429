"""Webhook sync: GHL's webhook events, applied per location exactly once, as soon as the receiver stores them."""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_ghl.operators.webhooks import (
    WEBHOOKS_ASSET_ALIAS,
    GHLApplyWebhookEventsOperator,
    configured_inbox,
)
from airflow_provider_ghl.triggers.webhooks import GHLWebhookInboxTrigger
from airflow_provider_ghl.webhooks.inbox import open_inbox

from ghl_alerts import alert_callbacks
from ghl_layout import LOCATION, WEBHOOK_BATCHES
from ghl_locations import configuration_doc, locations

#: The inbox the receiver stores into: the ``[ghl_webhooks] inbox`` setting (configuration, not a Variable: the
#: trigger's arguments are fixed when the file is parsed, and the receiver reads the same setting).
INBOX = configured_inbox()

CONFIGURATION = configuration_doc(
    ("Config", "[ghl_webhooks] inbox", "`sqlite:///{AIRFLOW_HOME}/ghl_webhooks.db` (or `redis://<conn_id>`)"),
    (
        "Config",
        "[ghl_webhooks] locations",
        "none: the locations whose events the receiver stores (and the watcher rings for)",
    ),
    ("Config", "[ghl_webhooks] app_id", "none: the app whose INSTALL/UNINSTALL events add and remove served locations"),
)

DOC_MD = f"""
### GHL webhook sync

GHL POSTs an event for every change (contacts, tags, DND, notes, tasks, appointments) to the provider's receiver
(`/ghl/webhooks` on the api-server, or `ghl-webhooks serve`), which verifies its signature and stores it in the
inbox `[ghl_webhooks] inbox` (now `{INBOX}`). The `ghl_webhook_inbox` Asset's watcher (a
`GHLWebhookInboxTrigger` in the triggerer) fires when the inbox holds events not yet signalled, and this DAG
runs: `pending_locations` keeps the configured locations whose inbox holds events (one read of the inbox: a
quiet location costs no task), and one mapped `apply` task per such location drains that location's inbox
(every batch up to its high-water mark, not only the events of the asset event that started the run) and
writes each batch to

`{WEBHOOK_BATCHES.describe()}`

(`contacts`, `tombstones`, `tasks`, `notes`, `appointments` part files, then `_manifest.json`), then acknowledges
it. Each record is its final state in the batch (last writer wins by event `timestamp`, also against earlier
batches); a killed task re-runs to the same batch and never applies an event twice. The API is asked only for
what a payload lacks. Each location's webhooks folder is announced on the `{WEBHOOKS_ASSET_ALIAS}` asset alias
(`output_path` in the event's extra): schedule downstream DAGs on it.

While the DAG is **paused** its watcher does not run: events wait in the inbox and the first run after
unpausing applies them all. The watcher fires for any location of the inbox; the tasks apply the configured ones.

{CONFIGURATION}"""

INBOX_ASSET = Asset(
    name="ghl_webhook_inbox",
    watchers=[AssetWatcher(name="ghl_webhook_inbox_watcher", trigger=GHLWebhookInboxTrigger(inbox=INBOX))],
)


@task
def pending_locations(configured: list[dict[str, str]]) -> list[dict[str, str]]:
    """The configured locations whose inbox holds events not yet applied: only those get an ``apply`` task.

    :param configured: ``{"location_id", "ghl_conn_id"}`` per location (the ``locations`` task's output).
    """
    inbox = open_inbox(INBOX)
    try:
        pending = inbox.pending()
    finally:
        inbox.close()
    return [pair for pair in configured if pair["location_id"] in pending]


with DAG(
    dag_id="ghl_webhook_sync",
    schedule=[INBOX_ASSET],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # One run at a time: asset events arriving meanwhile make the next run, which drains what came since.
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), **alert_callbacks()},
    tags=["ghl", "webhooks", "example"],
    doc_md=DOC_MD,
) as dag:
    GHLApplyWebhookEventsOperator.partial(
        task_id="apply",
        # Each location brings its connection id (for what payloads lack); LOCATION is this task's location.
        output_path=WEBHOOK_BATCHES.template(),
        map_index_template=LOCATION,
    ).expand_kwargs(pending_locations(locations()))
