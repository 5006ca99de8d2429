"""Bad sensor arguments fail with GHLInputError naming the argument, in both modes, before any request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_provider_ghl.exceptions import GHLInputError
from airflow_provider_ghl.sensors.ghl import (
    GHLBaseSensor,
    GHLContactChangedSensor,
    GHLContactExistsSensor,
    GHLNewAppointmentSensor,
    GHLNewNoteSensor,
    GHLTaskCompletedSensor,
)
from ghl_sandbox.testing import SandboxServer
from tests.sensors.conftest import CONN_ID

SINCE = "2026-01-01T00:00:00Z"
VIP = {"field": "tags", "operator": "eq", "value": "vip"}

BAD: list[tuple[type[GHLBaseSensor], dict[str, Any], str]] = [
    (GHLTaskCompletedSensor, {"contact_id": ""}, "contact_id"),
    (GHLTaskCompletedSensor, {"contact_id": None}, "contact_id"),
    (GHLTaskCompletedSensor, {"contact_id": "a/b"}, "contact_id"),
    (GHLTaskCompletedSensor, {"contact_id": "c1", "ghl_task_id": "two words"}, "ghl_task_id"),
    (GHLNewNoteSensor, {"contact_id": "", "since": SINCE}, "contact_id"),
    (GHLNewNoteSensor, {"contact_id": "c1", "since": "yesterday-ish"}, "since"),
    (GHLNewAppointmentSensor, {"contact_id": "c1", "since": 12}, "since"),
    (GHLNewAppointmentSensor, {"contact_id": "c1"}, "since"),  # no since and no data interval in the context
    (GHLContactExistsSensor, {}, "contact_email"),
    (GHLContactExistsSensor, {"contact_email": "", "contact_phone": ""}, "contact_email"),
    (GHLContactExistsSensor, {"contact_phone": ["+15550100"]}, "contact_phone"),
    (GHLContactExistsSensor, {"contact_email": "ada lovelace@example.com"}, "contact_email"),
    (GHLContactChangedSensor, {"since": SINCE, "filters": VIP}, "filters"),
    (GHLContactChangedSensor, {"since": SINCE, "filters": [1]}, "filters[0]"),
    (GHLContactChangedSensor, {"since": SINCE, "filters": [{"field": "tags"}]}, "filters[0]"),
    (GHLContactChangedSensor, {"since": SINCE, "filters": "[{'not': 'json'}]"}, "filters"),
    (GHLContactChangedSensor, {"since": SINCE, "filters": [{**VIP, "value": object()}]}, "filters"),
    (GHLContactChangedSensor, {"since": SINCE, "max_ids": 501}, "max_ids"),
    (GHLContactChangedSensor, {"since": SINCE, "until": "later"}, "until"),
    (GHLContactChangedSensor, {"since": SINCE, "until": SINCE}, "until"),
    (GHLContactChangedSensor, {"since": SINCE, "min_count": 0}, "min_count"),
    (GHLContactChangedSensor, {"since": SINCE, "query": "q" * 76}, "query"),
    (GHLContactChangedSensor, {"since": SINCE, "query": 42}, "query"),
    (GHLContactChangedSensor, {"since": SINCE, "location_id": "has space"}, "location_id"),
    (GHLContactChangedSensor, {}, "since"),
]  # fmt: skip


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
@pytest.mark.parametrize(("sensor_class", "kwargs", "field"), BAD, ids=lambda v: getattr(v, "__name__", None))
def test_bad_input_names_the_field_and_sends_nothing(
    ghl: SandboxServer, sensor_class: type[GHLBaseSensor], kwargs: dict[str, Any], field: str, deferrable: bool
) -> None:
    sensor = sensor_class(task_id="bad", ghl_conn_id=CONN_ID, deferrable=deferrable, poke_interval=0.1, **kwargs)
    ghl.clear_stats()
    with pytest.raises(GHLInputError) as raised:
        sensor.execute({"data_interval_start": None})
    assert raised.value.field == field and str(raised.value).startswith(f"{field}: ")
    assert ghl.stats()["requests_total"] == 0


def test_since_defaults_to_the_data_interval_start(ghl: SandboxServer) -> None:
    start = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    sensor = GHLContactChangedSensor(
        task_id="changed", ghl_conn_id=CONN_ID, filters='[{"field": "dnd", "operator": "eq", "value": true}]'
    )
    condition = sensor.condition({"data_interval_start": start})
    assert condition.since == "2026-03-01T12:30:00.000Z"
    assert condition.filters == [{"field": "dnd", "operator": "eq", "value": True}]
    assert condition.location_id == ghl.location_ids[0]  # the connection's
    method, kwargs = condition.request()
    assert method == "search_contacts" and kwargs["page_limit"] == 100
    assert kwargs["filters"][0] == {"field": "dateUpdated", "operator": "range", "value": {"gte": condition.since}}
    assert kwargs["sort"] == [{"field": "dateUpdated", "direction": "asc"}]
