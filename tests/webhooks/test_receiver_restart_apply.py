"""The standalone receiver killed in the middle of the sandbox's deliveries and restarted on the same port:
nothing is lost (the sandbox redelivers what was not answered), nothing is applied twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.webhooks.apply import drain
from airflow_provider_ghl.webhooks.changes import change_of
from airflow_provider_ghl.webhooks.inbox import InboxEvent, event_instant, open_inbox
from airflow_provider_ghl.webhooks.settings import WebhookSettings
from ghl_sandbox.testing import SandboxServer
from tests.webhooks.burst import Burst, applied_state, assert_final_state, committed_manifests
from tests.webhooks.serving import ReceiverProcess, free_port

pytestmark = pytest.mark.timeout(240)


def overtaken_records(events: list[InboxEvent]) -> int:
    """Records whose last-arriving event is not their latest change (arrival order alone would get them wrong)."""
    last_arrived: dict[tuple[str, str], InboxEvent] = {}
    latest: dict[tuple[str, str], InboxEvent] = {}
    for event in events:
        change = change_of(event)
        if change is None:
            continue
        last_arrived[change.key] = event
        if change.key not in latest or event_instant(latest[change.key].timestamp) < change.instant:
            latest[change.key] = event
    return sum(last_arrived[k].webhook_id != latest[k].webhook_id for k in latest)


def test_a_receiver_killed_mid_burst_loses_nothing_and_applies_nothing_twice(
    clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    sandbox = clean_sandbox
    location = sandbox.location_ids[0]
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    settings = WebhookSettings(
        inbox=url, public_key=sandbox.webhook_public_key, accept_legacy=False, locations=tuple(sandbox.location_ids)
    )
    port = free_port()
    receiver = ReceiverProcess(settings, port).start()
    try:
        sandbox.set_webhooks(
            [f"{receiver.base_url}/webhooks"],
            duplicate_rate=0.1,
            reorder_rate=0.5,
            delay_ms=20,  # deliveries slower than the changes: a queue builds up, and reordering has room
            backoff_base_s=0.2,
            backoff_cap_s=1.0,
            timeout_s=5,
        )
        burst = Burst(sandbox, location)
        burst.send(80)
        # Mid-burst: some events delivered, others queued or in flight when the process dies (SIGKILL).
        delivered_before = sandbox.webhook_stats()["delivered"]
        receiver.kill()
        burst.send(80)  # delivered to nobody: refused connections, retried with backoff
        time.sleep(1.0)
        refused = sandbox.webhook_stats()["failed_attempts"]
        receiver = ReceiverProcess(settings, port).start()
        burst.send(40)
        stats = sandbox.wait_webhooks_delivered(timeout=120)
    finally:
        receiver.stop()
        sandbox.set_webhooks([])

    assert burst.made == 200
    assert 0 < delivered_before < stats["events"]
    assert refused > 0 and stats["redelivered"] > 0  # the kill was felt, and made good by redelivery
    assert stats["given_up"] == 0
    made = [e["webhookId"] for e in sandbox.webhook_events() if e["locationId"] == location]
    assert len(made) == stats["events"] >= 200

    inbox = open_inbox(url)
    try:
        # Every event made is in the inbox exactly once (duplicates and redeliveries refused by webhookId).
        assert inbox.pending() == {location: len(made)}
        folder = ObjectStoragePath(f"file://{tmp_path}/out/{location}/webhooks")
        results = drain(inbox, location, folder)
        assert drain(inbox, location, folder) == []  # applied: nothing comes twice
        [batch] = results
        events = inbox.events(batch.batch)
        assert sorted(e.webhook_id for e in events) == sorted(made)
        # The burst is a real test of last writer wins: some record's last change arrived before an earlier one.
        assert overtaken_records(events) > 0
    finally:
        inbox.close()

    out = tmp_path / "out" / location / "webhooks"
    [manifest] = committed_manifests(out)
    assert (manifest["events"], manifest["duplicates"], manifest["requests"]) == (len(made), 0, 0)
    assert_final_state(applied_state(out), burst)
