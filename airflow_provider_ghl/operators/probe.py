"""Which locations changed in a window: one task asks every location at once, so quiet ones cost a request,
not a task; optionally it keeps asking the quiet ones from the triggerer until a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf

from airflow_provider_ghl.checks import (
    interval_datetime,
    optional_datetime,
    require_bool,
    require_id,
    require_int,
    require_positive_duration,
    require_timedelta,
    require_window,
)
from airflow_provider_ghl.exceptions import GHLError, GHLInputError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.mixin import GHL_UI_COLOR
from airflow_provider_ghl.hooks.request import iso_utc
from airflow_provider_ghl.triggers.ghl import error_from_event
from airflow_provider_ghl.triggers.locations import CHANGED, QUIET, GHLChangedLocationsTrigger, probe_locations

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Most locations one probe task asks (a bound on its input, as on every input).
MAX_PROBED_LOCATIONS = 100_000


class GHLChangedLocationsOperator(BaseOperator):
    """Return the locations where a contact changed in ``[updated_since, updated_until)``: map the per-location
    work over the result (``.expand_kwargs(probe.output)``) instead of over every location.

    Each location costs one ``POST /contacts/search`` with ``pageLimit`` 1 on the ``dateUpdated`` window (the
    very check of ``GHLContactChangedSensor``), under that location's own rate budget; the requests run
    concurrently on the hook's async funnel, in this one task. Hundreds of quiet locations thus cost one task
    and one request each, not one Airflow task each.

    A location GHL reports as no longer having the app is left out with a warning (``skip_uninstalled``). A
    location whose check fails otherwise is kept, with a warning: its own task then runs, retries and reports
    the error, and the other locations are not held up.

    With ``wait_until``, the locations still quiet after the first look are asked again every ``poll_interval``
    until each has changed or that time passes (GHL's search index lags behind writes; a run for the current
    hour waits for its changes), in the triggerer when ``deferrable`` (one trigger for every location, no worker
    slot held), else in the worker. The result is then every location that changed, in the given order.

    :param locations: ``{"location_id", "ghl_conn_id"}`` per location (e.g. the example DAGs' ``locations()``
        output); the same dicts come back for those that changed. (templated)
    :param updated_since: window start, inclusive (templated); default: the run's ``data_interval_start``.
    :param updated_until: window end, exclusive (templated); default: the run's ``data_interval_end``.
    :param lookback: widen the window backwards by this much (seconds or a timedelta): pass the enrichment's.
    :param max_concurrency: checks in flight at once (each still waits for its location's budget).
    :param skip_uninstalled: leave out, with a warning, locations where the app is no longer installed
        (False: fail the task).
    :param wait_until: keep asking the quiet locations until this time (templated; None: look once).
    :param poll_interval: seconds (or a timedelta) between two looks while waiting (templated, e.g. from a
        Variable).
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param hook_params: extra keyword arguments for every :class:`~airflow_provider_ghl.hooks.ghl.GHLHook` (JSON
        values when ``deferrable``: they travel to the triggerer).
    """

    template_fields: Sequence[str] = ("locations", "updated_since", "updated_until", "wait_until", "poll_interval")
    ui_color = GHL_UI_COLOR

    def __init__(
        self,
        *,
        locations: Any,
        updated_since: str | datetime | None = None,
        updated_until: str | datetime | None = None,
        lookback: float | timedelta = 0,
        max_concurrency: int = 32,
        skip_uninstalled: bool = True,
        wait_until: str | datetime | None = None,
        poll_interval: float | str | timedelta = 60.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.locations = locations
        self.updated_since = updated_since
        self.updated_until = updated_until
        self.lookback = lookback
        self.max_concurrency = max_concurrency
        self.skip_uninstalled = skip_uninstalled
        self.wait_until = wait_until
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.hook_params = hook_params or {}
        self._hooks: dict[str, GHLHook] = {}

    def validate(self, context: Context) -> dict[str, Any]:
        """Check the rendered arguments; ``GHLInputError`` naming the field, before any request."""
        since = interval_datetime("updated_since", self.updated_since, context, "data_interval_start")
        until = interval_datetime("updated_until", self.updated_until, context, "data_interval_end")
        require_window("updated_since", since, "updated_until", until)
        lookback = require_timedelta("lookback", self.lookback)
        require_bool("skip_uninstalled", self.skip_uninstalled)
        poll = require_positive_duration("poll_interval", self.poll_interval).total_seconds()
        return {
            "locations": location_pairs(self.locations),
            "since": iso_utc(since - lookback),
            "until": iso_utc(until),
            "max_concurrency": require_int("max_concurrency", self.max_concurrency, minimum=1, maximum=1000),
            "wait_until": optional_datetime("wait_until", self.wait_until),
            "poll_interval": poll,
        }

    def execute(self, context: Context) -> list[dict[str, str]]:
        args = self.validate(context)
        pairs: list[dict[str, str]] = args["locations"]
        for conn_id in dict.fromkeys(p["ghl_conn_id"] for p in pairs):
            hook = self._hooks[conn_id] = GHLHook(conn_id, **self.hook_params)
            # The async funnel never refreshes an OAuth set: a worker may, so it does it here, once, first.
            hook.prepare_token(p["location_id"] for p in pairs if p["ghl_conn_id"] == conn_id)
        verdicts = self._look(pairs, args)
        changed = [i for i, verdict in enumerate(verdicts) if verdict == CHANGED]
        pending = [i for i, verdict in enumerate(verdicts) if verdict == QUIET]
        deadline: datetime | None = args["wait_until"]
        if deadline is not None and pending and datetime.now(UTC) < deadline:
            trigger = GHLChangedLocationsTrigger(
                locations=pairs, pending=pending, since=args["since"], until=args["until"],
                deadline=deadline.isoformat(), poll_interval=args["poll_interval"],
                max_concurrency=args["max_concurrency"], skip_uninstalled=self.skip_uninstalled,
                hook_params=self.hook_params,
            )  # fmt: skip
            self.log.info("%d locations changed, %d quiet: waiting for them until %s.",
                          len(changed), len(pending), deadline.isoformat())  # fmt: skip
            if self.deferrable:
                self.defer(trigger=trigger, method_name="execute_complete", kwargs={"changed": changed})
            # The trigger's very wait, in this worker, on this task's hooks (on_kill stops them).
            changed += asyncio.run(trigger.wait_for_changes(self._hooks))
        return self._result(pairs, changed, args)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, changed: list[int] | None = None
    ) -> list[dict[str, str]]:
        """Resume after the trigger: the locations that changed before it and while it waited.

        :param event: the trigger's event.
        :param changed: the indices that had changed at the first look.
        """
        if not isinstance(event, Mapping) or event.get("status") not in ("success", "error"):
            raise GHLError(f"{self.task_id}: unexpected trigger event {event!r:.200}")
        if event["status"] == "error":
            raise error_from_event(event)
        args = self.validate(context)
        return self._result(args["locations"], [*(changed or []), *event.get("changed", [])], args)

    def _look(self, pairs: list[dict[str, str]], args: Mapping[str, Any]) -> list[str]:
        """One look at ``pairs`` on the async funnel: a verdict each."""
        return asyncio.run(
            probe_locations(
                self._hooks, pairs, since=args["since"], until=args["until"],
                max_concurrency=args["max_concurrency"], skip_uninstalled=self.skip_uninstalled, log=self.log,
            )
        )  # fmt: skip

    def _result(self, pairs: list[dict[str, str]], changed: list[int], args: Mapping[str, Any]) -> list[dict[str, str]]:
        result = [pairs[i] for i in sorted(set(changed)) if 0 <= i < len(pairs)]
        requests = sum(hook.request_stats.as_dict()["requests"] for hook in self._hooks.values())
        self.log.info(
            "%d of %d locations changed in [%s, %s); %d requests from the worker.",
            len(result), len(pairs), args["since"], args["until"], requests,
        )  # fmt: skip
        return result

    def on_kill(self) -> None:
        """Stop every hook: no further check is sent."""
        for hook in self._hooks.values():
            hook.stop()


def location_pairs(value: Any) -> list[dict[str, str]]:
    """The ``locations`` argument: a list of ``{"location_id", "ghl_conn_id"}``, each id checked."""
    # An upstream task's XCom arrives as a sequence (a list, or Airflow's lazy sequence of a mapped task).
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence) or len(value) > MAX_PROBED_LOCATIONS:
        expected = f"a list of at most {MAX_PROBED_LOCATIONS} {{location_id, ghl_conn_id}}"
        raise GHLInputError("locations", f"expected {expected}, got {value!r:.80}")
    pairs = []
    for item in value:
        if not isinstance(item, Mapping) or set(item) != {"location_id", "ghl_conn_id"}:
            raise GHLInputError("locations", f"each item must be {{location_id, ghl_conn_id}}, got {item!r:.80}")
        pairs.append(
            {
                "location_id": require_id("locations.location_id", item["location_id"]),
                "ghl_conn_id": require_id("locations.ghl_conn_id", item["ghl_conn_id"]),
            }
        )
    return pairs
