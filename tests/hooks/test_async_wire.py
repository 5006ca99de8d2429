"""The async twin (httpx) against the sandbox: same results, errors, retries and shared limiter."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from airflow_provider_ghl.exceptions import GHLForbiddenError, GHLNotFoundError
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_reads_match_the_sync_methods(pit_hook: GHLHook, fast_sandbox: SandboxServer) -> None:
    location = fast_sandbox.info["locations"][0]
    contact = fast_sandbox.contact_ids(location["id"])[5]
    task = pit_hook.create_task(contact, title="async", due_date="2030-01-01T00:00:00.000Z")

    async def reads() -> list[Any]:
        return await asyncio.gather(
            pit_hook.aget_contact(contact),
            pit_hook.aget_tasks(contact),
            pit_hook.aget_task(contact, task["id"]),
            pit_hook.aget_notes(contact),
            pit_hook.aget_appointments(contact),
            pit_hook.asearch_contacts(page_limit=3),
            pit_hook.aget_custom_fields(),
        )

    got_contact, tasks, got_task, notes, appointments, page, fields = _run(reads())
    assert got_contact == pit_hook.get_contact(contact)
    assert tasks == pit_hook.get_tasks(contact) and got_task == task
    assert notes == pit_hook.get_notes(contact) and appointments == pit_hook.get_appointments(contact)
    assert page["total"] == 200 and len(page["contacts"]) == 3
    assert fields == pit_hook.get_custom_fields()
    email = got_contact["email"]
    assert _run(pit_hook.aget_duplicate_contact(email=email))["id"] == contact


def test_errors_are_mapped(pit_hook: GHLHook, fast_sandbox: SandboxServer) -> None:
    with pytest.raises(GHLNotFoundError):
        _run(pit_hook.aget_contact("no-such-contact"))
    with pytest.raises(GHLForbiddenError):
        _run(pit_hook.asearch_contacts(location_id=fast_sandbox.location_ids[1]))
    with pytest.raises(ValueError, match="only reads"):
        _run(pit_hook.acall("delete_contact", path_params={"contactId": "x"}))


def test_retries_and_shared_limiter(pit_hook: GHLHook, fast_sandbox: SandboxServer) -> None:
    fast_sandbox.reset(max_requests=6, interval_ms=1000)
    fast_sandbox.set_faults(error_rate=0.15, drop_rate=0.1)
    ids = fast_sandbox.contact_ids(fast_sandbox.location_ids[0])[:15]

    async def fetch() -> list[str]:
        contacts = await asyncio.gather(*(pit_hook.aget_contact(i) for i in ids))
        return [c["id"] for c in contacts]

    assert _run(fetch()) == ids
    fast_sandbox.set_faults()
    stats = fast_sandbox.stats()
    assert stats["responses_429"] == 0
    assert stats["faults"].get("error", 0) + stats["faults"].get("drop", 0) > 0
