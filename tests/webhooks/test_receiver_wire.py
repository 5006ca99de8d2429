"""The receiver over real HTTP (uvicorn on loopback), with test key pairs in both of GHL's schemes.

Every refusal is checked on three sides: the answer, the counter in ``GET /ghl/stats``, and an inbox that
holds nothing afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from airflow_provider_ghl.webhooks.inbox import Inbox, open_inbox
from airflow_provider_ghl.webhooks.settings import WebhookSettings
from tests.webhooks.serving import ReceiverThread
from tests.webhooks.signing import Signer, claimed, event


def _settings(signer: Signer, inbox_url: str, **overrides: object) -> WebhookSettings:
    values: dict[str, object] = {
        "inbox": inbox_url,
        "public_key": signer.public_key,
        "legacy_public_key": signer.legacy_public_key,
        "max_body_bytes": 4096,
        "locations": ("loc0", "loc1", "loc2"),
        **overrides,
    }
    return WebhookSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def receiver(signer: Signer, inbox_url: str) -> Iterator[ReceiverThread]:
    with ReceiverThread(_settings(signer, inbox_url)) as server:
        yield server


def _post(server: ReceiverThread, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/webhooks", content=body, headers=headers, timeout=30)


def test_valid_events_of_both_schemes_are_stored_once_in_order(
    receiver: ReceiverThread, signer: Signer, inbox: Inbox
) -> None:
    sent = []
    for n, scheme in enumerate(["ed25519", "rsa", "both", "ed25519", "rsa"]):
        payload = event("loc1", "ContactUpdate", id=f"c{n}")
        answer = _post(receiver, *signer.delivery(payload, scheme=scheme))
        assert (answer.status_code, answer.json()) == (200, {"stored": True}), scheme
        sent.append(payload)
    other = event("loc2", "NoteCreate", body="hello", contactId="c0")
    assert _post(receiver, *signer.delivery(other)).status_code == 200

    assert inbox.pending() == {"loc1": 5, "loc2": 1}
    stored = inbox.events(claimed(inbox, "loc1"))
    assert [e.webhook_id for e in stored] == [p["webhookId"] for p in sent]
    assert [e.body for e in stored] == sent  # the payload as sent, field for field
    assert [(e.type, e.timestamp) for e in stored] == [(p["type"], p["timestamp"]) for p in sent]
    assert receiver.stats() == {"stored": 6, "duplicates": 0, "store_failures": 0, "agency_lifecycle": 0, "refused": {}}


def test_a_redelivery_is_answered_200_and_stored_once(receiver: ReceiverThread, signer: Signer, inbox: Inbox) -> None:
    body, headers = signer.delivery(event("loc1"))
    first = _post(receiver, body, headers)
    again = _post(receiver, body, headers)
    legacy_again = _post(receiver, *signer.delivery(orjson.loads(body), scheme="rsa"))
    assert [first.json(), again.json(), legacy_again.json()] == [
        {"stored": True},
        {"duplicate": True},
        {"duplicate": True},
    ]
    assert {first.status_code, again.status_code, legacy_again.status_code} == {200}
    assert inbox.pending() == {"loc1": 1}
    assert receiver.stats()["duplicates"] == 2


def _forged(signer: Signer) -> list[tuple[str, bytes, dict[str, str], str]]:
    """(case, body, headers, counter) of deliveries that must be refused for their signature."""
    impostor = Signer.generate()
    body, good = signer.delivery(event("loc1"), scheme="both")
    tampered = body.replace(b'"loc1"', b'"loc2"')
    return [
        ("no signature", body, {"Content-Type": "application/json"}, "signature_missing"),
        ("forged ed25519", body, impostor.delivery(orjson.loads(body))[1], "signature_invalid"),
        ("forged rsa", body, impostor.delivery(orjson.loads(body), scheme="rsa")[1], "signature_invalid"),
        ("tampered body", tampered, good, "signature_invalid"),
        ("not base64", body, {"X-GHL-Signature": "%%%not-base64%%%"}, "signature_invalid"),
        ("signature of another body", body, {"X-GHL-Signature": signer.sign(b"{}")}, "signature_invalid"),
        # A valid legacy signature does not rescue a bad current one.
        ("bad ed25519, good rsa", body, {**good, "X-GHL-Signature": impostor.sign(body)}, "signature_invalid"),
    ]


def test_forged_and_unsigned_deliveries_are_refused_401_and_nothing_is_stored(
    receiver: ReceiverThread, signer: Signer, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="airflow_provider_ghl.webhooks.receiver")
    cases = _forged(signer)
    for case, body, headers, _ in cases:
        answer = _post(receiver, body, headers)
        assert answer.status_code == 401, case
    assert inbox.pending() == {}
    refused = receiver.stats()["refused"]
    assert refused == {"signature_invalid": 6, "signature_missing": 1}
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == len(cases)
    assert "loc1" not in caplog.text  # the log line names the refusal, never the payload


def test_legacy_only_deliveries_are_refused_when_legacy_is_off(signer: Signer, inbox_url: str) -> None:
    with ReceiverThread(_settings(signer, inbox_url, accept_legacy=False)) as server:
        legacy = _post(server, *signer.delivery(event("loc1"), scheme="rsa"))
        current = _post(server, *signer.delivery(event("loc1"), scheme="both"))
        assert (legacy.status_code, legacy.json()["error"]) == (401, "signature_missing")
        assert current.status_code == 200
        inbox = open_inbox(inbox_url)
        assert inbox.pending() == {"loc1": 1}
        inbox.close()


def test_stale_malformed_incomplete_and_oversized_deliveries_are_refused_and_nothing_is_stored(
    receiver: ReceiverThread, signer: Signer, inbox: Inbox
) -> None:
    def signed(raw: bytes) -> tuple[bytes, dict[str, str]]:
        return raw, {"X-GHL-Signature": signer.sign(raw), "Content-Type": "application/json"}

    cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
        ("stale", *signer.delivery(event("loc1", age=4201)), 400, "stale"),  # the default window is 4,200 s
        ("from the future", *signer.delivery(event("loc1", age=-120)), 400, "stale"),
        ("not JSON", *signed(b'{"type": "ContactCreate",'), 400, "malformed"),
        ("not an object", *signed(b'["ContactCreate"]'), 400, "malformed"),
        ("bad timestamp", *signer.delivery({**event("loc1"), "timestamp": "yesterday"}), 400, "malformed"),
        ("braces in locationId", *signer.delivery({**event("loc1"), "locationId": "{x}"}), 400, "malformed"),
        # A location names directories: a dot segment or a slash never becomes one (#21 item 8).
        ("dot-dot locationId", *signer.delivery({**event("loc1"), "locationId": ".."}), 400, "malformed"),
        ("slash in webhookId", *signer.delivery({**event("loc1"), "webhookId": "a/../b"}), 400, "malformed"),
        ("oversized", *signer.delivery(event("loc1", pad="x" * 5000)), 413, "too_large"),
    ]
    for field in ("type", "locationId", "webhookId", "timestamp"):
        incomplete = event("loc1")
        del incomplete[field]
        cases.append((f"no {field}", *signer.delivery(incomplete), 400, "missing_field"))
    cases.append(("empty type", *signer.delivery({**event("loc1"), "type": ""}), 400, "missing_field"))
    cases.append(("numeric webhookId", *signer.delivery({**event("loc1"), "webhookId": 7}), 400, "missing_field"))

    for case, body, headers, status, reason in cases:
        answer = _post(receiver, body, headers)
        assert (answer.status_code, answer.json()["error"]) == (status, reason), case
    assert inbox.pending() == {}
    stats = receiver.stats()
    assert stats["stored"] == 0
    assert sum(stats["refused"].values()) == len(cases)
    assert stats["refused"]["missing_field"] == 6


def test_an_oversized_body_without_content_length_is_cut_off(receiver: ReceiverThread, signer: Signer) -> None:
    """A chunked body declares no length: the receiver stops reading past the limit."""
    payload = event("loc1", pad="x" * 20_000)
    body, headers = signer.delivery(payload)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    answer = httpx.post(f"{receiver.base_url}/webhooks", content=chunks(), headers=headers, timeout=30)
    assert answer.status_code == 413
    assert receiver.stats()["refused"] == {"too_large": 1}


def test_a_burst_of_concurrent_senders_is_stored_exactly_once(
    receiver: ReceiverThread, signer: Signer, inbox: Inbox
) -> None:
    payloads = [event(f"loc{n % 3}", id=f"c{n}") for n in range(150)]
    deliveries = [signer.delivery(p) for p in payloads]

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(base_url=receiver.base_url, limits=limits, timeout=60) as client:
            # Every delivery twice (GHL may redeliver while the first is in flight).
            sends = [client.post("/webhooks", content=b, headers=h) for b, h in deliveries + deliveries]
            return await asyncio.gather(*sends)

    answers = asyncio.run(burst())
    assert {a.status_code for a in answers} == {200}
    assert sum(a.json() == {"stored": True} for a in answers) == 150
    assert inbox.pending() == {"loc0": 50, "loc1": 50, "loc2": 50}
    for location in ("loc0", "loc1", "loc2"):
        stored = inbox.events(claimed(inbox, location))
        assert [e.seq for e in stored] == list(range(1, 51))
        assert {e.webhook_id for e in stored} == {p["webhookId"] for p in payloads if p["locationId"] == location}


def test_health_and_stats(receiver: ReceiverThread) -> None:
    health = httpx.get(f"{receiver.base_url}/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert receiver.stats() == {"stored": 0, "duplicates": 0, "store_failures": 0, "agency_lifecycle": 0, "refused": {}}
    assert httpx.get(f"http://127.0.0.1:{receiver.port}/webhooks").status_code == 404  # only under /ghl


def test_an_inbox_that_cannot_store_answers_429_so_ghl_retries(signer: Signer, tmp_path: object) -> None:
    blocker = f"{tmp_path}/a-file"
    with open(blocker, "w") as f:
        f.write("not a directory")
    settings = _settings(signer, f"sqlite:///{blocker}/inbox.db")
    with ReceiverThread(settings) as server:
        answer = _post(server, *signer.delivery(event("loc1")))
        assert answer.status_code == 429 and answer.headers["Retry-After"] == "60"
        assert server.stats()["store_failures"] == 1
        assert httpx.get(f"{server.base_url}/health").status_code == 503


def test_a_sender_that_leaves_mid_body_is_counted_and_stores_nothing(
    receiver: ReceiverThread, signer: Signer, inbox: Inbox
) -> None:
    body, headers = signer.delivery(event("loc1"))
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", receiver.port)) as sock:
        sock.sendall(f"POST /ghl/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode())
        sock.sendall(body[:10])
    deadline = time.monotonic() + 30
    while receiver.stats()["refused"] != {"disconnected": 1}:
        assert time.monotonic() < deadline, receiver.stats()
        time.sleep(0.02)
    assert inbox.pending() == {}


APP_ID = "app-ours"


def test_only_served_locations_are_stored_and_a_missing_one_is_logged_once(
    receiver: ReceiverThread, signer: Signer, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    """#21 item 3: GHL signs every app's deliveries with one key, so a signature alone does not make an event
    ours. Events of a location neither configured nor installed are 403, not stored, counted, logged once."""
    caplog.set_level(logging.WARNING, logger="airflow_provider_ghl.webhooks.receiver")
    for _ in range(3):
        answer = _post(receiver, *signer.delivery(event("loc-foreign")))
        assert (answer.status_code, answer.json()["error"]) == (403, "not_served")
    assert _post(receiver, *signer.delivery(event("loc1"))).json() == {"stored": True}
    assert inbox.pending() == {"loc1": 1}
    assert receiver.stats()["refused"] == {"not_served": 3}
    lines = [r.getMessage() for r in caplog.records if "not_served" in r.getMessage()]
    assert len(lines) == 1 and "loc-foreign" in lines[0]


def test_the_apps_install_serves_a_location_and_its_uninstall_expires_what_waits(
    signer: Signer, inbox_url: str
) -> None:
    def lifecycle(kind: str, location: str, app_id: str = APP_ID) -> dict[str, object]:
        return {**event(location, kind), "appId": app_id, "companyId": "comp-1"}

    with ReceiverThread(_settings(signer, inbox_url, app_id=APP_ID)) as server:
        inbox = open_inbox(inbox_url)
        try:
            # Another app's install (same signing key) is refused and serves nothing.
            foreign = _post(server, *signer.delivery(lifecycle("INSTALL", "loc-new", app_id="app-theirs")))
            assert (foreign.status_code, foreign.json()["error"]) == (403, "foreign_app")
            assert _post(server, *signer.delivery(event("loc-new"))).status_code == 403
            # Ours: stored, and the location is served from then on.
            assert _post(server, *signer.delivery(lifecycle("INSTALL", "loc-new"))).json() == {"stored": True}
            assert _post(server, *signer.delivery(event("loc-new"))).json() == {"stored": True}
            assert inbox.installed() == {"loc-new"} and inbox.pending()["loc-new"] == 2
            # The uninstall is stored too, and everything of the location still waiting expires with it.
            assert _post(server, *signer.delivery(lifecycle("UNINSTALL", "loc-new"))).json() == {"stored": True}
            assert inbox.installed() == set()
            assert inbox.pending().get("loc-new") == 3  # only the UNINSTALL itself is left to apply
            assert _post(server, *signer.delivery(event("loc-new"))).status_code == 403
            assert server.stats()["refused"] == {"foreign_app": 1, "not_served": 2}
        finally:
            inbox.close()


def test_an_agency_install_names_no_location_and_is_answered_without_storing(signer: Signer, inbox_url: str) -> None:
    """GHL's agency-level INSTALL/UNINSTALL carries companyId and no locationId: ours is answered 200 (discovery
    finds the agency's locations), another app's is refused, and nothing reaches the inbox."""

    def agency(kind: str, app_id: str = APP_ID) -> dict[str, object]:
        body = {**event("unused", kind), "appId": app_id, "companyId": "comp-1", "userId": "u1", "planId": "p1"}
        del body["locationId"]
        return body

    with ReceiverThread(_settings(signer, inbox_url, app_id=APP_ID)) as server:
        inbox = open_inbox(inbox_url)
        try:
            for kind in ("INSTALL", "UNINSTALL"):
                answer = _post(server, *signer.delivery(agency(kind)))
                assert (answer.status_code, answer.json()) == (200, {"stored": False, "agency": "comp-1"})
            foreign = _post(server, *signer.delivery(agency("INSTALL", app_id="app-theirs")))
            assert (foreign.status_code, foreign.json()["error"]) == (403, "foreign_app")
            no_company = {k: v for k, v in agency("INSTALL").items() if k != "companyId"}
            assert _post(server, *signer.delivery(no_company)).status_code == 400
            assert inbox.pending() == {} and inbox.installed() == set()
            assert server.stats()["agency_lifecycle"] == 2
        finally:
            inbox.close()


def test_without_an_app_id_no_install_event_is_accepted(receiver: ReceiverThread, signer: Signer) -> None:
    answer = _post(receiver, *signer.delivery({**event("loc-x", "INSTALL"), "appId": APP_ID}))
    assert (answer.status_code, answer.json()["error"]) == (403, "foreign_app")
