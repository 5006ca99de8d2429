"""The hook's own argument checks are those of checks.py: GHLInputError naming the argument, nothing sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_ghl.checks import require_int
from airflow_provider_ghl.exceptions import GHLConfigError, GHLInputError
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer

BAD_CALLS: list[tuple[str, Callable[[GHLHook], Any]]] = [
    ("page_limit", lambda hook: hook.search_contacts(page_limit=501)),
    ("page_limit", lambda hook: hook.search_contacts(page_limit=0)),
    ("page_limit", lambda hook: list(hook.iter_contacts(page_limit=0))),
    ("email", lambda hook: hook.get_duplicate_contact()),
    ("email", lambda hook: hook.get_duplicate_contact(email="a b@example.com")),
    ("phone", lambda hook: hook.get_duplicate_contact(phone="+1 555")),
    ("action", lambda hook: hook.bulk_update_tags(["c1"], ["vip"], "toggle")),  # type: ignore[arg-type]
    ("kinds", lambda hook: list(hook.fetch_contact_children(["c1"], kinds=[]))),
    ("kinds", lambda hook: list(hook.fetch_contact_children(["c1"], kinds=["tasks", "emails"]))),
]


@pytest.mark.parametrize(("field", "bad_call"), BAD_CALLS, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_CALLS)])
def test_bad_hook_arguments_name_the_argument_and_send_nothing(
    pit_hook: GHLHook, fast_sandbox: SandboxServer, field: str, bad_call: Callable[[GHLHook], Any]
) -> None:
    before = fast_sandbox.stats()["requests_total"]
    with pytest.raises(GHLInputError) as raised:
        bad_call(pit_hook)
    assert raised.value.field == field
    # Still the type plain Python callers of a hook catch, and a config error Airflow does not retry.
    assert isinstance(raised.value, ValueError)
    assert isinstance(raised.value, GHLConfigError)
    assert pit_hook.request_stats.as_dict()["requests"] == 0
    assert fast_sandbox.stats()["requests_total"] == before


def test_the_hook_and_the_operators_judge_page_limit_alike(pit_hook: GHLHook) -> None:
    # One function judges it, so the message a DAG author sees is the same from the hook and from an operator.
    with pytest.raises(GHLInputError) as from_hook:
        pit_hook.search_contacts(page_limit=501)
    with pytest.raises(GHLInputError) as from_checks:
        require_int("page_limit", 501, minimum=1, maximum=500)
    assert str(from_hook.value) == str(from_checks.value)


def test_max_workers_is_checked_when_the_hook_is_made() -> None:
    with pytest.raises(GHLInputError, match="max_workers"):
        GHLHook("unused", max_workers=0)
