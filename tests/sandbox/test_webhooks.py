"""The sandbox's webhooks over the wire: a receiver on a loopback port gets every write as GHL's signed event."""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ghl_sandbox.events import CONTACT_FIELDS, EVENT_TYPES, NOTE_FIELDS, TASK_FIELDS
from ghl_sandbox.testing import SandboxError, SandboxServer
from ghl_sandbox.webhooks import Signer
from tests.sandbox.cli_run import CLI, ENV, started_cli
from tests.sandbox.conftest import Api

DUE = "2026-03-01T10:00:00.000Z"
# Retries come quickly in tests; the defaults (1 s doubling to 30 s) are GHL-like.
FAST = {"backoff_base_s": 0.02, "backoff_cap_s": 0.1}
ENVELOPE = {"type", "locationId", "webhookId", "timestamp"}


class Delivery:
    """One POST the receiver got; ``status`` is its answer (0: answered only after a stall)."""

    def __init__(self, headers: dict[str, str], body: bytes, status: int) -> None:
        self.headers = headers
        self.body = body
        self.status = status
        self.event: dict[str, Any] = json.loads(body)


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A sender that hangs up mid-answer (a reset, a timeout) is expected here, not an error to print.
        pass


class Receiver:
    """A tiny webhook receiver in a thread: records every POST (raw body, headers) and answers as told.

    :param port: the port to listen on (0: a free one).
    :param public_key: when given, a delivery whose ``X-GHL-Signature`` does not verify is answered 401.
    """

    def __init__(self, port: int = 0, public_key: str | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.statuses: deque[int] = deque()  # the next answers; 200 once empty
        self.stall: deque[float] = deque()  # seconds to wait before the next answers
        self.public_key = public_key
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    stall = receiver.stall.popleft() if receiver.stall else 0.0
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                    if receiver.public_key and not verifies(receiver.public_key, self.headers["X-GHL-Signature"], body):
                        status = 401
                    # Recorded on arrival: a stalled answer may come after the sender gave up on it.
                    receiver.deliveries.append(Delivery(dict(self.headers), body, 0 if stall else status))
                if stall:
                    time.sleep(stall)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ghl/webhooks"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """The events answered 2xx, in arrival order."""
        return [d.event for d in self.deliveries if 200 <= d.status < 300]

    def types(self) -> list[str]:
        return [e["type"] for e in self.accepted]


def verifies(public_key: str, signature: str, body: bytes) -> bool:
    key = serialization.load_der_public_key(base64.b64decode(public_key))
    assert isinstance(key, Ed25519PublicKey)
    try:
        key.verify(base64.b64decode(signature), body)
    except InvalidSignature:
        return False
    return True


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def hooked(api: Api, receiver: Receiver) -> Api:
    """A client of location 0 on a freshly reset sandbox that delivers its webhooks to ``receiver``."""
    api.server.set_webhooks([receiver.url], **FAST)
    return api


def _drain(api: Api, timeout: float = 15) -> dict[str, Any]:
    return api.server.wait_webhooks_delivered(timeout)


# -- keys and signatures ------------------------------------------------------------------------------------
def test_public_keys_in_info_and_the_ed25519_key_comes_from_the_seed(clean_sandbox: SandboxServer) -> None:
    hooks = clean_sandbox.info["webhooks"]
    assert hooks["public_key"] == clean_sandbox.webhook_public_key == Signer(clean_sandbox.info["seed"]).public_key
    assert hooks["public_key"] != Signer(clean_sandbox.info["seed"] + 1).public_key
    assert isinstance(serialization.load_der_public_key(base64.b64decode(hooks["public_key"])), Ed25519PublicKey)
    assert isinstance(serialization.load_pem_public_key(hooks["legacy_public_key"].encode()), rsa.RSAPublicKey)
    assert clean_sandbox.webhooks()["public_key"] == hooks["public_key"]


def test_every_delivery_is_signed_over_its_raw_body(hooked: Api, receiver: Receiver) -> None:
    hooked.new_contact(email="signed@example.org")
    _drain(hooked)
    (delivery,) = receiver.deliveries
    assert delivery.headers["Content-Type"] == "application/json"
    assert verifies(hooked.server.webhook_public_key, delivery.headers["X-GHL-Signature"], delivery.body)
    assert not verifies(hooked.server.webhook_public_key, delivery.headers["X-GHL-Signature"], delivery.body + b" ")
    assert "X-WH-Signature" not in delivery.headers


def test_legacy_rsa_signature_when_switched_on(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_webhooks([receiver.url], legacy_signature=True, **FAST)
    hooked.new_contact(email="legacy@example.org")
    _drain(hooked)
    (delivery,) = receiver.deliveries
    key = serialization.load_pem_public_key(hooked.server.webhook_legacy_public_key.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    signature = base64.b64decode(delivery.headers["X-WH-Signature"])
    key.verify(signature, delivery.body, padding.PKCS1v15(), hashes.SHA256())  # raises if it does not verify
    with pytest.raises(InvalidSignature):
        key.verify(signature, delivery.body[:-1], padding.PKCS1v15(), hashes.SHA256())
    assert verifies(hooked.server.webhook_public_key, delivery.headers["X-GHL-Signature"], delivery.body)


# -- every write, its event ---------------------------------------------------------------------------------
def _check_envelope(event: dict[str, Any], location_id: str) -> None:
    assert set(event) >= ENVELOPE
    assert event["type"] in EVENT_TYPES
    assert event["locationId"] == location_id
    assert len(event["timestamp"]) == 24 and event["timestamp"].endswith("Z")  # 2026-12-02T05:40:00.123Z


def test_contact_writes(hooked: Api, receiver: Receiver) -> None:
    fields = hooked.get(f"/locations/{hooked.location_id}/customFields").json()["customFields"]
    field_id = fields[0]["id"]
    created = hooked.new_contact(email="ev@example.org", firstName="Eve", tags=["a"])
    cid = created["id"]
    assert hooked.put(f"/contacts/{cid}", json={"city": "Oslo", "customFields": [{"id": field_id, "value": "7"}]}).ok
    assert hooked.post(f"/contacts/{cid}/tags", json={"tags": ["b"]}).status_code == 201
    assert hooked.delete(f"/contacts/{cid}/tags", json={"tags": ["a"]}).ok
    dnd = {"SMS": {"status": "active", "message": "", "code": ""}}
    assert hooked.put(f"/contacts/{cid}", json={"dnd": True, "dndSettings": dnd}).ok
    bulk = {"locationId": hooked.location_id, "contacts": [cid], "tags": ["c"]}
    assert hooked.post("/contacts/bulk/tags/update/add", json=bulk).status_code == 201
    assert hooked.post("/contacts/upsert", json={"locationId": hooked.location_id, "email": "ev@example.org"}).ok
    assert hooked.delete(f"/contacts/{cid}").ok
    _drain(hooked)

    assert receiver.types() == [
        "ContactCreate",
        "ContactUpdate",
        "ContactTagUpdate",
        "ContactTagUpdate",
        "ContactDndUpdate",
        "ContactTagUpdate",
        "ContactUpdate",
        "ContactDelete",
    ]
    events = receiver.accepted
    for event in events:
        _check_envelope(event, hooked.location_id)
        assert event["id"] == cid
        assert set(event) - ENVELOPE <= set(CONTACT_FIELDS) | {"dndSettings"}
        assert "dateUpdated" not in event  # not in GHL's documented payload
    assert len({e["webhookId"] for e in events}) == len(events)
    stamps = [e["timestamp"] for e in events]
    assert stamps == sorted(set(stamps))  # strictly increasing: last writer wins by timestamp, no ties
    assert events[0]["tags"] == ["a"] and events[0]["dateAdded"] == created["dateAdded"]
    assert events[1]["city"] == "Oslo" and {"id": field_id, "value": "7"} in events[1]["customFields"]
    assert all(set(cf) == {"id", "value"} for e in events for cf in e["customFields"])
    assert [e["tags"] for e in events[2:4]] == [["a", "b"], ["b"]]
    assert events[4]["dnd"] is True and events[4]["dndSettings"] == dnd
    assert "dndSettings" not in events[1]
    assert events[5]["tags"] == ["b", "c"]
    assert events[7]["email"] == "ev@example.org"


def test_writes_that_change_no_field_of_note_still_update_the_contact(hooked: Api, receiver: Receiver) -> None:
    cid = hooked.new_contact(email="f@example.org")["id"]
    user = hooked.server.info["locations"][0]["users"][0]
    business = hooked.server.info["locations"][0]["businesses"][0]["id"]
    assert hooked.post(f"/contacts/{cid}/followers", json={"followers": [user]}).status_code == 201
    assert hooked.post("/contacts/bulk/business", json={"locationId": hooked.location_id, "ids": [cid],
                                                         "businessId": business}).ok  # fmt: skip
    hooked.server.touch_contacts(hooked.location_id, ids=[cid])
    _drain(hooked)
    assert receiver.types() == ["ContactCreate", "ContactUpdate", "ContactUpdate", "ContactUpdate"]


def test_note_and_task_writes(hooked: Api, receiver: Receiver) -> None:
    cid = hooked.new_contact(email="kids@example.org")["id"]
    note = hooked.post(f"/contacts/{cid}/notes", json={"body": "first"}).json()["note"]
    assert hooked.put(f"/contacts/{cid}/notes/{note['id']}", json={"body": "second"}).ok
    assert hooked.delete(f"/contacts/{cid}/notes/{note['id']}").ok
    user = hooked.server.info["locations"][0]["users"][1]
    task = hooked.post(
        f"/contacts/{cid}/tasks",
        json={"title": "Call", "body": "Ring", "dueDate": DUE, "completed": False, "assignedTo": user},
    ).json()["task"]
    # GHL has no TaskUpdate event: a rename is silent, completing is TaskComplete.
    assert hooked.put(f"/contacts/{cid}/tasks/{task['id']}", json={"title": "Call back"}).ok
    assert hooked.put(f"/contacts/{cid}/tasks/{task['id']}/completed", json={"completed": True}).ok
    assert hooked.delete(f"/contacts/{cid}/tasks/{task['id']}").ok
    _drain(hooked)

    assert receiver.types() == [
        "ContactCreate", "NoteCreate", "NoteUpdate", "NoteDelete", "TaskCreate", "TaskComplete", "TaskDelete",
    ]  # fmt: skip
    events = receiver.accepted[1:]
    for event in events:
        _check_envelope(event, hooked.location_id)
    notes, tasks = events[:3], events[3:]
    assert all(set(e) - ENVELOPE == set(NOTE_FIELDS) and e["id"] == note["id"] for e in notes)
    assert [e["body"] for e in notes] == ["first", "second", "second"]
    assert notes[0]["contactId"] == cid and notes[0]["dateAdded"] == note["dateAdded"]
    assert all(set(e) - ENVELOPE == set(TASK_FIELDS) and e["id"] == task["id"] for e in tasks)
    assert [e["title"] for e in tasks] == ["Call", "Call back", "Call back"]
    assert tasks[0]["assignedTo"] == user and tasks[0]["dueDate"] == DUE and tasks[0]["contactId"] == cid
    # Added when created (the event's time may be a millisecond later: event times never tie).
    assert tasks[0]["dateAdded"] <= tasks[0]["timestamp"]


def test_children_of_a_seeded_contact(hooked: Api, receiver: Receiver) -> None:
    """Generated tasks (which carry no date in GHL's task object) get one in their webhooks."""
    cid, task = next(
        (c["id"], tasks[0])
        for c in hooked.search(pageLimit=50).json()["contacts"]
        if (tasks := hooked.get(f"/contacts/{c['id']}/tasks").json()["tasks"])
    )
    assert hooked.delete(f"/contacts/{cid}/tasks/{task['id']}").ok
    _drain(hooked)
    (event,) = receiver.accepted
    assert event["type"] == "TaskDelete" and event["id"] == task["id"] and event["dateAdded"]


def test_uninstall_and_install_send_the_apps_lifecycle_events(hooked: Api, receiver: Receiver) -> None:
    location = hooked.server.location_ids[1]
    app_id = hooked.server.info["oauth"]["app_id"]
    hooked.server.uninstall(location)
    hooked.server.uninstall(location)  # not installed: nothing happens, nothing is sent
    hooked.server.install(location)
    hooked.server.install(location)
    # An approval on the authorization page of a location without the app installs it too.
    hooked.server.uninstall(location)
    hooked.server.authorize(location_id=location)
    _drain(hooked)
    assert receiver.types() == ["UNINSTALL", "INSTALL", "UNINSTALL", "INSTALL"]
    uninstall, install = receiver.accepted[:2]
    assert uninstall == {
        "type": "UNINSTALL",
        "locationId": location,
        "appId": app_id,
        "webhookId": uninstall["webhookId"],
        "timestamp": uninstall["timestamp"],
    }
    assert set(install) == ENVELOPE | {
        "appId", "companyId", "userId", "planId", "trial", "isWhitelabelCompany", "companyName"
    }  # fmt: skip
    assert install["appId"] == app_id and install["companyId"] == hooked.server.info["company_id"]
    assert install["timestamp"] > uninstall["timestamp"]
    for delivery in receiver.deliveries:
        assert verifies(hooked.server.webhook_public_key, delivery.headers["X-GHL-Signature"], delivery.body)


def test_admin_changes_send_the_events_of_the_api_writes(hooked: Api, receiver: Receiver) -> None:
    server, loc = hooked.server, hooked.location_id
    results = server.changes(
        loc,
        [
            {"op": "contact.create", "fields": {"email": "adm@example.org", "firstName": "Ad", "tags": ["a"]}},
            {"op": "contact.update", "id": "$0", "fields": {"city": "Rome"}},
            {"op": "tags.add", "id": "$0", "tags": ["b"]},
            {"op": "tags.remove", "id": "$0", "tags": ["a"]},
            {"op": "contact.update", "id": "$0", "fields": {"dnd": True}},
            {"op": "note.create", "contactId": "$0", "fields": {"body": "n"}},
            {"op": "note.update", "contactId": "$0", "id": "$5", "fields": {"body": "m"}},
            {"op": "note.delete", "contactId": "$0", "id": "$5"},
            {"op": "task.create", "contactId": "$0", "fields": {"title": "T", "dueDate": DUE, "completed": False}},
            {"op": "task.update", "contactId": "$0", "id": "$8", "fields": {"title": "U"}},
            {"op": "task.complete", "contactId": "$0", "id": "$8"},
            {"op": "task.delete", "contactId": "$0", "id": "$8"},
            {"op": "appointment.create", "contactId": "$0", "fields": {"title": "Demo", "startTime": DUE}},
            {"op": "appointment.update", "contactId": "$0", "id": "$12", "fields": {"appointmentStatus": "showed"}},
            {"op": "appointment.delete", "contactId": "$0", "id": "$12"},
            {"op": "contact.delete", "id": "$0"},
        ],
    )
    cid = results[0]["id"]
    assert {r["id"] for r in results[:5]} == {cid} and results[5]["contactId"] == cid
    _drain(hooked)
    assert receiver.types() == [
        "ContactCreate", "ContactUpdate", "ContactTagUpdate", "ContactTagUpdate", "ContactDndUpdate",
        "NoteCreate", "NoteUpdate", "NoteDelete", "TaskCreate", "TaskComplete", "TaskDelete",
        "AppointmentCreate", "AppointmentUpdate", "AppointmentDelete", "ContactDelete",
    ]  # fmt: skip
    appointment = receiver.accepted[11]["appointment"]
    assert appointment["id"] == results[12]["id"] and appointment["contactId"] == cid
    assert appointment["title"] == "Demo" and appointment["startTime"] == DUE
    assert receiver.accepted[12]["appointment"]["appointmentStatus"] == "showed"
    assert set(receiver.accepted[11]) == {"type", "locationId", "appointment", "webhookId", "timestamp"}
    # The same data as an API write: the contact is gone, the API's own counters untouched.
    assert cid not in server.contact_ids(loc)
    assert server.stats()["requests_total"] == 0


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"op": "contact.update", "id": "nope", "fields": {"city": "X"}}, "changes[1].id: no contact nope"),
        ({"op": "contact.update", "id": "$0", "fields": {"email": "not-mail"}}, "email must be an email"),
        ({"op": "contact.update", "id": "$0", "fields": {"shoe": 1}}, "changes[1].fields.shoe"),
        ({"op": "note.update", "contactId": "$0", "id": "$9", "fields": {}}, "changes[1].id: $9 names no"),
        ({"op": "task.create", "contactId": "$0", "fields": {"title": "T"}}, "changes[1].fields.dueDate"),
        ({"op": "tags.add", "id": "$0"}, "changes[1].tags is required"),
    ],
)
def test_admin_changes_refused_whole(hooked: Api, receiver: Receiver, change: dict[str, Any], problem: str) -> None:
    before = hooked.server.contact_ids(hooked.location_id)
    with pytest.raises(SandboxError, match="422") as err:
        hooked.server.changes(hooked.location_id, [{"op": "contact.create", "fields": {"email": "z@x.org"}}, change])
    assert problem in str(err.value)
    assert hooked.server.contact_ids(hooked.location_id) == before
    assert hooked.server.webhook_stats()["events"] == 0


def test_fault_before_the_write_sends_nothing_after_it_sends_the_event(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_faults(error_rate=1.0)
    before = set(hooked.server.contact_ids(hooked.location_id))
    for n in range(12):
        assert (
            hooked.post("/contacts/", json={"locationId": hooked.location_id, "email": f"f{n}@x.org"}).status_code
            >= 500
        )
    faults = hooked.server.stats()["faults"]
    hooked.server.set_faults()
    _drain(hooked)
    created = set(hooked.server.contact_ids(hooked.location_id)) - before
    assert 0 < faults.get("after_write", 0) < 12  # both kinds happened
    assert len(created) == faults["after_write"]
    assert receiver.types() == ["ContactCreate"] * faults["after_write"]
    assert {e["id"] for e in receiver.accepted} == created


def test_mutate_on_search_reports_ghl_users_changes(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_faults(mutate_on_search=3)
    assert hooked.search(pageLimit=1).ok
    _drain(hooked)
    assert receiver.types() == ["ContactUpdate"] * 3


def test_no_subscriber_no_delivery_but_the_events_are_counted(api: Api, receiver: Receiver) -> None:
    api.new_contact(email="alone@example.org")
    stats = api.server.wait_webhooks_delivered(5)
    assert (stats["events"], stats["deliveries"], receiver.deliveries) == (1, 0, [])
    assert [e["type"] for e in api.server.webhook_events()] == ["ContactCreate"]


# -- delivery: retries, order, faults -----------------------------------------------------------------------
def test_refused_delivery_is_redelivered_with_the_same_webhook_id(hooked: Api, receiver: Receiver) -> None:
    receiver.statuses.extend([500, 503])
    hooked.new_contact(email="retry@example.org")
    stats = _drain(hooked)
    assert [d.status for d in receiver.deliveries] == [500, 503, 200]
    assert len({d.body for d in receiver.deliveries}) == 1  # same body, same webhookId
    assert all(verifies(hooked.server.webhook_public_key, d.headers["X-GHL-Signature"], d.body) for d in
               receiver.deliveries)  # fmt: skip
    assert (stats["attempts"], stats["failed_attempts"], stats["redelivered"], stats["delivered"]) == (3, 2, 2, 1)
    assert stats["responses"] == {"500": 1, "503": 1, "200": 1}


def test_timeout_is_redelivered(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_webhooks([receiver.url], timeout_s=0.3, **FAST)
    receiver.stall.append(1.0)
    hooked.new_contact(email="slow@example.org")
    stats = _drain(hooked)
    assert stats["responses"].get("timeout") == 1 and stats["delivered"] == 1
    ids = [d.event["webhookId"] for d in receiver.deliveries]
    assert len(ids) == 2 and len(set(ids)) == 1


def test_given_up_after_max_attempts(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_webhooks([receiver.url], max_attempts=3, **FAST)
    receiver.statuses.extend([500] * 10)
    hooked.new_contact(email="lost@example.org")
    stats = _drain(hooked)
    assert (stats["attempts"], stats["given_up"], stats["delivered"], stats["queued"]) == (3, 1, 0, 0)
    assert "HTTP 500" in stats["last_error"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_receiver_down_then_up_gets_everything_in_order(api: Api) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/ghl/webhooks"
    api.server.set_webhooks([url], **FAST)
    made = [api.new_contact(email=f"down{n}@example.org")["id"] for n in range(5)]
    deadline = time.monotonic() + 10
    while api.server.webhook_stats()["failed_attempts"] < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert api.server.webhook_stats()["failed_attempts"] >= 3  # nobody listening: refused, retried
    receiver = Receiver(port)
    try:
        stats = _drain(api)
        assert [e["id"] for e in receiver.accepted] == made
        assert stats["delivered"] == 5 and stats["given_up"] == 0 and stats["responses"]["error"] >= 3
    finally:
        receiver.stop()


def test_two_urls_each_get_every_event(hooked: Api, receiver: Receiver) -> None:
    other = Receiver()
    try:
        hooked.server.set_webhooks([receiver.url, other.url], **FAST)
        other.statuses.append(500)  # one receiver's trouble does not hold the other back
        ids = [hooked.new_contact(email=f"two{n}@example.org")["id"] for n in range(3)]
        _drain(hooked)
        assert [e["id"] for e in receiver.accepted] == ids == [e["id"] for e in other.accepted]
        assert [e["webhookId"] for e in receiver.accepted] == [e["webhookId"] for e in other.accepted]
    finally:
        other.stop()


def _burst(api: Api, n: int) -> list[dict[str, Any]]:
    api.server.changes(
        api.location_id, [{"op": "contact.create", "fields": {"email": f"b{i}@example.org"}} for i in range(n)]
    )
    return api.server.webhook_events()


def test_order_is_kept_without_faults(hooked: Api, receiver: Receiver) -> None:
    made = _burst(hooked, 30)
    _drain(hooked)
    assert [e["webhookId"] for e in receiver.accepted] == [e["webhookId"] for e in made]
    # A burst made within a few milliseconds still has one time per event.
    stamps = [e["timestamp"] for e in receiver.accepted]
    assert stamps == sorted(set(stamps)) == [e["timestamp"] for e in made]


def test_duplicate_fault_delivers_every_event_twice(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_webhooks([receiver.url], duplicate_rate=1.0, **FAST)
    made = _burst(hooked, 10)
    stats = _drain(hooked)
    arrived = [e["webhookId"] for e in receiver.accepted]
    assert sorted(arrived) == sorted([e["webhookId"] for e in made] * 2)
    assert (stats["delivered"], stats["duplicates_sent"]) == (10, 10)
    by_id: dict[str, set[bytes]] = {}
    for d in receiver.deliveries:
        by_id.setdefault(d.event["webhookId"], set()).add(d.body)
    assert all(len(bodies) == 1 for bodies in by_id.values())  # a duplicate is the very same body


def test_reorder_fault_delivers_out_of_order_within_a_window(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_webhooks([receiver.url], reorder_rate=1.0, reorder_window=3, **FAST)
    made = [e["webhookId"] for e in _burst(hooked, 20)]
    stats = _drain(hooked)
    arrived = [e["webhookId"] for e in receiver.accepted]
    assert sorted(arrived) == sorted(made) and arrived != made
    assert stats["reordered"] > 0 and stats["delivered"] == 20
    # Each swap brings an event from at most 3 places behind the head: none arrives 4 or more early.
    assert all(made.index(w) - arrived.index(w) <= 3 for w in made)


def test_delay_fault_delays_but_loses_nothing(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_webhooks([receiver.url], delay_ms=20, **FAST)
    made = [e["webhookId"] for e in _burst(hooked, 5)]
    stats = _drain(hooked)
    assert [e["webhookId"] for e in receiver.accepted] == made
    assert stats["delayed"] == 5


def test_bad_signature_fault_a_refusing_receiver_loses_nothing(api: Api) -> None:
    receiver = Receiver(public_key=api.server.webhook_public_key)
    try:
        api.server.set_webhooks([receiver.url], bad_signature_rate=1.0, **FAST)
        made = [e["webhookId"] for e in _burst(api, 5)]
        stats = _drain(api)
        assert [d.status for d in receiver.deliveries] == [401, 200] * 5
        assert [e["webhookId"] for e in receiver.accepted] == made
        assert (stats["bad_signatures_sent"], stats["bad_signatures_accepted"], stats["delivered"]) == (5, 0, 5)
    finally:
        receiver.stop()


def test_bad_signature_accepted_by_a_careless_receiver_is_counted(hooked: Api, receiver: Receiver) -> None:
    hooked.server.set_webhooks([receiver.url], bad_signature_rate=1.0, **FAST)
    hooked.new_contact(email="careless@example.org")
    stats = _drain(hooked)
    (delivery,) = receiver.deliveries
    assert not verifies(hooked.server.webhook_public_key, delivery.headers["X-GHL-Signature"], delivery.body)
    assert stats["bad_signatures_accepted"] == 1


# -- admin --------------------------------------------------------------------------------------------------
def test_reset_clears_the_queue_and_counters(hooked: Api, receiver: Receiver) -> None:
    receiver.statuses.extend([500] * 1000)
    hooked.server.set_webhooks([receiver.url], backoff_base_s=5, backoff_cap_s=5)
    hooked.new_contact(email="q@example.org")
    assert hooked.server.webhook_stats()["queued"] == 1
    hooked.server.reset()
    view = hooked.server.webhooks()
    assert view["settings"]["urls"] == [] and view["stats"]["queued"] == 0 and view["stats"]["events"] == 0
    assert hooked.server.webhook_events() == []


def test_unsubscribed_url_gets_nothing_more(hooked: Api, receiver: Receiver) -> None:
    receiver.statuses.extend([500] * 1000)
    hooked.server.set_webhooks([receiver.url], backoff_base_s=5, backoff_cap_s=5)
    hooked.new_contact(email="gone@example.org")
    hooked.server.set_webhooks([])
    stats = hooked.server.wait_webhooks_delivered(5)
    assert (stats["queued"], stats["unsubscribed"], stats["delivered"]) == (0, 1, 0)


def test_settings_are_checked(clean_sandbox: SandboxServer) -> None:
    for bad in ({"urls": ["ftp://x"]}, {"urls": ["x"]}, {"duplicate_rate": 2}, {"timeout_s": 0}, {"shoe": 1}):
        with pytest.raises(SandboxError, match="422"):
            clean_sandbox.admin("PUT", "webhooks", bad)
    assert clean_sandbox.webhooks()["settings"]["urls"] == []


def test_wait_reports_deliveries_still_queued(hooked: Api, receiver: Receiver) -> None:
    receiver.statuses.extend([500] * 1000)
    hooked.server.set_webhooks([receiver.url], backoff_base_s=5, backoff_cap_s=5)
    hooked.new_contact(email="stuck@example.org")
    with pytest.raises(TimeoutError, match="still queued"):
        hooked.server.wait_webhooks_delivered(0.2)


def test_start_up_urls_from_the_cli_flag(receiver: Receiver) -> None:
    with SandboxServer(contacts=3, locations=1, webhook_urls=[receiver.url], webhook_legacy_signature=True) as sb:
        assert sb.info["webhooks"]["urls"] == [receiver.url] and sb.info["webhooks"]["legacy_signature"]
        headers = sb.headers(0)
        resp = requests.post(
            f"{sb.base_url}/contacts/", json={"locationId": sb.location_ids[0], "email": "cli@x.org"}, headers=headers
        )
        assert resp.status_code == 201
        sb.wait_webhooks_delivered(10)
        (delivery,) = receiver.deliveries
        assert delivery.event["type"] == "ContactCreate" and "X-WH-Signature" in delivery.headers
        assert verifies(sb.webhook_public_key, delivery.headers["X-GHL-Signature"], delivery.body)
        # A reset returns to the start-up subscriptions.
        sb.set_webhooks([])
        assert sb.reset()["webhooks"]["urls"] == [receiver.url]


def test_cli_prints_the_webhook_key_and_refuses_a_bad_url(receiver: Receiver) -> None:
    with started_cli("--contacts", "1", "--webhook-url", receiver.url) as (text, base_url):
        key = re.search(r"webhook public key\s*: (\S+) \(Ed25519, X-GHL-Signature\)", text)
        assert key and f"webhooks to         : {receiver.url}" in text, text
        info = requests.get(f"{base_url}/_sandbox/info", timeout=10).json()
        assert info["webhooks"]["public_key"] == key[1]
    bad = subprocess.run([*CLI, "--webhook-url", "ftp://x"], capture_output=True, text=True, timeout=60, env=ENV)
    assert bad.returncode != 0 and "--webhook-url" in bad.stderr and "Traceback" not in bad.stderr


def test_routes_change_data_only_through_the_reporting_methods() -> None:
    """A route that stamped a contact or stored a child itself would change data without its webhook."""
    routes = Path(__file__).resolve().parents[2] / "airflow_provider_ghl" / "sandbox" / "routes"
    bypasses = re.compile(
        r"\.touch\(|\.changed\(\)|\bloc\.(add|remove)\(|\.(tasks|notes|events)\[|\.data\[[^\]]+\]\s*=[^=]|"
        r"\.data\.(update|setdefault|pop)\("
    )
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(routes.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if bypasses.search(line)
    ]
    assert found == []
