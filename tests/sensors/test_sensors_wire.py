"""Each sensor in poke mode and deferred mode, over HTTP against the sandbox: not done, then done after the data
changed in GHL; deferred, the trigger keeps polling until the change and its value is what poke mode returns."""

from __future__ import annotations

import threading
import time

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_ghl.sensors.ghl import GHLContactChangedSensor, GHLNewNoteSensor
from ghl_sandbox.testing import SandboxServer
from tests.sensors.conftest import CONN_ID, Case, drive, now_iso, rebuild


def test_poke_is_one_request_and_false_until_the_data_changes(case: Case, ghl: SandboxServer) -> None:
    sensor = case.sensor()
    result = sensor.poke({})
    assert not result.is_done and result.xcom_value is None
    assert ghl.stats()["requests_total"] == 1

    case.change()
    result = sensor.poke({})
    assert result.is_done
    case.check(result.xcom_value)


def test_poke_mode_execute_waits_for_the_change(case: Case) -> None:
    sensor = case.sensor(deferrable=False)
    timer = threading.Timer(0.4, case.change)
    timer.start()
    try:
        value = sensor.execute({})
    finally:
        timer.join()
    case.check(value)


def test_deferred_sensor_polls_in_the_trigger_until_the_data_changes(case: Case, ghl: SandboxServer) -> None:
    sensor = case.sensor(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert deferred.value.method_name == "execute_complete"
    assert isinstance(deferred.value.trigger, sensor.trigger_class)

    trigger = rebuild(deferred.value.trigger)
    assert trigger.poll_interval == 0.1
    payload = drive(trigger, case.change)

    assert payload["status"] == "success", payload
    case.check(payload["value"])
    # The value reaches XCom as execute_complete's return value, exactly as poke mode returns it.
    case.check(sensor.execute_complete({}, payload))


def test_deferrable_sensor_already_done_returns_without_deferring(case: Case, ghl: SandboxServer) -> None:
    case.change()
    ghl.clear_stats()
    value = case.sensor(deferrable=True).execute({})
    case.check(value)
    assert ghl.stats()["requests_total"] == 1


def test_deferrable_defaults_to_the_airflow_setting() -> None:
    # Read when the class is defined, as Airflow's own operators do; the test config leaves it off.
    from airflow.sdk import conf

    sensor = GHLNewNoteSensor(task_id="t", contact_id="c")
    assert sensor.deferrable is conf.getboolean("operators", "default_deferrable", fallback=False) is False


def test_contact_changed_ands_the_filters_and_returns_the_oldest_changes_first(ghl: SandboxServer) -> None:
    location = ghl.location_ids[0]
    since = now_iso()
    touched = []
    for contact_id in ghl.contact_ids(location)[10:15]:
        time.sleep(0.005)  # distinct dateUpdated, so the order is the order of the changes
        touched += ghl.touch_contacts(location, ids=[contact_id])
    ghl.clear_stats()

    first_two = GHLContactChangedSensor(task_id="c", ghl_conn_id=CONN_ID, since=since, min_count=5, max_ids=2)
    result = first_two.poke({})
    assert result.is_done and result.xcom_value["ids"] == touched[:2] and result.xcom_value["total"] == 5

    only_one = {"field": "id", "operator": "eq", "value": touched[3]}
    filtered = GHLContactChangedSensor(task_id="c", ghl_conn_id=CONN_ID, since=since, filters=[only_one])
    assert filtered.poke({}).xcom_value["ids"] == [touched[3]]
    filtered.min_count = 2
    assert not filtered.poke({}).is_done
    assert ghl.stats()["requests_by_route"] == {"POST /contacts/search": 3}  # one search per check, no paging


def test_contact_changed_until_bounds_the_window(ghl: SandboxServer) -> None:
    """Changes at or after ``until`` do not count: the window is ``[since, until)``, applied by GHL's search."""
    since = now_iso()
    time.sleep(0.01)
    until = now_iso()
    time.sleep(0.01)
    ghl.touch_contacts(ghl.location_ids[0], count=2)
    bounded = GHLContactChangedSensor(task_id="bounded", ghl_conn_id=CONN_ID, since=since, until=until)
    assert not bounded.poke({}).is_done
    open_ended = GHLContactChangedSensor(task_id="open", ghl_conn_id=CONN_ID, since=since)
    assert open_ended.poke({}).xcom_value["total"] == 2
