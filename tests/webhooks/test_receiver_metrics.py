"""``ghl-webhooks serve`` with StatsD on: each delivery is counted as ``ghl.webhooks.deliveries`` by outcome
(stored, a duplicate, refused), through Airflow's metrics system."""

from __future__ import annotations

from pathlib import Path

import httpx

from airflow_provider_ghl.webhooks.settings import WebhookSettings
from tests.statsd import StatsdListener, parse, statsd_env
from tests.webhooks.serving import ReceiverProcess, free_port
from tests.webhooks.signing import Signer, event


def test_deliveries_are_counted_by_outcome(signer: Signer, tmp_path: Path) -> None:
    listener = StatsdListener()
    settings = WebhookSettings(
        inbox=f"sqlite:///{tmp_path / 'inbox.db'}", public_key=signer.public_key, accept_legacy=False,
        locations=("loc1",),
    )  # fmt: skip
    receiver = ReceiverProcess(settings, free_port())
    receiver.env.update(statsd_env(listener))
    receiver.start()
    try:
        body, headers = signer.delivery(event("loc1"))
        answers = [httpx.post(f"{receiver.base_url}/webhooks", content=body, headers=headers) for _ in range(2)]
        forged = httpx.post(f"{receiver.base_url}/webhooks", content=body, headers={**headers, "X-GHL-Signature": "x"})
    finally:
        receiver.stop()
        listener.stop()
    assert [a.status_code for a in answers] == [200, 200] and forged.status_code == 401
    deliveries = parse(listener.lines, "airflow.ghl.")["webhooks.deliveries"]
    assert sorted((tags["outcome"], value) for tags, value, _ in deliveries) == [
        ("duplicates", 1), ("refused", 1), ("stored", 1)
    ]  # fmt: skip
