"""The doorbell of the webhook DAG: a trigger for an ``AssetWatcher`` that fires when the inbox has news.

It polls :meth:`~airflow_provider_ghl.webhooks.inbox.Inbox.backlog` (in a worker thread: the inbox is SQLite or
Redis, both blocking) and yields ``{"location_id", "high_water"}`` when a served location's high-water mark
differs from the one it last signalled. Served are the ``[ghl_webhooks] locations`` and those that installed the
app (:meth:`~airflow_provider_ghl.webhooks.inbox.Inbox.installed`); the receiver stores nothing else, and events
left from before a location stopped being served never ring. The event only rings the bell: the DAG's task drains
the inbox itself up to the high-water, so asset events that Airflow batches, delays or drops lose nothing.

The last signalled marks live in ``self.asset_state_store`` when the triggerer provides one (Airflow 3.3), so
a restarted trigger does not ring again for what it already announced. A mark still pending
:attr:`~GHLWebhookInboxTrigger.resignal_after` seconds after it was signalled is signalled again: that bell
was lost (the DAG was paused when it rang, or the triggerer died before the event was saved), and the events
would otherwise wait for the next delivery. Inbox errors are logged and retried with a growing pause, never
raised: a raising trigger is restarted by the triggerer about once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_ghl import metrics
from airflow_provider_ghl.webhooks.inbox import Backlog, Inbox, open_inbox

#: The asset state key holding ``{location_id: [high_water, signalled_at]}``.
STATE_KEY = "ghl_webhooks_signalled"


def _look(inbox: Inbox) -> tuple[dict[str, Backlog], set[str]]:
    """The inbox's waiting events per location and its installed locations (blocking: run in a worker thread)."""
    return inbox.backlog(), inbox.installed()


class GHLWebhookInboxTrigger(BaseEventTrigger):
    """Fires ``TriggerEvent({"location_id": ..., "high_water": seq})`` when a location's inbox has new events.

    :param inbox: the inbox URL (``sqlite:///<absolute path>`` or ``redis://<conn_id>``), as ``[ghl_webhooks]
        inbox``.
    :param location_ids: only these locations; None: every location.
    :param poll_interval: seconds between two looks at the inbox.
    """

    #: Seconds after which a mark still pending is signalled again (a lost bell); a DAG run drains it sooner.
    resignal_after: float = 300.0
    #: The longest pause between two attempts while the inbox fails.
    max_backoff: float = 60.0
    #: Seconds between two reports of the inbox gauges (depth and lag per served location).
    metrics_interval: float = 15.0

    def __init__(self, *, inbox: str, location_ids: list[str] | None = None, poll_interval: float = 2.0) -> None:
        super().__init__()
        if poll_interval <= 0:
            raise ValueError(f"poll_interval: must be > 0, got {poll_interval!r}")
        self.inbox = inbox
        self.location_ids = sorted(set(location_ids)) if location_ids else None
        self.poll_interval = float(poll_interval)
        #: Looks at the inbox so far, and failures in a row (for logs and tests).
        self.polls = 0
        self.failures = 0
        self._state_warned = False
        self._gauged: set[str] = set()
        self._gauged_at = 0.0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"inbox": self.inbox, "location_ids": self.location_ids, "poll_interval": self.poll_interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_ghl.webhooks.settings import configured_locations

        signalled = await self._load_signalled()
        configured = frozenset(configured_locations())
        inbox: Inbox | None = None
        try:
            while True:
                try:
                    if inbox is None:
                        inbox = await asyncio.to_thread(open_inbox, self.inbox)
                    backlog, installed = await asyncio.to_thread(_look, inbox)
                except Exception as err:
                    await self._backoff(err, inbox)
                    inbox = None  # reopened at the next try
                    continue
                if self.failures:
                    self.log.info("GHL webhook inbox %s answers again after %d failures", self.inbox, self.failures)
                    self.failures = 0
                self.polls += 1
                now = time.time()
                served = {
                    location_id: waiting
                    for location_id, waiting in backlog.items()
                    if (self.location_ids is None or location_id in self.location_ids)
                    and (location_id in configured or location_id in installed)
                }
                self._gauge_backlog(served, now)
                for location_id, waiting in served.items():
                    high_water = waiting.high_water
                    last = signalled.get(location_id)
                    if last is None or last[0] != high_water or now - last[1] >= self.resignal_after:
                        yield TriggerEvent({"location_id": location_id, "high_water": high_water})
                        # Saved after the yield: a crash in between rings once more after the restart,
                        # never less.
                        signalled[location_id] = (high_water, now)
                        await self._save_signalled(signalled)
                await asyncio.sleep(self.poll_interval)
        finally:
            if inbox is not None:
                with contextlib.suppress(Exception):
                    inbox.close()

    def _gauge_backlog(self, served: dict[str, Backlog], now: float) -> None:
        """Every :attr:`metrics_interval`: ``ghl.webhooks.inbox_depth`` and ``ghl.webhooks.lag_seconds`` (the
        oldest waiting event's age) of each served location with events waiting, and 0 for those drained since."""
        if now - self._gauged_at < self.metrics_interval:
            return
        self._gauged_at = now
        for location_id, waiting in served.items():
            metrics.gauge("webhooks.inbox_depth", waiting.depth, location_id=location_id)
            lag = waiting.lag_seconds(now)
            if lag is not None:
                metrics.gauge("webhooks.lag_seconds", round(lag, 1), location_id=location_id)
        for location_id in self._gauged - set(served):
            metrics.gauge("webhooks.inbox_depth", 0, location_id=location_id)
            metrics.gauge("webhooks.lag_seconds", 0, location_id=location_id)
        self._gauged = set(served)

    async def _backoff(self, err: Exception, inbox: Inbox | None) -> None:
        self.failures += 1
        delay = min(self.poll_interval * 2**self.failures, self.max_backoff)
        self.log.warning(
            "GHL webhook inbox %s failed (%d in a row): %s; next try in %.1f s", self.inbox, self.failures, err, delay
        )
        if inbox is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(inbox.close)
        await asyncio.sleep(delay)

    def _state(self) -> Any:
        return getattr(self, "asset_state_store", None)

    def _state_failed(self, what: str, err: Exception) -> None:
        if not self._state_warned:  # e.g. one trigger watching several assets: keep the marks in memory
            self._state_warned = True
            self.log.warning("GHL webhook trigger cannot %s its asset state (%s); kept in memory only", what, err)

    async def _load_signalled(self) -> dict[str, tuple[int, float]]:
        store = self._state()
        if store is None:
            return {}
        try:
            value = await store.aget(STATE_KEY)
        except Exception as err:
            self._state_failed("read", err)
            return {}
        marks: dict[str, tuple[int, float]] = {}
        if isinstance(value, dict):
            for location_id, mark in value.items():
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    marks[str(location_id)] = (int(mark[0]), float(mark[1]))
        return marks

    async def _save_signalled(self, signalled: dict[str, tuple[int, float]]) -> None:
        store = self._state()
        if store is None:
            return
        try:
            await store.aset(STATE_KEY, {loc: [hw, at] for loc, (hw, at) in signalled.items()})
        except Exception as err:
            self._state_failed("write", err)
