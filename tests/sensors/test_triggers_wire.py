"""The triggers against the sandbox: JSON-only kwargs without secrets, an absolute deadline, failed requests as
error events; and ``execute_complete`` turning each event into the task's outcome."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_provider_ghl.checks import parse_datetime as parse_time
from airflow_provider_ghl.exceptions import (
    GHLConfigError,
    GHLError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLValidationError,
)
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.sensors.ghl import GHLNewNoteSensor
from airflow_provider_ghl.triggers.ghl import GHLConditionTrigger
from ghl_sandbox.testing import SandboxServer
from tests.sensors.conftest import CASES, CONN_ID, Case, drive, rebuild


def deferred_trigger(case: Case, **sensor_kwargs: Any) -> TaskDeferred:
    """What the case's deferrable sensor raises when its first check finds the wait not over."""
    with pytest.raises(TaskDeferred) as deferred:
        case.sensor(deferrable=True, **sensor_kwargs).execute({})
    return deferred.value


def with_kwargs(trigger: GHLConditionTrigger, **changes: Any) -> GHLConditionTrigger:
    _, kwargs = trigger.serialize()
    return type(trigger)(**{**kwargs, **changes})


def _json_only(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_only(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)


def test_trigger_kwargs_are_plain_json_without_secrets(case: Case, ghl: SandboxServer) -> None:
    before = datetime.now(UTC)
    deferred = deferred_trigger(case, timeout=120)
    trigger = deferred.trigger
    classpath, kwargs = trigger.serialize()

    assert classpath == f"airflow_provider_ghl.triggers.ghl.{type(trigger).__name__}"
    assert _json_only(kwargs) and rebuild(trigger).serialize() == (classpath, kwargs)
    text = json.dumps(kwargs)
    assert ghl.token(0) not in text and "pit-" not in text and "password" not in text
    assert kwargs["ghl_conn_id"] == CONN_ID and kwargs["poll_interval"] == 0.1
    # The deadline is absolute (to the millisecond): fixed when the sensor deferred, whenever the trigger starts.
    deadline = parse_time(kwargs["deadline"])
    window = timedelta(seconds=120)
    assert before + window - timedelta(milliseconds=1) <= deadline <= datetime.now(UTC) + window
    assert rebuild(trigger).deadline == kwargs["deadline"]
    # Airflow's own deferral timeout is a backstop that fires after the trigger's deadline.
    assert timedelta(seconds=120) < deferred.timeout <= timedelta(seconds=180)


def test_deadline_in_the_past_times_out_without_a_request(case: Case, ghl: SandboxServer) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    sensor = case.sensor(deferrable=True)
    trigger = with_kwargs(deferred_trigger(case).trigger, deadline=past)
    ghl.clear_stats()

    payload = drive(trigger)

    assert payload["status"] == "timeout" and payload["deadline"] == past
    assert ghl.stats()["requests_total"] == 0
    with pytest.raises(AirflowSensorTimeout, match="not met by the deadline"):
        sensor.execute_complete({}, payload)


def test_deadline_reached_while_polling(ghl: SandboxServer, hook: GHLHook) -> None:
    case = CASES["new_note"](ghl, hook)
    deadline = (datetime.now(UTC) + timedelta(seconds=0.6)).isoformat()
    trigger = with_kwargs(deferred_trigger(case).trigger, deadline=deadline)
    ghl.clear_stats()

    payload = drive(trigger)

    assert payload["status"] == "timeout"
    assert datetime.now(UTC) >= parse_time(deadline)
    assert ghl.stats()["requests_total"] >= 3  # it kept polling every 0.1 s until then


#: Per scenario: trigger kwargs that make GHL refuse the request, the error class, and GHL's message.
ERRORS: dict[str, tuple[dict[str, Any], type[GHLError], str]] = {
    "contact_changed": (
        {"filters": [{"field": "dateAdded", "operator": "eq", "value": "x"}]},
        GHLValidationError,
        "operator eq is not supported for dates",
    ),
    "contact_exists": ({"location_id": "<location 1>"}, GHLForbiddenError, "does not have access to this location"),
    "task_completed": ({"contact_id": "nosuchcontact"}, GHLNotFoundError, "Contact with id nosuchcontact not found"),
    "all_tasks_completed": ({"contact_id": "nosuchcontact"}, GHLNotFoundError, "nosuchcontact not found"),
    "new_note": ({"contact_id": "nosuchcontact"}, GHLNotFoundError, "Contact with id nosuchcontact not found"),
    "new_appointment": ({"contact_id": "nosuchcontact"}, GHLNotFoundError, "Contact with id nosuchcontact not found"),
}


def test_a_refused_request_is_an_error_event_and_fails_the_task_with_the_cause(case: Case, ghl: SandboxServer) -> None:
    changes, error, message = ERRORS[case.name]
    changes = {k: ghl.location_ids[1] if v == "<location 1>" else v for k, v in changes.items()}
    sensor = case.sensor(deferrable=True)
    trigger = with_kwargs(deferred_trigger(case).trigger, **changes)

    payload = drive(trigger)

    assert payload["status"] == "error" and payload["error_type"] == error.__name__
    assert message in payload["message"]
    assert ghl.token(0) not in json.dumps(payload)
    with pytest.raises(error, match=message):
        sensor.execute_complete({}, payload)
    # Poke mode fails the same way.
    with pytest.raises(error, match=message):
        case.sensor(**changes).poke({})


def test_execute_complete_returns_the_value_or_raises() -> None:
    sensor = GHLNewNoteSensor(task_id="wait", contact_id="c1")
    assert sensor.execute_complete({}, {"status": "success", "value": ["n1"]}) == ["n1"]
    with pytest.raises(AirflowSensorTimeout, match="wait: late"):
        sensor.execute_complete({}, {"status": "timeout", "message": "late"})
    # The class the hook raised in the triggerer comes back, so retries behave as in poke mode.
    with pytest.raises(GHLNotFoundError, match="Contact with id c1 not found"):
        sensor.execute_complete(
            {}, {"status": "error", "error_type": "GHLNotFoundError", "message": "Contact with id c1 not found"}
        )
    with pytest.raises(GHLConfigError) as config_error:
        sensor.execute_complete({}, {"status": "error", "error_type": "GHLConfigError", "message": "bad conn"})
    assert isinstance(config_error.value, AirflowFailException)
    with pytest.raises(GHLError, match="ValueError: boom"):
        sensor.execute_complete({}, {"status": "error", "error_type": "ValueError", "message": "boom"})
    with pytest.raises(GHLError, match="GHLDailyBudgetExhausted: spent"):
        sensor.execute_complete({}, {"status": "error", "error_type": "GHLDailyBudgetExhausted", "message": "spent"})
    for event in (None, {}, {"status": "cancelled"}):
        with pytest.raises(GHLError, match="unexpected trigger event"):
            sensor.execute_complete({}, event)


def test_hook_params_that_are_not_json_stay_on_the_worker(ghl: SandboxServer, hook: GHLHook) -> None:
    case = CASES["new_note"](ghl, hook)
    params = {"retry_backoff": 0.05, "timeout": 5.0, "token_store": object()}
    trigger = deferred_trigger(case, hook_params=params).trigger
    assert trigger.serialize()[1]["hook_params"] == {"retry_backoff": 0.05, "timeout": 5.0}


def test_skip_on_timeout_skips_only_the_timeout(ghl: SandboxServer) -> None:
    """Deferred and in poke mode a timeout skips the task; an error still fails it."""
    sensor = GHLNewNoteSensor(task_id="wait", contact_id="c1", skip_on_timeout=True)
    with pytest.raises(AirflowSkipException, match="wait: late"):
        sensor.execute_complete({}, {"status": "timeout", "message": "late"})
    with pytest.raises(GHLNotFoundError):
        sensor.execute_complete({}, {"status": "error", "error_type": "GHLNotFoundError", "message": "gone"})

    contact = ghl.contact_ids(ghl.location_ids[0])[0]
    poking = GHLNewNoteSensor(
        task_id="wait", ghl_conn_id=CONN_ID, contact_id=contact, since="2099-01-01T00:00:00Z",
        skip_on_timeout=True, deferrable=False, poke_interval=0.05, timeout=0.2,
    )  # fmt: skip
    with pytest.raises(AirflowSkipException, match="timed out"):
        poking.execute({})
    poking.skip_on_timeout = False
    with pytest.raises(AirflowSensorTimeout):
        poking.execute({})
