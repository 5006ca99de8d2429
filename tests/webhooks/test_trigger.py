"""GHLWebhookInboxTrigger, its ``run()`` driven by asyncio against a real inbox (both engines).

"Not again" is judged by polls, not by time: the trigger counts its looks at the inbox, and a test waits for
a few more looks before it checks that nothing more was yielded.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import TriggerEvent

from airflow_provider_ghl.triggers.webhooks import STATE_KEY, GHLWebhookInboxTrigger
from airflow_provider_ghl.webhooks.inbox import Inbox, open_inbox
from tests.webhooks.signing import claimed


@pytest.fixture(autouse=True)
def served(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trigger rings only for served locations: these tests' are configured."""
    monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__LOCATIONS", "loc1, loc2")


class FakeStateStore:
    """Stands in for the triggerer's ``asset_state_store`` (``aget``/``aset`` of JSON values)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


class Runner:
    """Drives one trigger's ``run()`` in a task, collecting the payloads it yields."""

    def __init__(self, trigger: GHLWebhookInboxTrigger) -> None:
        self.trigger = trigger
        self.payloads: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    async def _drive(self) -> None:
        async for event in self.trigger.run():
            assert isinstance(event, TriggerEvent)
            self.payloads.append(event.payload)

    async def __aenter__(self) -> Runner:
        self._task = asyncio.create_task(self._drive())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        async with asyncio.timeout(30):
            while not condition():
                assert self._task is not None and not self._task.done(), self._task and self._task.exception()
                await asyncio.sleep(0.005)

    async def events(self, count: int) -> list[dict[str, Any]]:
        await self.until(lambda: len(self.payloads) >= count, f"{count} events")
        return self.payloads

    async def polls(self, more: int) -> None:
        target = self.trigger.polls + more
        await self.until(lambda: self.trigger.polls >= target, f"{more} more polls")


def _store(inbox: Inbox, location: str, webhook_id: str) -> None:
    body = {"type": "ContactUpdate", "locationId": location, "webhookId": webhook_id}
    assert inbox.store(location, webhook_id, "ContactUpdate", "2026-12-02T05:40:00.000Z", body)


def _trigger(inbox_url: str, **kwargs: Any) -> GHLWebhookInboxTrigger:
    return GHLWebhookInboxTrigger(inbox=inbox_url, poll_interval=0.01, **kwargs)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def test_serializes_to_json_kwargs_and_serves_an_asset_watcher() -> None:
    trigger = GHLWebhookInboxTrigger(inbox="sqlite:////tmp/x.db", location_ids=["b", "a", "b"], poll_interval=5)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_ghl.triggers.webhooks.GHLWebhookInboxTrigger"
    assert kwargs == {"inbox": "sqlite:////tmp/x.db", "location_ids": ["a", "b"], "poll_interval": 5.0}
    assert GHLWebhookInboxTrigger(**kwargs).serialize() == (classpath, kwargs)
    asset = Asset("ghl_webhooks", uri="highlevel://webhooks", watchers=[AssetWatcher(name="inbox", trigger=trigger)])
    assert asset.watchers[0].trigger is trigger
    with pytest.raises(ValueError, match="poll_interval"):
        GHLWebhookInboxTrigger(inbox="sqlite:////tmp/x.db", poll_interval=0)


def test_yields_when_the_high_water_advances_and_not_again_for_the_same(inbox_url: str, inbox: Inbox) -> None:
    async def scenario() -> None:
        async with Runner(_trigger(inbox_url)) as runner:
            await runner.polls(2)
            assert runner.payloads == []  # an empty inbox rings nothing
            _store(inbox, "loc1", "a")
            _store(inbox, "loc1", "b")
            await runner.until(lambda: {"location_id": "loc1", "high_water": 2} in runner.payloads, "mark 2")
            # One ring per look that saw the mark move: 2, or 1 then 2 if a look fell between the stores.
            assert [p["high_water"] for p in runner.payloads] in ([2], [1, 2])
            rung = len(runner.payloads)
            await runner.polls(5)
            assert len(runner.payloads) == rung  # the same high-water: no second ring
            _store(inbox, "loc2", "c")
            _store(inbox, "loc1", "d")
            expected = [{"location_id": "loc1", "high_water": 3}, {"location_id": "loc2", "high_water": 1}]
            await runner.until(lambda: all(e in runner.payloads for e in expected), "marks 3 and 1")
            assert sorted(runner.payloads[rung:], key=str) == expected
            rung = len(runner.payloads)
            batch = claimed(inbox, "loc1")
            inbox.ack(batch, {})
            await runner.polls(5)
            assert len(runner.payloads) == rung  # draining rings nothing either

    run(scenario)


def test_location_filter(inbox_url: str, inbox: Inbox) -> None:
    async def scenario() -> None:
        async with Runner(_trigger(inbox_url, location_ids=["loc2"])) as runner:
            _store(inbox, "loc1", "a")
            _store(inbox, "loc2", "b")
            assert await runner.events(1) == [{"location_id": "loc2", "high_water": 1}]
            await runner.polls(3)
            assert len(runner.payloads) == 1

    run(scenario)


def test_only_served_locations_ring_and_an_install_serves_one(inbox_url: str, inbox: Inbox) -> None:
    """#21 item 3: events of a location neither configured nor installed never ring; once the app's INSTALL is
    recorded they do; its UNINSTALL expires what waits."""

    async def scenario() -> None:
        async with Runner(_trigger(inbox_url)) as runner:
            _store(inbox, "loc-new", "a")
            _store(inbox, "loc1", "b")
            assert await runner.events(1) == [{"location_id": "loc1", "high_water": 1}]
            await runner.polls(3)
            assert len(runner.payloads) == 1  # loc-new waits, unserved
            inbox.set_installed("loc-new", True)
            assert (await runner.events(2))[1] == {"location_id": "loc-new", "high_water": 1}
            inbox.set_installed("loc-new", False)
            assert "loc-new" not in inbox.pending() and "loc-new" not in inbox.installed()

    run(scenario)


def test_a_restart_with_the_asset_state_does_not_ring_again(inbox_url: str, inbox: Inbox) -> None:
    state = FakeStateStore()

    def restarted() -> GHLWebhookInboxTrigger:
        trigger = _trigger(inbox_url)
        trigger.asset_state_store = state  # type: ignore[assignment]  # injected by the triggerer
        return trigger

    async def scenario() -> None:
        _store(inbox, "loc1", "a")
        async with Runner(restarted()) as first:
            assert await first.events(1) == [{"location_id": "loc1", "high_water": 1}]
        assert state.values[STATE_KEY]["loc1"][0] == 1
        async with Runner(restarted()) as second:
            await second.polls(5)
            assert second.payloads == []  # already announced before the restart
            _store(inbox, "loc1", "b")
            assert await second.events(1) == [{"location_id": "loc1", "high_water": 2}]
        async with Runner(_trigger(inbox_url)) as stateless:
            # Without a state store a restart rings once for what is pending.
            assert await stateless.events(1) == [{"location_id": "loc1", "high_water": 2}]
            await stateless.polls(3)
            assert len(stateless.payloads) == 1

    run(scenario)


def test_a_pending_mark_is_rung_again_after_resignal_after(inbox_url: str, inbox: Inbox) -> None:
    async def scenario() -> None:
        trigger = _trigger(inbox_url)
        trigger.resignal_after = 0  # every look counts as "long ago"
        _store(inbox, "loc1", "a")
        async with Runner(trigger) as runner:
            assert await runner.events(3) == [{"location_id": "loc1", "high_water": 1}] * 3

    run(scenario)


def test_inbox_errors_are_backed_off_and_the_trigger_recovers(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    url = f"sqlite:///{blocker}/inbox.db"

    async def scenario() -> None:
        trigger = _trigger(url)
        trigger.max_backoff = 0.05
        async with Runner(trigger) as runner:
            await runner.until(lambda: trigger.failures >= 4, "four failures")
            assert runner.payloads == [] and trigger.polls == 0  # failing, not raising
            os.remove(blocker)
            inbox = open_inbox(url)
            _store(inbox, "loc1", "a")
            assert await runner.events(1) == [{"location_id": "loc1", "high_water": 1}]
            assert trigger.failures == 0
            inbox.close()

    run(scenario)


class AmbiguousStateStore:
    """What the triggerer gives a trigger shared by several assets: the unsubscripted accessors refuse."""

    async def aget(self, key: str, default: Any = None) -> Any:
        raise ValueError("Task has 2 concrete inlets and outlets — use context['asset_state_store'][MY_ASSET]")

    async def aset(self, key: str, value: Any) -> None:
        raise ValueError("Task has 2 concrete inlets and outlets — use context['asset_state_store'][MY_ASSET]")


def test_a_trigger_shared_by_several_assets_keeps_its_marks_in_memory(
    inbox_url: str, inbox: Inbox, capfd: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        trigger = _trigger(inbox_url)
        trigger.asset_state_store = AmbiguousStateStore()  # type: ignore[assignment]
        _store(inbox, "loc1", "a")
        async with Runner(trigger) as runner:
            assert await runner.events(1) == [{"location_id": "loc1", "high_water": 1}]
            await runner.polls(3)
            assert len(runner.payloads) == 1
            _store(inbox, "loc1", "b")
            assert (await runner.events(2))[1] == {"location_id": "loc1", "high_water": 2}

    run(scenario)
    out, err = capfd.readouterr()  # the trigger logs through Airflow's structlog, as in the triggerer
    assert (out + err).count("cannot read its asset state") == 1
    assert (out + err).count("asset state") == 1  # said once, not at every ring
