"""Every typed GHLHook method against the sandbox, over the wire, with a Private Integration Token: once with API
v2 (``Version: 2021-07-28``) and once with API v3 (``api_version=v3``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from airflow_provider_ghl import __version__
from airflow_provider_ghl.exceptions import (
    GHLAuthError,
    GHLConfigError,
    GHLDuplicateContactError,
    GHLForbiddenError,
    GHLNotFoundError,
    GHLValidationError,
)
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.request import Request
from ghl_sandbox.testing import SandboxServer


@pytest.fixture(params=["2021-07-28", "v3"])
def api_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pit_hook(fast_sandbox: SandboxServer, conn_factory: Callable[..., str], api_version: str) -> Iterator[GHLHook]:
    """A hook with location 0's Private Integration Token, in each API version."""
    loc = fast_sandbox.info["locations"][0]
    conn_id = conn_factory(
        host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"], api_version=api_version
    )
    hook = GHLHook(conn_id, retry_backoff=0.05)
    yield hook
    hook.close()


@pytest.fixture
def location(fast_sandbox: SandboxServer) -> dict:
    return fast_sandbox.info["locations"][0]


@pytest.fixture
def contact_id(fast_sandbox: SandboxServer, location: dict) -> str:
    return fast_sandbox.contact_ids(location["id"])[0]


def test_session_headers(pit_hook: GHLHook, api_version: str) -> None:
    headers = pit_hook.get_conn().headers
    assert headers["Version"] == api_version
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == f"airflow-provider-ghl/{__version__}"
    assert "Authorization" not in headers  # set per request: OAuth tokens rotate


def test_contact_lifecycle(pit_hook: GHLHook, location: dict) -> None:
    created = pit_hook.create_contact({"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"})
    assert created["locationId"] == location["id"] and created["email"] == "ada@example.com"
    assert pit_hook.get_contact(created["id"])["firstName"] == "Ada"

    with pytest.raises(GHLDuplicateContactError) as dup:
        pit_hook.create_contact({"firstName": "Ada", "email": "ada@example.com"})
    assert dup.value.contact_id == created["id"] and dup.value.matching_field == "email"
    assert pit_hook.get_duplicate_contact(email="ada@example.com")["id"] == created["id"]
    assert pit_hook.get_duplicate_contact(email="nobody@example.com") is None

    updated = pit_hook.update_contact(created["id"], {"city": "London"})
    assert updated["city"] == "London"
    upserted = pit_hook.upsert_contact({"email": "ada@example.com", "lastName": "King"})
    assert upserted["new"] is False and upserted["contact"]["id"] == created["id"]
    fresh = pit_hook.upsert_contact({"email": "grace@example.com", "firstName": "Grace"})
    assert fresh["new"] is True

    assert pit_hook.delete_contact(created["id"]) is None
    with pytest.raises(GHLNotFoundError, match="not found"):
        pit_hook.get_contact(created["id"])
    with pytest.raises(GHLValidationError) as invalid:
        pit_hook.create_contact({"firstName": "X", "email": "not-an-email"})
    assert invalid.value.errors


def test_tags_and_bulk_updates(pit_hook: GHLHook, fast_sandbox: SandboxServer, location: dict) -> None:
    ids = fast_sandbox.contact_ids(location["id"])[:3]
    assert {"vip", "q3"} <= set(pit_hook.add_tags(ids[0], ["vip", "q3"]))
    assert "vip" not in pit_hook.remove_tags(ids[0], ["vip"])

    added = pit_hook.bulk_update_tags(ids, ["bulk"], "add")
    assert added["errorCount"] == 0 and len(added["responses"]) == 3
    assert all("bulk" in pit_hook.get_contact(i)["tags"] for i in ids)
    removed = pit_hook.bulk_update_tags(ids, ["bulk"], "remove")
    assert all(r["tagsRemoved"] == ["bulk"] for r in removed["responses"])
    with pytest.raises(ValueError, match="action"):
        pit_hook.bulk_update_tags(ids, ["x"], "toggle")  # type: ignore[arg-type]

    business = location["businesses"][0]["id"]
    assert pit_hook.bulk_update_business(ids, business) == {"success": True, "ids": ids}
    page = pit_hook.get_contacts_by_business(business, limit=2)
    assert page["count"] >= 3 and len(page["contacts"]) == 2
    members = [c["id"] for c in pit_hook.iter_contacts_by_business(business, page_limit=2)]
    assert set(ids) <= set(members) and len(members) == len(set(members)) == page["count"]
    pit_hook.bulk_update_business(ids[:1], None)
    assert ids[0] not in {c["id"] for c in pit_hook.iter_contacts_by_business(business)}


def test_tasks(pit_hook: GHLHook, contact_id: str, location: dict) -> None:
    due = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    task = pit_hook.create_task(contact_id, title="Call back", due_date=due, body="re: offer")
    assert (task["title"], task["completed"], task["dueDate"]) == ("Call back", False, "2030-01-02T03:04:05.000Z")
    assert task["id"] in {t["id"] for t in pit_hook.get_tasks(contact_id)}
    assert pit_hook.get_task(contact_id, task["id"])["body"] == "re: offer"
    assert pit_hook.update_task(contact_id, task["id"], {"title": "Call again"})["title"] == "Call again"
    assert pit_hook.complete_task(contact_id, task["id"])["completed"] is True

    found = pit_hook.search_location_tasks(contact_ids=[contact_id], completed=True)
    assert task["id"] in {t["id"] for t in found}
    everything = list(pit_hook.iter_location_tasks(page_limit=7))
    assert len(everything) == len({t["id"] for t in everything}) > 7

    assert pit_hook.delete_task(contact_id, task["id"]) is None
    with pytest.raises(GHLNotFoundError):
        pit_hook.get_task(contact_id, task["id"])


def test_notes_and_appointments(pit_hook: GHLHook, contact_id: str) -> None:
    note = pit_hook.create_note(contact_id, "Met at the fair", title="Fair", pinned=True)
    assert (note["body"], note["title"], note["pinned"]) == ("Met at the fair", "Fair", True)
    assert note["id"] in {n["id"] for n in pit_hook.get_notes(contact_id)}
    assert pit_hook.get_note(contact_id, note["id"])["title"] == "Fair"
    assert pit_hook.update_note(contact_id, note["id"], {"body": "Met twice"})["body"] == "Met twice"
    assert pit_hook.delete_note(contact_id, note["id"]) is None
    with pytest.raises(GHLNotFoundError):
        pit_hook.get_note(contact_id, note["id"])
    appointments = pit_hook.get_appointments(contact_id)
    assert isinstance(appointments, list)
    assert all(a["contactId"] == contact_id for a in appointments)


def test_followers_campaigns_workflows(pit_hook: GHLHook, contact_id: str, location: dict) -> None:
    users = location["users"][:2]
    added = pit_hook.add_followers(contact_id, users)
    assert set(users) <= set(added["followers"])
    assert set(pit_hook.remove_followers(contact_id, users[:1])["followersRemoved"]) == set(users[:1])

    campaign, other = location["campaigns"][:2]
    assert pit_hook.add_to_campaign(contact_id, campaign) is None
    assert pit_hook.add_to_campaign(contact_id, other) is None
    assert pit_hook.remove_from_campaign(contact_id, campaign) is None
    assert pit_hook.remove_from_all_campaigns(contact_id) is None
    with pytest.raises(GHLNotFoundError):
        pit_hook.add_to_campaign(contact_id, "no-such-campaign")

    workflow = location["workflows"][0]
    start = datetime(2030, 6, 1, 9, tzinfo=UTC)
    assert pit_hook.add_to_workflow(contact_id, workflow, event_start_time=start) is None
    assert pit_hook.remove_from_workflow(contact_id, workflow) is None


def test_custom_fields_and_search(pit_hook: GHLHook, fast_sandbox: SandboxServer, location: dict) -> None:
    fields = pit_hook.get_custom_fields(model="contact")
    assert fields and all(f["model"] == "contact" for f in fields)
    page = pit_hook.search_contacts(page_limit=5, sort=[{"field": "dateAdded", "direction": "asc"}])
    assert page["total"] == location["contacts"] and len(page["contacts"]) == 5
    assert all("searchAfter" in c for c in page["contacts"])
    if pit_hook.config.api_version == "v3":
        with pytest.raises(GHLConfigError, match="removed in API v3"):
            pit_hook.get_contacts(limit=5)
        return
    legacy = pit_hook.get_contacts(limit=5)
    assert len(legacy["contacts"]) == 5 and legacy["meta"]["startAfterId"]


def test_iterators_return_every_contact_once(pit_hook: GHLHook, fast_sandbox: SandboxServer, location: dict) -> None:
    expected = set(fast_sandbox.contact_ids(location["id"]))
    walks = [pit_hook.iter_contacts(page_limit=33)]
    if pit_hook.config.api_version == "v3":
        with pytest.raises(GHLConfigError, match="removed in API v3"):
            list(pit_hook.iter_contacts_legacy(page_limit=33))  # the deprecated list is gone in v3
    else:
        walks.append(pit_hook.iter_contacts_legacy(page_limit=33))
    for contacts in walks:
        ids = [c["id"] for c in contacts]
        assert len(ids) == len(set(ids)) and set(ids) == expected


def test_updated_window(pit_hook: GHLHook, fast_sandbox: SandboxServer, location: dict) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    touched = fast_sandbox.touch_contacts(location["id"], count=7)
    after = datetime.now(UTC) + timedelta(seconds=5)
    hits = list(pit_hook.iter_contacts(since=before, until=after, page_limit=3))
    assert sorted(c["id"] for c in hits) == sorted(touched)
    # dateUpdated ascending; contacts touched in the same millisecond tie and come in id order.
    assert [(c["dateUpdated"], c["id"]) for c in hits] == sorted((c["dateUpdated"], c["id"]) for c in hits)
    assert list(pit_hook.iter_contacts(since=before - timedelta(days=1), until=before, date_field="dateUpdated"))
    assert not set(touched) & {
        c["id"] for c in pit_hook.iter_contacts(since=before - timedelta(days=3650), until=before)
    }


def test_other_location_is_forbidden(pit_hook: GHLHook, fast_sandbox: SandboxServer) -> None:
    other = fast_sandbox.info["locations"][1]
    with pytest.raises(GHLForbiddenError, match="does not have access"):
        pit_hook.search_contacts(location_id=other["id"])
    with pytest.raises(GHLForbiddenError):
        pit_hook.get_contact(fast_sandbox.contact_ids(other["id"])[0])


def test_test_connection(pit_hook: GHLHook, fast_sandbox: SandboxServer, conn_factory: Callable[..., str]) -> None:
    ok, message = pit_hook.test_connection()
    assert ok and "200 contacts" in message
    loc = fast_sandbox.info["locations"][0]
    bad_token = conn_factory(host=fast_sandbox.base_url, password="pit-00000000-revoked", location_id=loc["id"])
    ok, message = GHLHook(bad_token).test_connection()
    assert not ok and "Token problem" in message and "Invalid JWT" in message
    wrong_location = conn_factory(
        host=fast_sandbox.base_url, password=loc["private_token"], location_id=fast_sandbox.location_ids[1]
    )
    ok, message = GHLHook(wrong_location).test_connection()
    assert not ok and "no access to location" in message
    with pytest.raises(GHLAuthError, match="Private Integration Token"):
        GHLHook(bad_token).get_contact("x")


def test_api_v3_paths(fast_sandbox: SandboxServer, conn_factory: Callable[..., str]) -> None:
    loc = fast_sandbox.info["locations"][0]
    conn_id = conn_factory(
        host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"], api_version="v3"
    )
    hook = GHLHook(conn_id)
    resolved = hook.resolve(Request("remove_from_all_campaigns", path_params={"contactId": "c1"}))
    assert resolved.path == "/contacts/c1/campaigns/remove-all"
    with pytest.raises(GHLConfigError, match="removed in API v3"):
        hook.get_contacts()
    assert hook.get_conn().headers["Version"] == "v3"
    assert hook.get_contact(fast_sandbox.contact_ids(loc["id"])[0])["locationId"] == loc["id"]
    assert json.dumps(hook.get_custom_fields())


def test_path_values_are_quoted(pit_hook: GHLHook) -> None:
    # "../" in an id must not reach another route: it is one (unknown) path segment.
    with pytest.raises(GHLNotFoundError):
        pit_hook.get_contact("../contacts/search")
    with pytest.raises(ValueError, match="empty"):
        pit_hook.get_contact("")
