"""Deterministic, seeded GHL data for the sandbox: locations, contacts and their tasks, notes and appointments.

The same seed gives the same ids, names, credentials and values; dates are relative to the anchor. Children
(tasks, notes, appointments) are generated on first access from a per-contact seed, and a location's contacts
on the first access to them, from a per-location seed: a 100k-contact sandbox starts in seconds, and one with
hundreds of locations pays only for those a test reads.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import string
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from ghl_sandbox.vocabulary import (
    APPT_TITLES,
    COMPANIES,
    CUSTOM_FIELDS,
    FIRST_NAMES,
    LAST_NAMES,
    NOTE_BODIES,
    PLACES,
    SOURCES,
    STREETS,
    TAGS,
    TASK_TITLES,
)

ALPHANUM = string.ascii_letters + string.digits
DAY_MS = 86_400_000

DND_CHANNELS = ("Call", "Email", "SMS", "WhatsApp", "GMB", "FB")

# Contact fields a client may write (create / upsert); update accepts the same minus these.
CREATE_ONLY_FIELDS = {"locationId", "gender", "companyName"}
# Fields whose change GHL reports with its own event rather than ContactUpdate.
TAG_FIELDS = frozenset({"tags"})
DND_FIELDS = frozenset({"dnd", "dndSettings"})

# Where a location reports each change of its data: (location id, GHL event type, the record, time in ms).
ChangeSink = Callable[[str, str, dict[str, Any], int], None]


def iso(ms: int) -> str:
    """Format epoch milliseconds the way GHL does: ``2021-07-02T05:18:26.704Z``."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_time(value: Any) -> int:
    """Epoch ms from an ISO-8601 string or a number of epoch ms; ``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    raise ValueError(value)


def is_positive_int(value: Any) -> bool:
    """Whether ``value`` is a whole number >= 1 as JSON sends it (``true`` is not a number here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def new_id(rng: random.Random) -> str:
    """A 20-character id like GHL's (Firebase-style)."""
    return "".join(rng.choices(ALPHANUM, k=20))


def secret(seed: int, *parts: object) -> str:
    """A deterministic credential string derived from the seed."""
    return hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).hexdigest()


class Contact:
    """One contact: its GHL JSON, sort keys in ms, cached JSON bytes, and lazily generated children."""

    __slots__ = ("added_ms", "data", "events", "hit_bytes", "json_bytes", "notes", "tasks", "updated_ms")

    def __init__(self, data: dict[str, Any], added_ms: int, updated_ms: int) -> None:
        self.data = data
        self.added_ms = added_ms
        self.updated_ms = updated_ms
        self.json_bytes: bytes | None = None
        # Search hits (JSON plus "searchAfter") per sort order; dropped with json_bytes on every change.
        self.hit_bytes: dict[tuple[Any, ...], bytes] = {}
        self.tasks: dict[str, dict[str, Any]] | None = None
        self.notes: dict[str, dict[str, Any]] | None = None
        self.events: dict[str, dict[str, Any]] | None = None

    @property
    def id(self) -> str:
        return self.data["id"]

    def encoded(self) -> bytes:
        """The contact's JSON, serialised once per change (search pages are joined from these)."""
        if self.json_bytes is None:
            self.json_bytes = json.dumps(self.data, separators=(",", ":")).encode()
        return self.json_bytes

    def search_hit(self, sort_key: tuple[Any, ...], cursor: list[Any]) -> bytes:
        """The contact's JSON with its ``searchAfter`` cursor, cached per sort order until the contact changes."""
        hit = self.hit_bytes.get(sort_key)
        if hit is None:
            hit = self.hit_bytes[sort_key] = (
                self.encoded()[:-1] + b',"searchAfter":' + json.dumps(cursor).encode() + b"}"
            )
        return hit

    def touch(self, now_ms: int) -> None:
        self.updated_ms = now_ms
        self.data["dateUpdated"] = iso(now_ms)
        self.json_bytes = None
        self.hit_bytes = {}


class Location:
    """A sub-account with its contacts, users, businesses, campaigns, workflows and custom fields."""

    def __init__(self, *, seed: int, index: int, company_id: str) -> None:
        rng = random.Random(f"location:{seed}:{index}")
        self.seed = seed
        self.id = new_id(rng)
        self.company_id = company_id
        self.name = f"Sandbox Location {index + 1}"
        self.private_token = "pit-" + secret(seed, "pit", index)[:32]
        self.users = [new_id(rng) for _ in range(5)]
        self.businesses = [{"id": new_id(rng), "name": f"Business {i + 1}"} for i in range(5)]
        self.campaigns = [new_id(rng) for _ in range(3)]
        self.workflows = [new_id(rng) for _ in range(3)]
        self.custom_fields = [
            {
                "id": new_id(rng),
                "name": name,
                "fieldKey": f"contact.{key}",
                "placeholder": name,
                "dataType": data_type,
                "position": pos,
                "picklistOptions": options or [],
                "picklistImageOptions": [],
                "isAllowedCustomOption": False,
                "isMultiFileAllowed": False,
                "maxFileLimit": 0,
                "locationId": self.id,
                "model": "contact",
            }
            for pos, (name, key, data_type, options) in enumerate(CUSTOM_FIELDS)
        ]
        self._contacts: dict[str, Contact] | None = None
        self.planned_contacts = 0
        # Fills the contacts on first access (Store sets it); None once done, or for a location made empty.
        self._generate: Callable[[], None] | None = None
        self.by_email: dict[str, str] = {}
        self.by_phone: dict[str, str] = {}
        self.campaign_members: dict[str, set[str]] = {}
        self.workflow_members: dict[str, set[str]] = {}
        # Every change of the data is reported here (the webhooks); None while the data is generated.
        self.sink: ChangeSink | None = None
        self.clock: Callable[[], int] = lambda: int(time.time() * 1000)
        # When each task created in the sandbox was added (GHL's task objects have no date, its webhooks do).
        self.task_added_ms: dict[str, int] = {}
        # Bumped by every change that can move a contact in search results; keys the search cache.
        self.version = 0
        self.search_cache: dict[tuple[Any, ...], tuple[list[Contact], list[tuple[Any, ...]]]] = {}

    # -- changes ----------------------------------------------------------------------------------------------
    # Every write of the sandbox (API routes and admin routes alike) changes the data through these methods, so
    # each change is reported once to the sink (the webhooks) and none is forgotten.
    def _report(self, event_type: str, record: dict[str, Any], at_ms: int) -> None:
        if self.sink is not None:
            self.sink(self.id, event_type, record, at_ms)

    def touched(self, contact: Contact, fields: Iterable[str] | None = None) -> None:
        """Stamp a changed contact, drop the search cache and report the change.

        :param contact: the contact, already changed.
        :param fields: the names of the fields that changed (None: unknown). A change of the tags is reported as
            ``ContactTagUpdate``, of ``dnd``/``dndSettings`` as ``ContactDndUpdate``, of anything else (or of
            nothing, a write that left the values as they were) as ``ContactUpdate``.
        """
        now = self.clock()
        contact.touch(now)
        self.changed()
        changed = set(fields) if fields is not None else set()
        others = changed - TAG_FIELDS - DND_FIELDS
        if changed & TAG_FIELDS:
            self._report("ContactTagUpdate", contact.data, now)
        if changed & DND_FIELDS:
            self._report("ContactDndUpdate", contact.data, now)
        if others or not changed:
            self._report("ContactUpdate", contact.data, now)

    def put_child(self, contact: Contact, kind: str, record: dict[str, Any], before: dict[str, Any] | None) -> None:
        """Store a created (``before`` None) or updated task, note or appointment and report it.

        :param contact: the contact it belongs to (its children already generated).
        :param kind: ``tasks``, ``notes`` or ``events`` (appointments).
        :param record: the record as stored from now on.
        :param before: a copy of the record before an update; None for a create.
        """
        now = self.clock()
        children: dict[str, dict[str, Any]] = getattr(self.children(contact), kind)
        children[record["id"]] = record
        if kind == "tasks" and before is None:
            self.task_added_ms[record["id"]] = now
        event = child_event(kind, before, record)
        if event:
            self._report(event, self._child_view(contact, kind, record), now)

    def drop_child(self, contact: Contact, kind: str, child_id: str) -> None:
        """Delete a task, note or appointment of a contact and report it."""
        children: dict[str, dict[str, Any]] = getattr(self.children(contact), kind)
        record = children.pop(child_id)
        self._report(f"{CHILD_EVENTS[kind]}Delete", self._child_view(contact, kind, record), self.clock())
        self.task_added_ms.pop(child_id, None)

    def _child_view(self, contact: Contact, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        """The record as its webhook needs it: a task gets the date it was added (a generated one: the contact's)."""
        if kind != "tasks":
            return record
        added = self.task_added_ms.get(record["id"])
        return {**record, "dateAdded": iso(added) if added is not None else contact.data.get("dateAdded")}

    # -- contacts -------------------------------------------------------------------------------------------
    @property
    def contacts(self) -> dict[str, Contact]:
        """The location's contacts by id, generated on the first access."""
        if self._contacts is None:
            self._contacts = {}
            generate, self._generate = self._generate, None
            if generate is not None:
                # The generated start state is not a change: no webhooks for it, whenever it is generated.
                sink, self.sink = self.sink, None
                try:
                    generate()
                finally:
                    self.sink = sink
        return self._contacts

    @property
    def generated(self) -> bool:
        """Whether the contacts exist yet (read, or written to, since the start or reset)."""
        return self._contacts is not None

    @property
    def contact_count(self) -> int:
        """How many contacts the location holds, without generating them."""
        if not self.generated and self._generate is not None:
            return self.planned_contacts
        return len(self.contacts)

    def add(self, contact: Contact) -> None:
        self.contacts[contact.id] = contact
        self.index(contact)
        self.changed()
        self._report("ContactCreate", contact.data, contact.added_ms)

    def index(self, contact: Contact) -> None:
        if email := contact.data.get("email"):
            self.by_email[email.lower()] = contact.id
        if phone := contact.data.get("phone"):
            self.by_phone[phone] = contact.id

    def unindex(self, contact: Contact) -> None:
        if (email := contact.data.get("email")) and self.by_email.get(email.lower()) == contact.id:
            del self.by_email[email.lower()]
        if (phone := contact.data.get("phone")) and self.by_phone.get(phone) == contact.id:
            del self.by_phone[phone]

    def remove(self, contact_id: str) -> None:
        contact = self.contacts.pop(contact_id)
        self.unindex(contact)
        for members in (*self.campaign_members.values(), *self.workflow_members.values()):
            members.discard(contact_id)
        self.changed()
        self._report("ContactDelete", contact.data, self.clock())

    def changed(self) -> None:
        self.version += 1
        self.search_cache.clear()

    def find_duplicate(self, email: str | None, phone: str | None) -> tuple[Contact, str] | None:
        """The contact matching email first, then phone (GHL's default order), with the matching field."""
        contacts = self.contacts  # generated first, so the email and phone indexes are complete
        if email and (cid := self.by_email.get(email.lower())):
            return contacts[cid], "email"
        if phone and (cid := self.by_phone.get(phone)):
            return contacts[cid], "phone"
        return None

    # -- children -------------------------------------------------------------------------------------------
    def children(self, contact: Contact) -> Contact:
        """Generate the contact's tasks, notes and appointments on first access (deterministic per contact)."""
        if contact.tasks is not None:
            return contact
        rng = random.Random(f"children:{self.seed}:{contact.id}")
        cid, added = contact.id, contact.added_ms
        span = max(contact.updated_ms - added, 1)
        contact.tasks = {}
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            task: dict[str, Any] = {
                "id": new_id(rng),
                "title": rng.choice(TASK_TITLES),
                "body": rng.choice(NOTE_BODIES),
                "assignedTo": rng.choice(self.users),
                "dueDate": iso(added + rng.randrange(span) + 7 * DAY_MS),
                "completed": rng.random() < 0.4,
                "contactId": cid,
            }
            contact.tasks[task["id"]] = task
        contact.notes = {}
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            note: dict[str, Any] = {
                "id": new_id(rng),
                "body": rng.choice(NOTE_BODIES),
                "userId": rng.choice(self.users),
                "dateAdded": iso(added + rng.randrange(span)),
                "contactId": cid,
                "title": "",
                "color": "",
                "pinned": False,
            }
            contact.notes[note["id"]] = note
        contact.events = {}
        for _ in range(rng.choice((0, 0, 0, 1, 2))):
            start = added + rng.randrange(span)
            start -= start % 1_800_000  # on the half hour
            stamp = iso(start - DAY_MS)
            event: dict[str, Any] = {
                "id": new_id(rng),
                "calendarId": self.campaigns[0],
                "status": "booked",
                "title": rng.choice(APPT_TITLES),
                "assignedUserId": rng.choice(self.users),
                "notes": "",
                # GHL's own example times carry no zone here, unlike the calendars API: keep the quirk.
                "startTime": iso(start)[:19].replace("T", " "),
                "endTime": iso(start + 1_800_000)[:19].replace("T", " "),
                "address": "https://meet.example.com/" + new_id(rng)[:8],
                "locationId": self.id,
                "contactId": cid,
                "groupId": "",
                "appointmentStatus": rng.choice(("confirmed", "showed", "noshow", "cancelled", "new")),
                "users": [rng.choice(self.users)],
                "dateAdded": stamp,
                "dateUpdated": stamp,
                "assignedResources": [],
            }
            contact.events[event["id"]] = event
        return contact

    def iter_contacts(self) -> Iterator[Contact]:
        return iter(self.contacts.values())


CHILD_EVENTS = {"tasks": "Task", "notes": "Note", "events": "Appointment"}


def child_event(kind: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> str | None:
    """The GHL event of a child record's change, or None when GHL sends none.

    GHL documents no TaskUpdate: a task update only has an event when it completes the task (TaskComplete).

    :param kind: ``tasks``, ``notes`` or ``events``.
    :param before: the record before (None: created).
    :param after: the record after (None: deleted).
    """
    name = CHILD_EVENTS[kind]
    if before is None:
        return f"{name}Create"
    if after is None:
        return f"{name}Delete"
    if kind == "tasks":
        return "TaskComplete" if after.get("completed") and not before.get("completed") else None
    return f"{name}Update"


def generate_contact(loc: Location, rng: random.Random, n: int, anchor_ms: int) -> Contact:
    """One realistic contact; ``n`` keeps emails and phones unique within the location."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    city, state, postal, country, tz = rng.choice(PLACES)
    added = anchor_ms - rng.randrange(730 * DAY_MS)
    # A slice of contacts changed recently, so incremental windows near the anchor have data.
    if rng.random() < 0.02:
        updated = anchor_ms - rng.randrange(DAY_MS)
    else:
        updated = added + rng.randrange(max(anchor_ms - added, 1))
    updated = max(updated, added)
    cid = new_id(rng)
    email = f"{first}.{last}.{n}@example.com".lower()
    custom = [{"id": f["id"], "value": _custom_value(rng, f)} for f in loc.custom_fields if rng.random() < 0.6]
    data: dict[str, Any] = {
        "id": cid,
        "locationId": loc.id,
        "name": f"{first} {last}",
        "firstName": first,
        "lastName": last,
        "firstNameLowerCase": first.lower(),
        "lastNameLowerCase": last.lower(),
        "fullNameLowerCase": f"{first} {last}".lower(),
        "email": email,
        "emailLowerCase": email,
        "phone": f"+1{5550000000 + n * 7919 % 4449999999}",
        "companyName": rng.choice(COMPANIES),
        "address1": f"{rng.randrange(1, 9999)} {rng.choice(STREETS)}",
        "city": city,
        "state": state,
        "postalCode": postal,
        "country": country,
        "timezone": tz,
        "website": "",
        "type": rng.choice(("lead", "lead", "customer")),
        "source": rng.choice(SOURCES),
        "assignedTo": rng.choice(loc.users),
        "dnd": False,
        "dndSettings": {},
        "tags": sorted(rng.sample(TAGS, rng.randrange(0, 4))),
        "dateOfBirth": f"{rng.randrange(1950, 2005)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        "dateAdded": iso(added),
        "dateUpdated": iso(updated),
        "customFields": custom,
        "businessId": rng.choice(loc.businesses)["id"] if rng.random() < 0.3 else "",
        "followers": [],
        "additionalEmails": [],
        "attributionSource": {"url": "https://example.com/landing", "campaign": None, "medium": "organic"},
    }
    if rng.random() < 0.05:
        data["dnd"] = True
        data["dndSettings"] = {ch: {"status": "active", "message": "", "code": ""} for ch in DND_CHANNELS}
    return Contact(data, added, updated)


def _custom_value(rng: random.Random, field: dict[str, Any]) -> str:
    data_type = field["dataType"]
    if field["picklistOptions"]:
        return rng.choice(field["picklistOptions"])
    if data_type == "NUMERICAL":
        return str(rng.randrange(0, 101))
    if data_type == "DATE":
        return f"2025-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    return new_id(rng)[:8] if data_type == "TEXT" else rng.choice(NOTE_BODIES)


def _fill(loc: Location, rng: random.Random, count: int, anchor_ms: int) -> None:
    """Generate a location's ``count`` contacts (its first access to them); the same whenever it happens, since
    each location has its own seeded stream and the dates are relative to the anchor."""
    for n in range(count):
        loc.add(generate_contact(loc, rng, n, anchor_ms))


class Store:
    """Every location of the sandbox, generated from ``seed``."""

    def __init__(self, *, seed: int, locations: int, contacts: int, anchor: datetime | None) -> None:
        self.seed = seed
        self.anchor_ms = int((anchor or datetime.now(UTC)).timestamp() * 1000)
        self.company_id = new_id(random.Random(f"company:{seed}"))
        self.locations: dict[str, Location] = {}
        self.rng = random.Random(f"writes:{seed}")
        self._last_ms = 0
        for i in range(locations):
            loc = Location(seed=seed, index=i, company_id=self.company_id)
            loc.clock = self.now_ms
            loc.planned_contacts = contacts
            rng = random.Random(f"contacts:{seed}:{i}")
            loc._generate = functools.partial(_fill, loc, rng, contacts, self.anchor_ms)
            self.locations[loc.id] = loc

    def now_ms(self) -> int:
        """Wall-clock ms, never going backwards. Writes in the same ms share it (ids break ties in search order);
        stamping them apart would run the clock ahead of real time during bursts."""
        self._last_ms = max(int(time.time() * 1000), self._last_ms)
        return self._last_ms

    def find_contact(self, contact_id: str) -> tuple[Location, Contact] | None:
        for loc in self.locations.values():
            if (contact := loc.contacts.get(contact_id)) is not None:
                return loc, contact
        return None
