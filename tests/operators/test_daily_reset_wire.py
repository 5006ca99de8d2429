"""The daily reserve met by an operator: fail, or (``wait_for_daily_reset``) defer until the daily reset and
run again, holding no worker slot meanwhile. Over the wire, with the default (``host``) shared budget."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import TaskDeferred

from airflow_provider_ghl.exceptions import GHLDailyBudgetExhausted, GHLInputError
from airflow_provider_ghl.hooks.ratelimit import DAILY_RESET_SLACK, next_daily_reset
from airflow_provider_ghl.operators.contacts import GHLGetContactOperator
from ghl_sandbox.testing import SandboxServer
from tests.operators.conftest import RecordingTaskInstance


@pytest.fixture
def at_reserve(
    ops_sandbox: SandboxServer,
    location: dict[str, Any],
    ghl_conn: str,
    run_operator: Callable[[Any], tuple[Any, dict[str, Any]]],
) -> Callable[[bool], GHLGetContactOperator]:
    """A get-contact operator that has spent the daily budget down to the (default, 50) reserve."""

    def make(wait_for_daily_reset: bool) -> GHLGetContactOperator:
        contact_id = ops_sandbox.contact_ids(location["id"])[0]
        operator = GHLGetContactOperator(
            task_id="get", ghl_conn_id=ghl_conn, contact_id=contact_id, wait_for_daily_reset=wait_for_daily_reset
        )
        ops_sandbox.reset(max_requests=5000, interval_ms=1000, daily_limit=52)
        for _ in range(2):
            run_operator(operator)
        return operator

    return make


def test_the_reserve_defers_until_the_daily_reset_then_runs_again(
    ops_sandbox: SandboxServer,
    at_reserve: Callable[[bool], GHLGetContactOperator],
    run_operator: Callable[[Any], tuple[Any, dict[str, Any]]],
) -> None:
    operator = at_reserve(True)
    before = ops_sandbox.stats()["requests_total"]
    with pytest.raises(TaskDeferred) as deferred:
        run_operator(operator)
    assert ops_sandbox.stats()["requests_total"] == before  # stopped before sending
    trigger = deferred.value.trigger
    assert isinstance(trigger, DateTimeTrigger)  # a triggerer waits; no worker slot is held
    assert trigger.moment == next_daily_reset()
    assert trigger.moment.time() == (dt.datetime.min + DAILY_RESET_SLACK).time()
    assert deferred.value.method_name == "resume_after_daily_reset"

    ops_sandbox.reset(max_requests=5000, interval_ms=1000)  # the new day: the daily budget is back
    ti = RecordingTaskInstance()
    resumed = getattr(operator, deferred.value.method_name)({"ti": ti}, event=trigger.moment)
    assert resumed["id"] == operator.contact_id
    assert ti.xcom  # the contact link, as in a first run


def test_without_the_option_the_reserve_fails_the_task(
    at_reserve: Callable[[bool], GHLGetContactOperator],
    run_operator: Callable[[Any], tuple[Any, dict[str, Any]]],
) -> None:
    operator = at_reserve(False)
    with pytest.raises(GHLDailyBudgetExhausted):
        run_operator(operator)


def test_next_daily_reset_is_the_next_utc_midnight() -> None:
    late = dt.datetime(2026, 12, 1, 23, 59, 30, tzinfo=dt.UTC)
    assert next_daily_reset(late) == dt.datetime(2026, 12, 2, 0, 1, tzinfo=dt.UTC)
    east = dt.datetime(2026, 12, 2, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))  # 22:00 UTC on the 1st
    assert next_daily_reset(east) == dt.datetime(2026, 12, 2, 0, 1, tzinfo=dt.UTC)


def test_wait_for_daily_reset_is_validated(ghl_conn: str) -> None:
    operator = GHLGetContactOperator(task_id="get", ghl_conn_id=ghl_conn, contact_id="c1", wait_for_daily_reset="yes")
    with pytest.raises(GHLInputError, match="wait_for_daily_reset"):
        operator.execute({"ti": None})
