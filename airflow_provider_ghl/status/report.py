"""What the status page shows: per location, what the provider already recorded. No GHL request is made.

* **Outputs**: every committed output is an asset event of ``ghl/<location_id>/<dag_id>.<task_id>`` (see
  :mod:`airflow_provider_ghl.operators.outputs`), its extra naming the ``dataset`` (``contacts`` for a full
  export, ``enrichment``, ``webhooks``, ``writeback``) and its record counts. The latest event of each dataset
  is the location's last output of that kind, wherever its files are.
* **Webhook lag**: the inbox's :meth:`~airflow_provider_ghl.webhooks.inbox.Inbox.backlog` (events waiting, the
  oldest one's age), read when this api-server serves the receiver or ``[ghl_webhooks] inbox`` is set.
* **Last error**: the latest failed try of a GHL operator whose map index is the location (the example DAGs
  name each mapped task by its location, ``map_index_template``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_provider_ghl.webhooks.inbox import Backlog

log = logging.getLogger(__name__)

#: The asset names of committed outputs start so (``ghl/<location_id>/<dag_id>.<task_id>``).
OUTPUT_ASSET_PREFIX = "ghl/"
#: The datasets of committed outputs, in the page's column order.
DATASETS = ("contacts", "enrichment", "webhooks", "writeback")
#: Asset events read per page load, newest first: enough for the latest of each kind of many locations.
MAX_EVENTS = 5000


@dataclass
class OutputSummary:
    """A location's latest committed output of one dataset.

    :param at: when its asset event was recorded (ISO 8601, UTC).
    :param dag_id: the DAG that wrote it.
    :param task_id: the task.
    :param counts: its record counts (``contacts``, ``deleted``, ``events``, ...), as its event recorded them.
    :param output_path: where its files are.
    """

    at: str
    dag_id: str
    task_id: str
    counts: dict[str, int]
    output_path: str | None


@dataclass
class LocationStatus:
    """Everything the page shows of one location.

    :param location_id: the location.
    :param outputs: dataset -> its latest committed output.
    :param inbox_depth: webhook events waiting to be applied (None: the inbox was not read).
    :param webhook_lag_seconds: the age of the oldest of them.
    :param last_error: the latest failed try of a GHL task of the location (``dag_id``, ``task_id``, ``at``).
    """

    location_id: str
    outputs: dict[str, OutputSummary] = field(default_factory=dict)
    inbox_depth: int | None = None
    webhook_lag_seconds: float | None = None
    last_error: dict[str, str] | None = None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _counts(extra: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in extra.items() if isinstance(v, int) and not isinstance(v, bool) and k != "first_seq"}


def latest_outputs(rows: Iterable[tuple[str, dict[str, Any] | None, datetime]]) -> dict[str, dict[str, OutputSummary]]:
    """Location -> dataset -> its latest output, from asset events ``(asset name, extra, timestamp)`` newest
    first. Events whose extra is not a committed output's are passed over.

    :param rows: the events, newest first.
    :return: per location, per dataset, the newest.
    """
    found: dict[str, dict[str, OutputSummary]] = {}
    for name, extra, at in rows:
        extra = extra or {}
        location, dataset = extra.get("location_id"), extra.get("dataset")
        if not isinstance(location, str) or dataset not in DATASETS:
            continue
        outputs = found.setdefault(location, {})
        if dataset in outputs:
            continue
        dag_task = name.split("/", 2)[-1]
        dag_id, _, task_id = dag_task.rpartition(".")
        outputs[dataset] = OutputSummary(
            at=_iso(at) or "",
            dag_id=dag_id,
            task_id=task_id,
            counts=_counts(extra),
            output_path=extra.get("output_path"),
        )
    return found


def _read_outputs(session: Any) -> dict[str, dict[str, OutputSummary]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    query = (
        select(AssetModel.name, AssetEvent.extra, AssetEvent.timestamp)
        .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
        .where(AssetModel.name.startswith(OUTPUT_ASSET_PREFIX))
        .order_by(AssetEvent.timestamp.desc(), AssetEvent.id.desc())
        .limit(MAX_EVENTS)
    )
    return latest_outputs(session.execute(query).all())


def _read_errors(session: Any, locations: Iterable[str]) -> dict[str, dict[str, str]]:
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    wanted = list(locations)
    if not wanted:
        return {}
    ti = TaskInstance.__table__.c  # the columns (rendered_map_index is also a Python property of the model)
    query = (
        select(ti.rendered_map_index, ti.dag_id, ti.task_id, ti.end_date)
        .where(
            ti.state.in_(("failed", "up_for_retry")),
            ti.operator.startswith("GHL"),
            ti.rendered_map_index.in_(wanted),
        )
        .order_by(ti.end_date.desc())
    )
    errors: dict[str, dict[str, str]] = {}
    for location, dag_id, task_id, end in session.execute(query).all():
        errors.setdefault(location, {"dag_id": dag_id, "task_id": task_id, "at": _iso(end) or ""})
    return errors


def _read_backlog() -> dict[str, Backlog] | None:
    """The inbox's backlog, or None when this api-server has no inbox to read (or it fails: logged)."""
    from airflow.configuration import conf

    from airflow_provider_ghl.webhooks.inbox import open_inbox
    from airflow_provider_ghl.webhooks.options import DEFAULT_INBOX, SECTION

    served = conf.getboolean(SECTION, "enabled", fallback=False) or conf.has_option(SECTION, "inbox")
    if not served:
        return None
    try:
        inbox = open_inbox(str(conf.get(SECTION, "inbox", fallback=DEFAULT_INBOX)))
        try:
            return inbox.backlog()
        finally:
            inbox.close()
    except Exception as err:  # the page still shows the rest
        log.warning("GHL status: the webhook inbox could not be read: %s", err)
        return None


def collect(session: Any) -> dict[str, Any]:
    """The status of every location the provider has recorded anything of, as JSON-ready data.

    :param session: a session on Airflow's metadata DB.
    :return: ``{"generated_at", "inbox_read", "locations": [LocationStatus as a dict, ...]}``, locations sorted.
    """
    outputs = _read_outputs(session)
    backlog = _read_backlog()
    locations = set(outputs) | set(backlog or {})
    errors = _read_errors(session, locations)
    now = time.time()
    report = []
    for location in sorted(locations):
        status = LocationStatus(location, outputs.get(location, {}), last_error=errors.get(location))
        if backlog is not None:
            waiting = backlog.get(location)
            status.inbox_depth = waiting.depth if waiting else 0
            if waiting and waiting.oldest_stored_at is not None:
                status.webhook_lag_seconds = round(max(0.0, now - waiting.oldest_stored_at), 1)
        report.append(asdict(status))
    generated = datetime.fromtimestamp(now, UTC).isoformat()
    return {"generated_at": generated, "inbox_read": backlog is not None, "locations": report}
