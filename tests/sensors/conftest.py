"""Fixtures of the sensor tests: the session sandbox with a roomy budget and a ``ghl`` connection to its first
location, one scenario per sensor (a wait that is not over yet, the change in the sandbox that ends it, and the
value to expect), and a driver for a trigger's ``run()`` while the sandbox data changes."""

from __future__ import annotations

import asyncio
import importlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_provider_ghl.checks import parse_datetime as parse_time
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.ratelimit import reset_limiters
from airflow_provider_ghl.sensors.ghl import (
    GHLBaseSensor,
    GHLContactChangedSensor,
    GHLContactExistsSensor,
    GHLNewAppointmentSensor,
    GHLNewNoteSensor,
    GHLTaskCompletedSensor,
)
from airflow_provider_ghl.triggers.ghl import GHLConditionTrigger
from ghl_sandbox.testing import SandboxServer

CONN_ID = "ghl_sensors"
#: The sandbox's budget for these tests: roomy, so no test waits for the rate limiter.
BUDGET = {"max_requests": 5000, "interval_ms": 1000}


@pytest.fixture
def ghl(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The session sandbox, reset, and connection ``ghl_sensors`` to its location 0 (Private Integration Token)."""
    sandbox.reset(**BUDGET)
    reset_limiters()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(sandbox.airflow_connection(0)))
    return sandbox


@pytest.fixture
def hook(ghl: SandboxServer) -> Iterator[GHLHook]:
    """A sync hook on the same connection, to change the sandbox data the way a GHL user would."""
    hook = GHLHook(CONN_ID, retry_backoff=0.05)
    yield hook
    hook.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Case:
    """One sensor's wait: ``kwargs`` is not satisfied yet, ``change()`` satisfies it, ``check`` the XCom value."""

    name: str
    sensor_class: type[GHLBaseSensor]
    kwargs: dict[str, Any]
    change: Callable[[], object]
    check: Callable[[Any], None]

    def sensor(self, **overrides: Any) -> GHLBaseSensor:
        kwargs = {"task_id": f"wait_{self.name}", "ghl_conn_id": CONN_ID, "poke_interval": 0.1, "timeout": 30}
        return self.sensor_class(**{**kwargs, **self.kwargs, **overrides})


def _contact_changed(ghl: SandboxServer, hook: GHLHook) -> Case:
    location = ghl.location_ids[0]
    # Seeded contacts were updated before the sandbox started: none has changed since now.
    since = now_iso()
    touched: list[str] = []

    def check(value: Any) -> None:
        assert sorted(value["ids"]) == sorted(touched)
        assert value == {"ids": value["ids"], "total": 3, "since": since, "location_id": location}

    return Case(
        "contact_changed",
        GHLContactChangedSensor,
        {"since": since, "min_count": 3, "max_ids": 10},
        lambda: touched.extend(ghl.touch_contacts(location, count=3)),
        check,
    )


def _contact_exists(ghl: SandboxServer, hook: GHLHook) -> Case:
    email = f"sensor.{uuid.uuid4().hex[:8]}@example.com"
    created: list[str] = []
    return Case(
        "contact_exists",
        GHLContactExistsSensor,
        {"contact_email": email},
        lambda: created.append(hook.create_contact({"firstName": "Sensor", "email": email})["id"]),
        # The contact found, as the duplicate-lookup operator returns it.
        lambda value: _assert_equal(
            {k: value.get(k) for k in ("id", "email", "firstName")},
            {"id": created[0], "email": email, "firstName": "Sensor"},
        ),
    )


def _task_completed(ghl: SandboxServer, hook: GHLHook) -> Case:
    contact = ghl.contact_ids(ghl.location_ids[0])[3]
    task = hook.create_task(contact, title="sensor", due_date="2030-01-01T00:00:00.000Z")
    return Case(
        "task_completed",
        GHLTaskCompletedSensor,
        {"contact_id": contact, "ghl_task_id": task["id"]},
        lambda: hook.complete_task(contact, task["id"]),
        lambda value: _assert_equal(value, [task["id"]]),
    )


def _all_tasks_completed(ghl: SandboxServer, hook: GHLHook) -> Case:
    contact = ghl.contact_ids(ghl.location_ids[0])[4]
    hook.create_task(contact, title="sensor", due_date="2030-01-01T00:00:00.000Z")
    tasks = hook.get_tasks(contact)

    def change() -> None:
        for task in tasks:
            if not task["completed"]:
                hook.complete_task(contact, task["id"])

    return Case(
        "all_tasks_completed",
        GHLTaskCompletedSensor,
        {"contact_id": contact},
        change,
        lambda value: _assert_equal(sorted(value), sorted(t["id"] for t in tasks)),
    )


def _new_note(ghl: SandboxServer, hook: GHLHook) -> Case:
    contact = ghl.contact_ids(ghl.location_ids[0])[5]
    created: list[str] = []
    return Case(
        "new_note",
        GHLNewNoteSensor,
        {"contact_id": contact, "since": now_iso()},
        lambda: created.append(hook.create_note(contact, "sensor note")["id"]),
        lambda value: _assert_equal(value, created),
    )


def _new_appointment(ghl: SandboxServer, hook: GHLHook) -> Case:
    # The sandbox has no route that books an appointment; a reset with a later anchor moves every seeded date
    # forward by a day (same ids), which to a sensor is the same as an appointment booked since.
    contacts = ghl.contact_ids(ghl.location_ids[0])
    contact, events = next((c, e) for c in contacts if (e := hook.get_appointments(c)))
    added = {e["id"]: parse_time(e["dateAdded"]) for e in events}
    since = max(added.values()) + timedelta(milliseconds=1)
    shift = timedelta(days=1)
    later_anchor = (parse_time(ghl.info["anchor"]) + shift).isoformat()
    expected = [i for i, t in sorted(added.items(), key=lambda kv: (kv[1], kv[0])) if t + shift >= since]
    return Case(
        "new_appointment",
        GHLNewAppointmentSensor,
        {"contact_id": contact, "since": since.isoformat()},
        lambda: ghl.reset(**BUDGET, anchor=later_anchor),
        lambda value: _assert_equal(value, expected),
    )


def _assert_equal(got: Any, expected: Any) -> None:
    assert got == expected


CASES: dict[str, Callable[[SandboxServer, GHLHook], Case]] = {
    "contact_changed": _contact_changed,
    "contact_exists": _contact_exists,
    "task_completed": _task_completed,
    "all_tasks_completed": _all_tasks_completed,
    "new_note": _new_note,
    "new_appointment": _new_appointment,
}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, ghl: SandboxServer, hook: GHLHook) -> Case:
    """Each sensor's scenario in turn (the task sensor twice: one task, all tasks); sandbox stats cleared."""
    built = CASES[request.param](ghl, hook)
    ghl.clear_stats()
    return built


def drive(trigger: GHLConditionTrigger, change: Callable[[], object] | None = None, *, after: float = 0.4) -> dict:
    """Run ``trigger.run()`` on an event loop; ``after`` seconds into it, make ``change`` from a thread.

    Asserts that the trigger was still waiting when the change came and that it yields exactly one event.
    """

    async def main() -> dict:
        events = trigger.run()
        first = asyncio.ensure_future(anext(events))
        if change is not None:
            await asyncio.sleep(after)
            assert not first.done(), f"the trigger did not wait for the change: {first.result().payload}"
            await asyncio.to_thread(change)
        event = await asyncio.wait_for(first, 20)
        with pytest.raises(StopAsyncIteration):
            await anext(events)
        return event.payload

    return asyncio.run(main())


def rebuild(trigger: GHLConditionTrigger) -> GHLConditionTrigger:
    """What the triggerer does: import the serialized classpath and build it from the kwargs, through JSON."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
