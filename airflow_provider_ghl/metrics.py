"""The provider's metrics, sent through Airflow's own metrics system (``airflow.sdk.observability.stats``): StatsD,
Datadog or OpenTelemetry, as the deployment's ``[metrics]`` section chose; nothing when it chose none.

Every name starts ``ghl.`` (after Airflow's ``statsd_prefix`` / ``otel_prefix``). Tags are only the bounded ones
of :data:`TAGS` (a location, an operation of the endpoint table, a dataset, an HTTP status class, ...): a contact
id or a token never becomes a tag or a name. Plain StatsD drops tags; InfluxDB-style StatsD, Datadog and
OpenTelemetry keep them. A metric that cannot be sent is dropped: metrics never fail a task or a request.

=================================== ======= ====================================================================
name                                kind    what
=================================== ======= ====================================================================
``ghl.requests``                    counter every attempt that got an answer (``location_id``, ``operation``,
                                            ``status``: ``2xx``, ``4xx``, ``429``, ``5xx``)
``ghl.transport_errors``            counter attempts that got no answer (``location_id``, ``operation``)
``ghl.request_latency``             timer   an attempt's round trip, ms (``location_id``, ``operation``)
``ghl.budget.burst_remaining``      gauge   ``X-RateLimit-Remaining`` of the last answer (``location_id``)
``ghl.budget.daily_remaining``      gauge   ``X-RateLimit-Daily-Remaining`` of the last answer (``location_id``)
``ghl.budget.foreign_requests``     counter requests GHL counted on a budget that none of its sharers sent
``ghl.retries``                     counter attempts repeated after a 429, a 5xx or a lost connection
``ghl.token_refreshes``             counter OAuth token sets rotated (``outcome``: ``ok`` or ``failed``)
``ghl.records``                     counter records an output committed (``location_id``, ``dataset``)
``ghl.webhooks.deliveries``         counter what the receiver answered a delivery (``outcome``: ``stored``,
                                            ``duplicates``, ``refused``, ...)
``ghl.writeback.actions``           counter a write-back's records by what happened (``location_id``, ``outcome``)
=================================== ======= ====================================================================
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: The only tag keys sent: each takes a bounded set of values.
TAGS = frozenset({"location_id", "operation", "status", "dataset", "outcome", "backend"})


def _tags(tags: dict[str, Any]) -> dict[str, str]:
    unknown = set(tags) - TAGS
    if unknown:  # a programming error: never send what could be unbounded
        raise ValueError(f"metric tags must be among {sorted(TAGS)}, got {sorted(unknown)}")
    return {key: str(value) for key, value in tags.items() if value is not None}


def _send(kind: str, name: str, value: float, tags: dict[str, Any]) -> None:
    sent = _tags(tags)
    try:
        from airflow.sdk.observability import stats

        if kind == "count":
            stats.incr(f"ghl.{name}", count=int(value), tags=sent)
        elif kind == "gauge":
            stats.gauge(f"ghl.{name}", value, tags=sent)
        else:
            stats.timing(f"ghl.{name}", value, tags=sent)
    except Exception as err:  # a metrics backend that fails must not fail the request or the task
        log.debug("GHL metric %s not sent: %s", name, err)


def count(name: str, value: int = 1, **tags: Any) -> None:
    """Add ``value`` to the counter ``ghl.<name>``.

    :param name: the metric's name after ``ghl.``.
    :param value: how much to add.
    :param tags: bounded tags (:data:`TAGS`); None values are left out.
    """
    if value:
        _send("count", name, value, tags)


def gauge(name: str, value: float, **tags: Any) -> None:
    """Set the gauge ``ghl.<name>`` to ``value``.

    :param name: the metric's name after ``ghl.``.
    :param value: the reading.
    :param tags: bounded tags (:data:`TAGS`); None values are left out.
    """
    _send("gauge", name, value, tags)


def timing(name: str, milliseconds: float, **tags: Any) -> None:
    """Record ``milliseconds`` in the timer ``ghl.<name>``.

    :param name: the metric's name after ``ghl.``.
    :param milliseconds: the duration.
    :param tags: bounded tags (:data:`TAGS`); None values are left out.
    """
    _send("timing", name, milliseconds, tags)
