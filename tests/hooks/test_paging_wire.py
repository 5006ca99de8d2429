"""Paging past GHL's 10,000-record ceiling of page-number search: every contact exactly once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from airflow_provider_ghl.exceptions import GHLValidationError
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer
from tests.hooks.conftest import remember_secret

CONTACTS = 10_500


@pytest.fixture(scope="module")
def big_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(contacts=CONTACTS, locations=1, seed=7, max_requests=5000, interval_ms=1000) as server:
        yield server


@pytest.fixture
def hook(big_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> GHLHook:
    big_sandbox.reset()
    location = big_sandbox.info["locations"][0]
    remember_secret(location["private_token"])
    conn = big_sandbox.airflow_connection(0)
    monkeypatch.setenv("AIRFLOW_CONN_GHL_BIG", json.dumps(conn))
    return GHLHook("ghl_big", retry_backoff=0.05)


def test_page_numbers_stop_at_10000(hook: GHLHook) -> None:
    assert len(hook.search_contacts(page=20, page_limit=500)["contacts"]) == 500
    with pytest.raises(GHLValidationError):
        hook.search_contacts(page=21, page_limit=500)


def test_search_after_reads_every_contact_once_while_contacts_change(hook: GHLHook, big_sandbox: SandboxServer) -> None:
    big_sandbox.set_faults(mutate_on_search=25)  # 25 contacts edited after every page
    ids = [c["id"] for c in hook.iter_contacts()]
    assert len(ids) == CONTACTS
    assert set(ids) == set(big_sandbox.contact_ids(big_sandbox.location_ids[0]))
    assert big_sandbox.stats()["requests_by_route"]["POST /contacts/search"] == CONTACTS // 500 + 1
    # A dateUpdated window, frozen at its start: edited contacts leave it instead of coming back.
    windowed = [c["id"] for c in hook.iter_contacts(since="2000-01-01T00:00:00Z")]
    assert len(windowed) == len(set(windowed)) > 9_000


def test_legacy_list_reads_every_contact_once(hook: GHLHook, big_sandbox: SandboxServer) -> None:
    ids = [c["id"] for c in hook.iter_contacts_legacy()]
    assert len(ids) == len(set(ids)) == CONTACTS


def test_async_paging_reads_every_contact_once(hook: GHLHook) -> None:
    async def collect() -> list[str]:
        return [c["id"] async for c in hook.aiter_contacts(page_limit=500)]

    ids = asyncio.run(collect())
    assert len(ids) == len(set(ids)) == CONTACTS


def test_pages_resume_after_a_saved_cursor_and_report_the_total(hook: GHLHook) -> None:
    first = []
    for page in hook.iter_contact_pages(page_limit=500):
        assert page.total == CONTACTS
        first += page.contacts
        if len(first) >= 3_000:
            break  # as if the worker died here, having saved the last contact's cursor
    cursor = first[-1]["searchAfter"]
    rest = [c for page in hook.iter_contact_pages(page_limit=500, search_after=cursor) for c in page.contacts]
    ids = [c["id"] for c in first + rest]
    assert len(ids) == len(set(ids)) == CONTACTS


def test_request_stats_count_every_attempt(hook: GHLHook, big_sandbox: SandboxServer) -> None:
    big_sandbox.set_limits(max_requests=3, interval_ms=1000)
    big_sandbox.set_faults(error_rate=0.3)
    contact_id = big_sandbox.contact_ids(big_sandbox.location_ids[0])[0]
    for _ in range(6):
        hook.get_contact(contact_id)
    stats = hook.request_stats.as_dict()
    server = big_sandbox.stats()
    assert stats["requests"] == server["requests_total"] >= 6
    assert stats["server_errors"] == sum(v for k, v in server["responses_by_status"].items() if k.startswith("5"))
    assert stats["responses_429"] == server["responses_429"]


def test_a_full_page_without_a_new_cursor_is_an_error_not_a_silent_stop() -> None:
    from airflow_provider_ghl.exceptions import GHLApiError
    from airflow_provider_ghl.hooks.paging import next_search_cursor

    page = [{"id": "a", "searchAfter": [1, "a"]}, {"id": "b", "searchAfter": [2, "b"]}]
    assert next_search_cursor(page[:1], 2, None) is None  # a short page is the last
    assert next_search_cursor(page, 2, None) == [2, "b"]
    for stalled, cursor in (([{"id": "a"}, {"id": "b"}], None), (page, [2, "b"])):
        with pytest.raises(GHLApiError, match="without a new searchAfter cursor"):
            next_search_cursor(stalled, 2, cursor)
