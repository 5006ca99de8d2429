"""The request funnel over the wire: shared rate limiting, 429 handling, daily budget, retries and faults."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import requests

from airflow_provider_ghl.exceptions import (
    GHLConnectionError,
    GHLDailyBudgetExhausted,
    GHLNotFoundError,
    GHLServerError,
)
from airflow_provider_ghl.hooks.ghl import ContactChildren, GHLHook
from ghl_sandbox.testing import SandboxServer


@pytest.fixture
def make_hook(fast_sandbox: SandboxServer, conn_factory: Callable[..., str]) -> Callable[..., GHLHook]:
    loc = fast_sandbox.info["locations"][0]
    conn_id = conn_factory(host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"])

    def make(**kwargs: object) -> GHLHook:
        return GHLHook(conn_id, retry_backoff=0.05, **kwargs)  # type: ignore[arg-type]

    return make


def test_eight_threads_share_a_20_per_2s_budget(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    """Two hook instances, four threads each, 200 contacts: every call succeeds and GHL never says 429."""
    fast_sandbox.reset(max_requests=20, interval_ms=2000)
    ids = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])
    assert len(ids) == 200
    results: dict[str, list[ContactChildren]] = {}

    def run(name: str, contact_ids: list[str], kind: str) -> None:
        hook = make_hook(max_workers=4)
        results[name] = list(hook.fetch_contact_children(contact_ids, kinds=(kind,)))

    threads = [
        threading.Thread(target=run, args=("tasks", ids[0::2], "tasks")),
        threading.Thread(target=run, args=("notes", ids[1::2], "notes")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    got = results["tasks"] + results["notes"]
    assert sorted(r.contact_id for r in got) == sorted(ids)
    assert all(r.error is None for r in got)
    stats = fast_sandbox.stats()
    assert stats["responses_429"] == 0
    assert stats["requests_total"] == 200  # nothing retried
    assert stats["peak_concurrency"] <= 8


def test_budget_spent_by_another_client_is_respected(
    fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]
) -> None:
    fast_sandbox.reset(max_requests=10, interval_ms=1500)
    contact = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[0]
    for _ in range(7):  # another process on the same token and location
        requests.get(f"{fast_sandbox.base_url}/contacts/{contact}", headers=fast_sandbox.headers(0), timeout=10)
    hook = make_hook(max_workers=1)
    for _ in range(8):
        hook.get_contact(contact)
    assert fast_sandbox.stats()["responses_429"] == 0


def test_429_with_a_full_window_waits_and_succeeds(
    fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]
) -> None:
    fast_sandbox.reset(max_requests=5, interval_ms=1000)
    contact = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[0]
    for _ in range(5):
        requests.get(f"{fast_sandbox.base_url}/contacts/{contact}", headers=fast_sandbox.headers(0), timeout=10)
    assert make_hook().get_contact(contact)["id"] == contact
    stats = fast_sandbox.stats()
    assert stats["responses_429"] == 1
    assert stats["requests_by_route"]["GET /contacts/{contactId}"] == 7


def test_429_storm(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    ids = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[:30]
    fast_sandbox.set_faults(storm_rate=0.3)
    hook = make_hook()
    assert [hook.get_contact(i)["id"] for i in ids] == ids
    fast_sandbox.set_faults()
    stats = fast_sandbox.stats()
    assert stats["faults"]["storm_429"] > 0
    # A storm 429 left room in the window: backing off is enough, no window-long pause is taken.
    assert stats["requests_total"] == 30 + stats["faults"]["storm_429"]


def test_daily_budget_stops_before_the_reserve(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    fast_sandbox.reset(max_requests=5000, interval_ms=1000, daily_limit=60)
    contact = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[0]
    hook = make_hook(daily_reserve=50)
    for _ in range(10):
        hook.get_contact(contact)
    with pytest.raises(GHLDailyBudgetExhausted, match="50 of 60 left"):
        hook.get_contact(contact)
    assert fast_sandbox.stats()["requests_total"] == 10  # stopped without sending


def test_daily_budget_exhausted_by_the_server(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    fast_sandbox.reset(max_requests=5000, interval_ms=1000, daily_limit=3)
    contact = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[0]
    hook = make_hook(daily_reserve=0)
    for _ in range(3):
        hook.get_contact(contact)
    with pytest.raises(GHLDailyBudgetExhausted):
        hook.get_contact(contact)
    with pytest.raises(GHLDailyBudgetExhausted):
        make_hook(daily_reserve=0).get_contact(contact)  # a new hook shares the limiter's knowledge
    assert fast_sandbox.stats()["requests_total"] == 3


def test_reads_survive_5xx_and_dropped_connections(
    fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]
) -> None:
    location = fast_sandbox.location_ids[0]
    ids = fast_sandbox.contact_ids(location)
    fast_sandbox.set_faults(error_rate=0.25, drop_rate=0.15)
    hook = make_hook()
    assert [hook.get_contact(i)["id"] for i in ids[:25]] == ids[:25]
    assert sorted(c["id"] for c in hook.iter_contacts(page_limit=40)) == sorted(ids)  # POST search is a read
    fast_sandbox.set_faults()
    faults = fast_sandbox.stats()["faults"]
    assert faults["error"] > 0 and faults["drop"] > 0


def test_writes_are_not_repeated_after_5xx_or_drops(
    fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]
) -> None:
    hook = make_hook()
    fast_sandbox.set_faults(error_rate=1.0)
    with pytest.raises(GHLServerError, match="POST /contacts/ failed with HTTP 5"):
        hook.create_contact({"firstName": "Once", "email": "once@example.com"})
    fast_sandbox.set_faults(drop_rate=1.0)
    with pytest.raises(GHLConnectionError, match="no usable response"):
        hook.create_contact({"firstName": "Twice", "email": "twice@example.com"})
    fast_sandbox.set_faults()
    assert fast_sandbox.stats()["requests_by_route"]["POST /contacts"] == 2


def test_retries_are_bounded(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    contact = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[0]
    fast_sandbox.set_faults(error_rate=1.0, error_statuses=[503])
    with pytest.raises(GHLServerError, match="HTTP 503"):
        make_hook(max_retries=2).get_contact(contact)
    fast_sandbox.set_faults()
    assert fast_sandbox.stats()["requests_by_route"]["GET /contacts/{contactId}"] == 3


def test_deletes_are_idempotent_under_faults(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    """A DELETE whose answer was lost after it was applied must not fail on the repeat's "not found"."""
    ids = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[:12]
    hook = make_hook()
    fast_sandbox.set_faults(error_rate=0.5)
    for contact in ids:
        assert hook.delete_contact(contact) is None
    fast_sandbox.set_faults()
    assert fast_sandbox.stats()["faults"].get("after_write", 0) > 0
    for contact in ids:
        with pytest.raises(GHLNotFoundError):
            hook.get_contact(contact)


def test_fan_out_yields_every_child_once(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    hook = make_hook(max_workers=6)
    ids = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[:20]
    results = list(hook.fetch_contact_children(iter(ids)))
    assert sorted((r.contact_id, r.kind) for r in results) == sorted(
        (i, k) for i in ids for k in ("tasks", "notes", "appointments")
    )
    by_key = {(r.contact_id, r.kind): r.items for r in results}
    assert by_key[(ids[0], "notes")] == hook.get_notes(ids[0])
    assert by_key[(ids[1], "tasks")] == hook.get_tasks(ids[1])


def test_fan_out_errors(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    hook = make_hook(max_workers=3)
    ids = [*fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[:4], "no-such-contact"]
    results = list(hook.fetch_contact_children(ids, kinds=("tasks",), raise_on_error=False))
    failed = [r for r in results if r.error is not None]
    assert [(r.contact_id, type(r.error)) for r in failed] == [("no-such-contact", GHLNotFoundError)]
    with pytest.raises(GHLNotFoundError):
        list(hook.fetch_contact_children(ids, kinds=("tasks",)))
    with pytest.raises(ValueError, match="kinds"):
        list(hook.fetch_contact_children(ids, kinds=("emails",)))


def test_fan_out_stops_when_the_caller_stops(fast_sandbox: SandboxServer, make_hook: Callable[..., GHLHook]) -> None:
    hook = make_hook(max_workers=2)
    ids = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])
    stream = hook.fetch_contact_children(ids, kinds=("tasks",))
    first = [next(stream) for _ in range(3)]
    stream.close()
    assert len(first) == 3
    assert fast_sandbox.stats()["requests_total"] <= 3 + 2 * 2  # what was done or queued, not 200
