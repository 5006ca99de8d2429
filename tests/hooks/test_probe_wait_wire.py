"""``GHLChangedLocationsOperator`` with ``wait_until`` over the wire: the quiet locations are asked again until each
has changed or the deadline passes, in the worker or by one trigger (``GHLChangedLocationsTrigger``); only those
still quiet are asked again, and those that never changed are not in the result."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_ghl.exceptions import GHLConfigError, GHLError, GHLInputError
from airflow_provider_ghl.operators.probe import GHLChangedLocationsOperator
from airflow_provider_ghl.triggers.locations import GHLChangedLocationsTrigger
from ghl_sandbox.testing import SandboxServer

SEARCH = "POST /contacts/search"


@pytest.fixture
def pairs(fast_sandbox: SandboxServer, conn_factory: Callable[..., str]) -> list[dict[str, str]]:
    """Both locations, each through its own Private Integration Token; no contact changed near now."""
    fast_sandbox.reset(
        anchor=(datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).isoformat(),
        max_requests=5000, interval_ms=1000,
    )  # fmt: skip
    fast_sandbox.clear_stats()
    return [
        {
            "location_id": loc["id"],
            "ghl_conn_id": conn_factory(host=fast_sandbox.base_url, password=loc["private_token"]),
        }
        for loc in fast_sandbox.info["locations"]
    ]


def _probe(pairs: list[dict[str, str]], wait: float, **kwargs: Any) -> GHLChangedLocationsOperator:
    now = datetime.now(UTC)
    return GHLChangedLocationsOperator(
        task_id="wait_for_changes", locations=pairs, updated_since=now - timedelta(minutes=5),
        updated_until=now + timedelta(minutes=5), wait_until=now + timedelta(seconds=wait), **kwargs,
    )  # fmt: skip


def _touch_later(sandbox: SandboxServer, location: str, after: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(after), sandbox.touch_contacts(location, count=2)))
    thread.start()
    return thread


def test_in_the_worker_the_quiet_locations_are_asked_until_the_deadline(
    fast_sandbox: SandboxServer, pairs: list[dict[str, str]]
) -> None:
    toucher = _touch_later(fast_sandbox, pairs[1]["location_id"], after=1.0)
    started = time.monotonic()
    changed = _probe(pairs, wait=4, poll_interval="0.5", deferrable=False).execute(context={})  # type: ignore[arg-type]
    toucher.join()
    assert changed == [pairs[1]]  # the first location stayed quiet until the deadline
    assert time.monotonic() - started >= 3.5
    assert fast_sandbox.stats()["requests_by_route"][SEARCH] >= 4  # the first look, then again until the end


def test_deferred_one_trigger_asks_the_quiet_ones_and_the_task_resumes_with_all_that_changed(
    fast_sandbox: SandboxServer, pairs: list[dict[str, str]]
) -> None:
    fast_sandbox.touch_contacts(pairs[1]["location_id"], count=1)  # changed before the first look
    probe = _probe(pairs, wait=3, poll_interval=0.3, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        probe.execute(context={})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, GHLChangedLocationsTrigger)
    assert trigger.pending == [0] and deferred.value.kwargs == {"changed": [1]}
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ghl.triggers.locations.GHLChangedLocationsTrigger"
    assert GHLChangedLocationsTrigger(**kwargs).serialize() == (classpath, kwargs)  # plain JSON, round trip

    fast_sandbox.clear_stats()
    toucher = _touch_later(fast_sandbox, pairs[0]["location_id"], after=0.8)

    async def first_event() -> Any:
        async for event in GHLChangedLocationsTrigger(**kwargs).run():
            return event.payload

    started = time.monotonic()
    event = asyncio.run(first_event())
    looks = (time.monotonic() - started) / 0.3  # each look follows a 0.3 s pause: at most this many
    toucher.join()
    assert event == {"status": "success", "changed": [0]}
    assert fast_sandbox.stats()["requests_by_route"][SEARCH] <= looks + 1  # one search a look: the quiet one alone
    result = probe.execute_complete(context={}, event=event, changed=[1])  # type: ignore[arg-type]
    assert result == pairs  # both, in the configured order


def test_a_deadline_already_passed_or_no_quiet_location_does_not_wait(
    fast_sandbox: SandboxServer, pairs: list[dict[str, str]]
) -> None:
    assert _probe(pairs, wait=-1, deferrable=True).execute(context={}) == []  # type: ignore[arg-type]
    for pair in pairs:
        fast_sandbox.touch_contacts(pair["location_id"], count=1)
    assert _probe(pairs, wait=60, deferrable=True).execute(context={}) == pairs  # type: ignore[arg-type]


def test_the_trigger_reports_errors_and_the_task_raises_their_class(pairs: list[dict[str, str]]) -> None:
    probe = _probe(pairs, wait=5)
    error = {"status": "error", "message": "Connection 'x': no token.", "error_type": "GHLConfigError"}
    with pytest.raises(GHLConfigError, match="no token"):
        probe.execute_complete(context={}, event=error, changed=[])  # type: ignore[arg-type]
    with pytest.raises(GHLError, match="unexpected trigger event"):
        probe.execute_complete(context={}, event={"status": "timeout"}, changed=[])  # type: ignore[arg-type]

    unreadable = GHLChangedLocationsTrigger(locations=pairs, pending=[0], since="a", until="b", deadline="soon")

    async def first_event() -> Any:
        async for event in unreadable.run():
            return event.payload

    assert asyncio.run(first_event())["status"] == "error"


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"poll_interval": "often"}, "poll_interval"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"poll_interval": -1}, "poll_interval"),
        ({"wait_until": "after lunch"}, "wait_until"),
    ],
)
def test_bad_wait_arguments_are_refused_before_any_request(
    fast_sandbox: SandboxServer, pairs: list[dict[str, str]], arguments: dict[str, Any], field: str
) -> None:
    probe = _probe(pairs, wait=5)
    for name, value in arguments.items():
        setattr(probe, name, value)
    with pytest.raises(GHLInputError) as caught:
        probe.execute(context={})  # type: ignore[arg-type]
    assert caught.value.field == field
    assert fast_sandbox.stats()["requests_total"] == 0
