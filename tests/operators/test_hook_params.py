"""One rule for the connection arguments of every GHL operator, sensor, export and trigger (GHLHookMixin):
the task's location_id is the hook's default location, hook_params win; same template fields and colour."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from airflow.sdk import DAG, BaseOperator
from structlog.testing import capture_logs

from airflow_provider_ghl.hooks.mixin import GHL_UI_COLOR, GHLHookMixin
from airflow_provider_ghl.operators.contacts import GHLGetContactOperator, GHLSearchContactsOperator
from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.operators.export import GHLExportContactsOperator
from airflow_provider_ghl.operators.token import GHLRefreshTokenOperator
from airflow_provider_ghl.sensors.ghl import GHLContactChangedSensor, GHLNewNoteSensor
from airflow_provider_ghl.triggers.ghl import GHLNewNoteTrigger

CONN_ID = "ghl_rule"
CONN_LOCATION = "ConnLocation"

#: One task of each family, built with the given connection arguments.
FAMILY: dict[str, Callable[..., BaseOperator]] = {
    "operator": lambda **kw: GHLGetContactOperator(task_id="op", contact_id="c1", **kw),
    "list operator": lambda **kw: GHLSearchContactsOperator(task_id="search", **kw),
    "sensor": lambda **kw: GHLNewNoteSensor(task_id="sensor", contact_id="c1", **kw),
    "export": lambda **kw: GHLExportContactsOperator(task_id="export", output_path="/tmp/ghl-export", **kw),
    "enrichment": lambda **kw: GHLEnrichContactsOperator(task_id="enrich", output_path="/tmp/ghl-enrich", **kw),
}
#: The token operator takes no location_id (the token set is the connection's), but hook_params the same way.
ALL = {**FAMILY, "token operator": lambda **kw: GHLRefreshTokenOperator(task_id="refresh", **kw)}


@pytest.fixture(autouse=True)
def _connection(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "ghl", "password": "pit-rule", "extra": {"location_id": CONN_LOCATION}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))


@pytest.mark.parametrize("kind", list(ALL))
def test_hook_params_win_and_reach_the_hook(kind: str) -> None:
    task: Any = ALL[kind](ghl_conn_id=CONN_ID)
    assert isinstance(task, GHLHookMixin)
    assert task.hook.config.location_id == CONN_LOCATION  # nothing given: the connection's
    tuned: Any = ALL[kind](ghl_conn_id=CONN_ID, hook_params={"location_id": "ParamLocation", "timeout": 7.0})
    assert tuned.hook.config.location_id == "ParamLocation"
    assert tuned.hook.config.timeout == 7.0
    assert tuned.hook_params == {"location_id": "ParamLocation", "timeout": 7.0}


@pytest.mark.parametrize("kind", list(FAMILY))
def test_location_id_is_the_hooks_default_unless_hook_params_name_one(kind: str) -> None:
    task: Any = FAMILY[kind](ghl_conn_id=CONN_ID, location_id="TaskLocation")
    assert task.hook.config.location_id == "TaskLocation"
    # Both given: no duplicate-keyword TypeError anywhere, and hook_params win.
    both: Any = FAMILY[kind](
        ghl_conn_id=CONN_ID, location_id="TaskLocation", hook_params={"location_id": "ParamLocation"}
    )
    assert both.location_id == "TaskLocation"
    assert both.hook.config.location_id == "ParamLocation"


def test_the_trigger_follows_the_same_rule() -> None:
    def trigger(**kwargs: Any) -> GHLNewNoteTrigger:
        since = datetime.now(UTC).isoformat()
        return GHLNewNoteTrigger(ghl_conn_id=CONN_ID, deadline=since, contact_id="c1", since=since, **kwargs)

    assert trigger().make_hook().config.location_id == CONN_LOCATION
    assert trigger(location_id="TaskLocation").make_hook().config.location_id == "TaskLocation"
    pinned = trigger(location_id="TaskLocation", hook_params={"location_id": "ParamLocation", "timeout": 7.0})
    assert pinned.make_hook().config.location_id == "ParamLocation"
    assert pinned.make_hook().config.timeout == 7.0


def test_a_trigger_keeps_only_json_hook_params_whoever_builds_it() -> None:
    since = datetime.now(UTC).isoformat()
    with capture_logs() as logs:
        trigger = GHLNewNoteTrigger(
            ghl_conn_id=CONN_ID, deadline=since, contact_id="c1", since=since,
            hook_params={"timeout": 5.0, "token_store": object(), "retry_backoff": 0.05},
        )  # fmt: skip
    kwargs = trigger.serialize()[1]
    assert kwargs["hook_params"] == {"timeout": 5.0, "retry_backoff": 0.05}
    json.dumps(kwargs)
    warnings = [e["event"] for e in logs if e["log_level"] == "warning"]
    assert warnings == ["hook_params['token_store'] is not JSON and does not reach the trigger's hook."]


def test_same_template_fields_first_and_same_colour() -> None:
    for kind, build in ALL.items():
        task = build(ghl_conn_id=CONN_ID)
        expected = ("ghl_conn_id",) if kind == "token operator" else ("ghl_conn_id", "location_id")
        assert tuple(task.template_fields)[: len(expected)] == expected, kind
        assert task.ui_color == GHL_UI_COLOR, kind
    changed = GHLContactChangedSensor(task_id="changed", ghl_conn_id=CONN_ID)
    assert tuple(changed.template_fields)[:2] == ("ghl_conn_id", "location_id")


def test_the_token_operator_takes_no_location_id() -> None:
    with pytest.raises(TypeError, match="location_id"):
        GHLRefreshTokenOperator(task_id="refresh", ghl_conn_id=CONN_ID, location_id="TaskLocation")


def test_connection_arguments_work_with_default_args_partial_and_expand() -> None:
    """Airflow sees the mixin's arguments as the operator's own: default_args fill them, and partial(), expand()
    and expand_kwargs() accept them (they raise TypeError for an argument no __init__ in the MRO declares)."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with DAG("ghl_rule", schedule=None, start_date=start, default_args={"ghl_conn_id": CONN_ID}) as dag:
        task = GHLGetContactOperator(task_id="get", contact_id="c1")
        sensor = GHLNewNoteSensor(task_id="notes", contact_id="c1")
        GHLExportContactsOperator.partial(task_id="export", output_path="/tmp/x").expand_kwargs(
            [{"location_id": "A", "ghl_conn_id": CONN_ID}]
        )
        GHLGetContactOperator.partial(task_id="mapped", contact_id="c1").expand(location_id=["A", "B"])
    assert task.ghl_conn_id == CONN_ID and sensor.ghl_conn_id == CONN_ID
    assert set(dag.task_dict) == {"get", "notes", "export", "mapped"}
