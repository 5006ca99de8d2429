"""What the status page shows: per location, what the provider already recorded. No GHL request is made.

* **Outputs**: every committed output is an asset event of ``ghl/<location_id>/<dag_id>.<task_id>`` (see
  :mod:`airflow_provider_ghl.operators.outputs`), its extra naming the ``dataset`` (``contacts`` for a full
  export, ``enrichment``, ``webhooks``, ``writeback``) and its record counts. The latest event of each dataset
  is the location's last output of that kind, wherever its files are.
* **Webhook lag**: the inbox's :meth:`~airflow_provider_ghl.webhooks.inbox.Inbox.backlog` (events waiting, the
  oldest one's age), read when this api-server serves the receiver or ``[ghl_webhooks] inbox`` is set.
* **Last error**: the latest failed try of a GHL operator whose map index is the location (the example DAGs
  name each mapped task by its location, ``map_index_template``).
* **Requests**: each GHL task's ``ghl_requests`` XCom (its requests, 429s and the daily budget the last answer
  gave), summed per hour over the last 24 hours.
* **Installations**: the token sets of the app's location installations (``<token_variable>__location_<id>``
  Variables: only their expiry is read), and the installs the webhook inbox recorded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_ghl.webhooks.inbox import Backlog

log = logging.getLogger(__name__)

#: The asset names of committed outputs start so (``ghl/<location_id>/<dag_id>.<task_id>``).
OUTPUT_ASSET_PREFIX = "ghl/"
#: The datasets of committed outputs, in the page's column order.
DATASETS = ("contacts", "enrichment", "webhooks", "writeback")
#: Asset events read per page load, newest first: enough for the latest of each kind of many locations.
MAX_EVENTS = 5000
#: Task records (``ghl_requests``) and failed tries read per page load: a bound on the page's work.
MAX_RECORDS = 50_000


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
    :param last_error: the latest failed try of a GHL task of the location (``dag_id``, ``task_id``, ``at``, and
        ``message``, the error's first line, when the try recorded it).
    :param requests_24h: requests the location's GHL tasks sent in the last 24 hours (retries included).
    :param responses_429_24h: how many of them GHL answered 429.
    :param hourly: ``[hour (ISO 8601), requests, 429s]`` for each of the last 24 hours, oldest first.
    :param daily_remaining: the daily budget left, as the latest task's last answer gave it.
    :param daily_limit: the daily allowance, from the same answer.
    :param daily_seen_at: when that task ended.
    :param token_expires_at: the access token expiry of the location's own installation (OAuth), if it has one.
    :param webhook_installed: True after an ``INSTALL`` webhook the inbox recorded (not undone by an
        ``UNINSTALL``), False otherwise; None when the inbox was not read.
    """

    location_id: str
    outputs: dict[str, OutputSummary] = field(default_factory=dict)
    inbox_depth: int | None = None
    webhook_lag_seconds: float | None = None
    last_error: dict[str, str] | None = None
    requests_24h: int = 0
    responses_429_24h: int = 0
    hourly: list[list[Any]] = field(default_factory=list)
    daily_remaining: int | None = None
    daily_limit: int | None = None
    daily_seen_at: str | None = None
    token_expires_at: str | None = None
    webhook_installed: bool | None = None


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
        .limit(MAX_RECORDS)
    )
    errors: dict[str, dict[str, str]] = {}
    for location, dag_id, task_id, end in session.execute(query).all():
        errors.setdefault(location, {"dag_id": dag_id, "task_id": task_id, "at": _iso(end) or ""})
    return errors


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _read_requests(session: Any, now: datetime) -> dict[str, dict[str, Any]]:
    """Per location, the ``ghl_requests`` records of the last 24 hours summed per hour, and the newest daily
    budget figures."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    from airflow_provider_ghl.operators.base import REQUESTS_XCOM_KEY

    start = _hour(now) - timedelta(hours=23)
    query = (
        select(XComModel.value, XComModel.timestamp, XComModel.dag_id, XComModel.task_id)
        .where(XComModel.key == REQUESTS_XCOM_KEY, XComModel.timestamp >= start)
        .order_by(XComModel.timestamp.desc())
        .limit(MAX_RECORDS)
    )
    found: dict[str, dict[str, Any]] = {}
    for value, at, dag_id, task_id in reversed(session.execute(query).all()):  # oldest first: the newest wins
        record = json.loads(value) if isinstance(value, str) else value
        location = record.get("location_id") if isinstance(record, dict) else None
        if not isinstance(location, str):
            continue
        entry = found.setdefault(location, {"hours": {}, "daily": None, "error": None})
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        hour = entry["hours"].setdefault(_hour(at), [0, 0])
        hour[0] += int(record.get("requests") or 0)
        hour[1] += int(record.get("responses_429") or 0)
        if record.get("daily_remaining") is not None:
            entry["daily"] = (record["daily_remaining"], record.get("daily_limit"), at.isoformat())
        if record.get("error"):
            entry["error"] = {"dag_id": dag_id, "task_id": task_id, "at": at.isoformat(), "message": record["error"]}
    for entry in found.values():
        hours = [start + timedelta(hours=i) for i in range(24)]
        entry["hourly"] = [[h.isoformat(), *entry["hours"].get(h, [0, 0])] for h in hours]
    return found


def _read_installations(session: Any) -> dict[str, str]:
    """Location -> the access-token expiry (ISO 8601) of its own installation's token set."""
    from airflow.models.variable import Variable
    from sqlalchemy import select

    from airflow_provider_ghl.hooks.installations import LOCATION_INFIX

    expiries: dict[str, str] = {}
    for variable in session.scalars(select(Variable).where(Variable.key.contains(LOCATION_INFIX))):
        location = variable.key.rpartition(LOCATION_INFIX)[2]
        try:  # only the expiry leaves this function: never a token
            expires_at = float(json.loads(variable.val or "{}").get("expires_at") or 0)
        except (ValueError, TypeError, AttributeError):
            continue
        if location and expires_at:
            expiries[location] = datetime.fromtimestamp(expires_at, UTC).isoformat()
    return expiries


def _read_inbox() -> tuple[dict[str, Backlog], set[str]] | None:
    """The inbox's backlog and installed locations, or None when this api-server has no inbox to read (or it
    fails: logged)."""
    from airflow.configuration import conf

    from airflow_provider_ghl.webhooks.inbox import open_inbox
    from airflow_provider_ghl.webhooks.options import DEFAULT_INBOX, SECTION

    served = conf.getboolean(SECTION, "enabled", fallback=False) or conf.has_option(SECTION, "inbox")
    if not served:
        return None
    try:
        inbox = open_inbox(str(conf.get(SECTION, "inbox", fallback=DEFAULT_INBOX)))
        try:
            return inbox.backlog(), inbox.installed()
        finally:
            inbox.close()
    except Exception as err:  # the page still shows the rest
        log.warning("GHL status: the webhook inbox could not be read: %s", err)
        return None


def _last_error(failed: dict[str, str] | None, recorded: dict[str, str] | None) -> dict[str, str] | None:
    """The location's last error: its newest failed task instance, with the message its try recorded.

    A failed try's ``ghl_requests`` record holds the message; when the failed task instance is of the same task,
    they are the same failure (a later try would have replaced the record). Otherwise the newer one wins.
    """
    if recorded is None or failed is None:
        return recorded or failed
    if (failed["dag_id"], failed["task_id"]) == (recorded["dag_id"], recorded["task_id"]):
        return {**recorded, "at": max(failed["at"], recorded["at"])}
    return recorded if recorded["at"] >= failed["at"] else failed


def collect(session: Any) -> dict[str, Any]:
    """The status of every location the provider has recorded anything of, as JSON-ready data.

    :param session: a session on Airflow's metadata DB.
    :return: ``{"generated_at", "inbox_read", "locations": [LocationStatus as a dict, ...]}``, locations sorted.
    """
    outputs = _read_outputs(session)
    inbox = _read_inbox()
    backlog, installed = inbox if inbox is not None else ({}, set())
    now = time.time()
    requests = _read_requests(session, datetime.fromtimestamp(now, UTC))
    tokens = _read_installations(session)
    locations = set(outputs) | set(backlog) | installed | set(requests) | set(tokens)
    errors = _read_errors(session, locations)
    report = []
    for location in sorted(locations):
        status = LocationStatus(location, outputs.get(location, {}), last_error=errors.get(location))
        if inbox is not None:
            waiting = backlog.get(location)
            status.inbox_depth = waiting.depth if waiting else 0
            lag = waiting.lag_seconds(now) if waiting else None
            if lag is not None:
                status.webhook_lag_seconds = round(lag, 1)
            status.webhook_installed = location in installed
        if location in requests:
            hourly = requests[location]["hourly"]
            status.hourly = hourly
            status.requests_24h = sum(h[1] for h in hourly)
            status.responses_429_24h = sum(h[2] for h in hourly)
            if requests[location]["daily"]:
                status.daily_remaining, status.daily_limit, status.daily_seen_at = requests[location]["daily"]
            status.last_error = _last_error(status.last_error, requests[location]["error"])
        status.token_expires_at = tokens.get(location)
        report.append(asdict(status))
    generated = datetime.fromtimestamp(now, UTC).isoformat()
    return {"generated_at": generated, "inbox_read": inbox is not None, "locations": report}
