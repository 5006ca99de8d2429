"""The alert notifier's narrow units: resolving ``send``, a deadline's context, a context with nothing to tell."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_ghl.alerts import GHLAlertNotifier, _resolve, alerts_of

SENT: list[str] = []


def collect(message: str) -> None:
    SENT.append(message)


def test_send_is_a_callable_or_a_dotted_path_and_a_bad_one_is_named() -> None:
    assert _resolve(collect) is collect
    assert _resolve(f"{__name__}.collect") is collect
    assert _resolve(f"{__name__}:collect") is collect
    assert _resolve("") is None and _resolve(None) is None
    with pytest.raises(ValueError, match="send: a dotted path"):
        _resolve("collect")
    with pytest.raises(ValueError, match="is not callable"):
        _resolve(f"{__name__}.SENT")


def test_a_missed_deadline_is_one_message_also_in_the_triggerer() -> None:
    SENT.clear()
    context = {
        "dag_run": {"dag_id": "ghl_full_export", "run_id": "scheduled__2026-12-07"},
        "deadline": {"id": "d1", "deadline_time": "2026-12-07T06:00:00+00:00"},
    }
    asyncio.run(GHLAlertNotifier(send=collect).async_notify(context))
    assert SENT == [
        "GHL run scheduled__2026-12-07 of ghl_full_export had not finished by its deadline 2026-12-07T06:00:00+00:00."
    ]


def test_a_task_that_succeeded_or_skipped_for_another_reason_tells_nothing() -> None:
    assert alerts_of({"exception": None, "task": object()}) == []


def test_called_as_a_callback_with_a_callable_send_it_renders_and_sends_one_message() -> None:
    from airflow_provider_ghl.exceptions import GHLDailyBudgetExhausted

    SENT.clear()
    notifier = GHLAlertNotifier(send=collect)
    notifier({"exception": GHLDailyBudgetExhausted("spent", remaining=12, reserve=50)})  # as Airflow calls it
    assert SENT == [
        "GHL daily budget of location ? reached its reserve: 12 requests left, reserve 50; ? stopped. It resets at "
        "GHL's next daily reset; set wait_for_daily_reset=True to wait for it instead of failing."
    ]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("max_webhook_lag", "soon", "expected seconds"),
        ("max_webhook_lag", "0", "must be more than 0 seconds"),
        ("max_export_age", -5, "must not be negative"),
    ],
)
def test_the_health_check_names_a_bad_limit_before_it_reads_anything(field: str, value: object, error: str) -> None:
    from airflow_provider_ghl.exceptions import GHLInputError
    from airflow_provider_ghl.operators.health import GHLHealthCheckOperator

    check = GHLHealthCheckOperator(task_id="check", locations=["loc1"], inbox="sqlite:///nonexistent/never-opened")
    setattr(check, field, value)
    with pytest.raises(GHLInputError, match=error) as raised:
        check.execute({})
    assert raised.value.field == field
