"""Which of many locations changed in a window: one check per location, all at once on the async hook.

:func:`probe_locations` is the check of ``GHLChangedLocationsOperator`` (in its worker) and of
:class:`GHLChangedLocationsTrigger`, which keeps asking the locations still quiet, from the triggerer, until
every location has changed or the deadline passes. Each check is ``ContactChangedCondition`` with one id (the
check of ``GHLContactChangedSensor``): one ``POST /contacts/search`` with ``pageLimit`` 1, under that location's
own rate budget. Hundreds of quiet locations thus cost one request per look, not one Airflow task each.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ghl.checks import parse_datetime
from airflow_provider_ghl.exceptions import GHLLocationNotInstalledError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.triggers.ghl import ContactChangedCondition

#: A location's verdict: a contact changed in the window (or the check failed: its own task will tell), none
#: did yet, or the app is gone from it (left out).
CHANGED, QUIET, GONE = "changed", "quiet", "gone"


async def probe_locations(
    hooks: Mapping[str, GHLHook],
    pairs: Sequence[Mapping[str, str]],
    *,
    since: str,
    until: str,
    max_concurrency: int,
    skip_uninstalled: bool,
    log: logging.Logger | Any,
) -> list[str]:
    """One check of every location, concurrently: its verdict (:data:`CHANGED`, :data:`QUIET`, :data:`GONE`).

    A location whose check fails otherwise than "not installed" counts as changed, with a warning: its own task
    then runs, retries and reports the error, and the other locations are not held up.

    :param hooks: a hook per connection id of ``pairs``.
    :param pairs: ``{"location_id", "ghl_conn_id"}`` per location.
    :param since: window start (ISO 8601, inclusive).
    :param until: window end (ISO 8601, exclusive).
    :param max_concurrency: checks in flight at once (each still waits for its location's budget).
    :param skip_uninstalled: a location GHL reports as no longer having the app is :data:`GONE`, with a warning
        (False: the error is raised).
    :param log: where warnings go.
    :return: one verdict per pair, in order.
    """
    gate = asyncio.Semaphore(max_concurrency)

    async def one(pair: Mapping[str, str]) -> str:
        location = pair["location_id"]
        condition = ContactChangedCondition(since=since, until=until, max_ids=1, location_id=location)
        async with gate:
            try:
                changed, _ = await condition.acheck(hooks[pair["ghl_conn_id"]])
            except GHLLocationNotInstalledError as err:
                if not skip_uninstalled:
                    raise
                log.warning("Leaving out location %s: %s", location, err)
                return GONE
            except Exception as err:
                log.warning("Could not check location %s (%s); keeping it: its own task will tell.", location, err)
                return CHANGED
        return CHANGED if changed else QUIET

    return list(await asyncio.gather(*(one(pair) for pair in pairs)))


class GHLChangedLocationsTrigger(BaseTrigger):
    """Keep checking the quiet locations until each has changed or the deadline passes; one event, then done.

    - ``{"status": "success", "changed": [index, ...]}``: the indices (into ``locations``) of those that changed
      while the trigger waited;
    - ``{"status": "error", "message": ..., "error_type": ...}``: a check raised (``skip_uninstalled=False``
      and a location without the app, or the deadline unreadable).

    :param locations: every ``{"location_id", "ghl_conn_id"}`` of the task, in its order.
    :param pending: the indices of those still quiet when the task deferred.
    :param since: window start (ISO 8601, inclusive).
    :param until: window end (ISO 8601, exclusive).
    :param deadline: absolute ISO-8601 time, fixed when the task deferred (a triggerer restart does not extend
        the wait); no check starts after it.
    :param poll_interval: seconds between two looks.
    :param max_concurrency: checks in flight at once.
    :param skip_uninstalled: leave out locations without the app (False: report an error).
    :param hook_params: :class:`GHLHook` keyword arguments (JSON values).
    """

    def __init__(
        self,
        *,
        locations: list[dict[str, str]],
        pending: list[int],
        since: str,
        until: str,
        deadline: str,
        poll_interval: float = 60.0,
        max_concurrency: int = 32,
        skip_uninstalled: bool = True,
        hook_params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.locations = locations
        self.pending = pending
        self.since = since
        self.until = until
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.max_concurrency = max_concurrency
        self.skip_uninstalled = skip_uninstalled
        self.hook_params = hook_params or {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "locations": self.locations,
            "pending": self.pending,
            "since": self.since,
            "until": self.until,
            "deadline": self.deadline,
            "poll_interval": self.poll_interval,
            "max_concurrency": self.max_concurrency,
            "skip_uninstalled": self.skip_uninstalled,
            "hook_params": self.hook_params,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            changed = await self.wait_for_changes()
        except Exception as err:
            # Reported as an event: the task fails on the worker with the cause.
            yield TriggerEvent({"status": "error", "message": str(err), "error_type": type(err).__name__})
            return
        yield TriggerEvent({"status": "success", "changed": changed})

    async def wait_for_changes(self, hooks: Mapping[str, GHLHook] | None = None) -> list[int]:
        """Ask the pending locations every ``poll_interval`` until each changed or the deadline passes (the
        trigger's wait, and a task's that waits in its worker).

        :param hooks: a hook per connection id (default: new ones with ``hook_params``).
        :return: the indices of the locations that changed meanwhile, sorted.
        :raises GHLLocationNotInstalledError: a location without the app, with ``skip_uninstalled=False``.
        """
        deadline = parse_datetime(self.deadline)
        if deadline is None:
            raise ValueError(f"deadline: not an ISO-8601 date-time: {self.deadline!r}")
        if hooks is None:
            hooks = {pair["ghl_conn_id"]: GHLHook(pair["ghl_conn_id"], **self.hook_params) for pair in self.locations}
        pending, changed = list(self.pending), []
        # The task checked every location just before deferring: the first look waits one interval too.
        while pending and (remaining := (deadline - datetime.now(UTC)).total_seconds()) > 0:
            await asyncio.sleep(min(self.poll_interval, remaining))
            if datetime.now(UTC) >= deadline:
                break
            verdicts = await probe_locations(
                hooks, [self.locations[i] for i in pending], since=self.since, until=self.until,
                max_concurrency=self.max_concurrency, skip_uninstalled=self.skip_uninstalled, log=self.log,
            )  # fmt: skip
            changed += [i for i, verdict in zip(pending, verdicts, strict=True) if verdict == CHANGED]
            pending = [i for i, verdict in zip(pending, verdicts, strict=True) if verdict == QUIET]
            self.log.info("Locations changed so far: %d; still quiet: %d", len(changed), len(pending))
        return sorted(changed)
