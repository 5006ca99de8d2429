"""Which locations changed in a window: one task asks every location at once, so quiet ones cost a request,
not a task."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_ghl.checks import (
    interval_datetime,
    require_bool,
    require_id,
    require_int,
    require_timedelta,
    require_window,
)
from airflow_provider_ghl.exceptions import GHLInputError, GHLLocationNotInstalledError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.mixin import GHL_UI_COLOR
from airflow_provider_ghl.hooks.request import iso_utc
from airflow_provider_ghl.triggers.ghl import ContactChangedCondition

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

    :param locations: ``{"location_id", "ghl_conn_id"}`` per location (e.g. the example DAGs' ``locations()``
        output); the same dicts come back for those that changed. (templated)
    :param updated_since: window start, inclusive (templated); default: the run's ``data_interval_start``.
    :param updated_until: window end, exclusive (templated); default: the run's ``data_interval_end``.
    :param lookback: widen the window backwards by this much (seconds or a timedelta): pass the enrichment's.
    :param max_concurrency: checks in flight at once (each still waits for its location's budget).
    :param skip_uninstalled: leave out, with a warning, locations where the app is no longer installed
        (False: fail the task).
    :param hook_params: extra keyword arguments for every :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`.
    """

    template_fields: Sequence[str] = ("locations", "updated_since", "updated_until")
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
        self.hook_params = hook_params or {}
        self._hooks: dict[str, GHLHook] = {}

    def validate(self, context: Context) -> dict[str, Any]:
        """Check the rendered arguments; ``GHLInputError`` naming the field, before any request."""
        since = interval_datetime("updated_since", self.updated_since, context, "data_interval_start")
        until = interval_datetime("updated_until", self.updated_until, context, "data_interval_end")
        require_window("updated_since", since, "updated_until", until)
        lookback = require_timedelta("lookback", self.lookback)
        require_bool("skip_uninstalled", self.skip_uninstalled)
        return {
            "locations": _locations(self.locations),
            "since": iso_utc(since - lookback),
            "until": iso_utc(until),
            "max_concurrency": require_int("max_concurrency", self.max_concurrency, minimum=1, maximum=1000),
        }

    def execute(self, context: Context) -> list[dict[str, str]]:
        args = self.validate(context)
        pairs: list[dict[str, str]] = args["locations"]
        for conn_id in dict.fromkeys(p["ghl_conn_id"] for p in pairs):
            hook = self._hooks[conn_id] = GHLHook(conn_id, **self.hook_params)
            # The async funnel never refreshes an OAuth set: a worker may, so it does it here, once, first.
            hook.prepare_token(p["location_id"] for p in pairs if p["ghl_conn_id"] == conn_id)
        verdicts = asyncio.run(self._probe(pairs, args))
        changed = [pair for pair, verdict in zip(pairs, verdicts, strict=True) if verdict]
        requests = sum(hook.request_stats.as_dict()["requests"] for hook in self._hooks.values())
        self.log.info(
            "%d of %d locations changed in [%s, %s); %d requests.",
            len(changed), len(pairs), args["since"], args["until"], requests,
        )  # fmt: skip
        return changed

    async def _probe(self, pairs: list[dict[str, str]], args: Mapping[str, Any]) -> list[bool]:
        gate = asyncio.Semaphore(args["max_concurrency"])

        async def one(pair: dict[str, str]) -> bool:
            location = pair["location_id"]
            condition = ContactChangedCondition(
                since=args["since"], until=args["until"], max_ids=1, location_id=location
            )
            async with gate:
                try:
                    changed, _ = await condition.acheck(self._hooks[pair["ghl_conn_id"]])
                except GHLLocationNotInstalledError as err:
                    if not self.skip_uninstalled:
                        raise
                    self.log.warning("Leaving out location %s: %s", location, err)
                    return False
                except Exception as err:
                    self.log.warning("Could not check location %s (%s); keeping it: its own task will tell.",
                                     location, err)  # fmt: skip
                    return True
            return bool(changed)

        return list(await asyncio.gather(*(one(pair) for pair in pairs)))

    def on_kill(self) -> None:
        """Stop every hook: no further check is sent."""
        for hook in self._hooks.values():
            hook.stop()


def _locations(value: Any) -> list[dict[str, str]]:
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
