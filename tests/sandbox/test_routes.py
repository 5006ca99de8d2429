"""Every sandbox route over the wire: happy path, GHL's status codes and wrapper keys, trailing slashes, errors."""

from __future__ import annotations

from typing import Any

import pytest

from tests.sandbox.conftest import Api

DUE = "2026-03-01T10:00:00.000Z"


def _info(api: Api) -> dict[str, Any]:
    return api.server.info["locations"][0]


# -- contacts -----------------------------------------------------------------------------------------------
def test_create_get_update_delete_contact(api: Api) -> None:
    resp = api.post(
        "/contacts/",
        json={"locationId": api.location_id, "firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.org"},
    )
    assert resp.status_code == 201
    assert set(resp.json()) == {"contact"}
    created = resp.json()["contact"]
    assert created["locationId"] == api.location_id
    assert created["name"] == "Ada Lovelace"
    assert created["dateAdded"] == created["dateUpdated"]

    resp = api.get(f"/contacts/{created['id']}")
    assert resp.status_code == 200
    assert set(resp.json()) == {"contact"}
    assert resp.json()["contact"]["email"] == "ada@example.org"

    resp = api.put(f"/contacts/{created['id']}", json={"city": "London"})
    assert resp.status_code == 200
    assert set(resp.json()) == {"succeded", "contact"}
    assert resp.json()["succeded"] is True
    updated = resp.json()["contact"]
    assert updated["city"] == "London"
    assert updated["dateUpdated"] > created["dateUpdated"]
    assert updated["dateAdded"] == created["dateAdded"]

    resp = api.delete(f"/contacts/{created['id']}")
    assert (resp.status_code, resp.json()) == (200, {"succeded": True})
    assert api.get(f"/contacts/{created['id']}").status_code == 400
    assert created["id"] not in api.server.contact_ids(api.location_id)


def test_a_created_contact_has_no_tasks_notes_or_appointments(api: Api) -> None:
    resp = api.post("/contacts/", json={"locationId": api.location_id, "email": "fresh.children@example.org"})
    contact_id = resp.json()["contact"]["id"]
    for path, key in (("tasks", "tasks"), ("notes", "notes"), ("appointments", "events")):
        assert api.get(f"/contacts/{contact_id}/{path}").json() == {key: []}


def test_upsert_creates_then_updates(api: Api) -> None:
    body = {"locationId": api.location_id, "email": "upsert@example.org", "firstName": "Up"}
    first = api.post("/contacts/upsert", json=body)
    assert first.status_code == 200
    assert set(first.json()) == {"new", "contact", "traceId"}
    assert first.json()["new"] is True
    second = api.post("/contacts/upsert", json={**body, "lastName": "Sert"})
    assert second.status_code == 200
    assert second.json()["new"] is False
    assert second.json()["contact"]["id"] == first.json()["contact"]["id"]
    assert second.json()["contact"]["name"] == "Up Sert"


def test_legacy_list_contacts(api: Api) -> None:
    resp = api.get("/contacts/", params={"locationId": api.location_id, "limit": 10})
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"contacts", "count", "meta"}
    assert len(body["contacts"]) == 10
    assert body["count"] == body["meta"]["total"] == 200
    assert {"startAfterId", "startAfter", "nextPageUrl", "currentPage", "nextPage", "prevPage"} <= set(body["meta"])


def test_search_wrapper_keys(api: Api) -> None:
    resp = api.search(pageLimit=5)
    assert resp.status_code == 200
    assert set(resp.json()) == {"contacts", "total"}
    assert len(resp.json()["contacts"]) == 5
    assert all("searchAfter" in c for c in resp.json()["contacts"])


def test_get_duplicate_contact(api: Api) -> None:
    contact = api.first_contact()
    resp = api.get("/contacts/search/duplicate", params={"locationId": api.location_id, "email": contact["email"]})
    assert resp.status_code == 200
    assert resp.json()["contact"]["id"] == contact["id"]
    resp = api.get("/contacts/search/duplicate", params={"locationId": api.location_id, "number": contact["phone"]})
    assert resp.json()["contact"]["id"] == contact["id"]
    resp = api.get("/contacts/search/duplicate", params={"locationId": api.location_id, "email": "nobody@x.org"})
    assert resp.status_code == 200
    assert resp.json() == {"contact": None}


def test_contacts_by_business(api: Api) -> None:
    with_business = api.search_all(filters=[{"field": "businessId", "operator": "exists"}])
    business_id = with_business[0]["businessId"]
    expected = {c["id"] for c in with_business if c["businessId"] == business_id}
    resp = api.get(f"/contacts/business/{business_id}", params={"locationId": api.location_id, "limit": 100})
    assert resp.status_code == 200
    assert set(resp.json()) == {"contacts", "count"}
    assert resp.json()["count"] == len(expected)
    assert {c["id"] for c in resp.json()["contacts"]} == expected
    paged = api.get(f"/contacts/business/{business_id}", params={"locationId": api.location_id, "limit": 1, "skip": 1})
    assert [c["id"] for c in paged.json()["contacts"]] == [resp.json()["contacts"][1]["id"]]


# -- tasks, notes, appointments -----------------------------------------------------------------------------
def test_task_routes(api: Api) -> None:
    cid = api.first_contact()["id"]
    base = f"/contacts/{cid}/tasks"
    created = api.post(base, json={"title": "Call", "dueDate": DUE, "completed": False})
    assert created.status_code == 201
    assert set(created.json()) == {"task"}
    task = created.json()["task"]
    assert (task["title"], task["contactId"], task["completed"]) == ("Call", cid, False)

    listed = api.get(base)
    assert listed.status_code == 200
    assert set(listed.json()) == {"tasks"}
    assert task["id"] in {t["id"] for t in listed.json()["tasks"]}

    got = api.get(f"{base}/{task['id']}")
    assert (got.status_code, got.json()) == (200, {"task": task})

    put = api.put(f"{base}/{task['id']}", json={"title": "Call again"})
    assert put.status_code == 200
    assert put.json()["task"]["title"] == "Call again"

    done = api.put(f"{base}/{task['id']}/completed", json={"completed": True})
    assert done.status_code == 200
    assert done.json()["task"]["completed"] is True

    deleted = api.delete(f"{base}/{task['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {"succeded": True})
    assert api.get(f"{base}/{task['id']}").status_code == 400


def test_note_routes(api: Api) -> None:
    cid = api.first_contact()["id"]
    base = f"/contacts/{cid}/notes"
    created = api.post(base, json={"body": "Met at the fair"})
    assert created.status_code == 201
    assert set(created.json()) == {"note"}
    note = created.json()["note"]
    assert (note["body"], note["contactId"]) == ("Met at the fair", cid)
    assert note["dateAdded"].endswith("Z")

    listed = api.get(base)
    assert listed.status_code == 200
    assert set(listed.json()) == {"notes"}
    assert note["id"] in {n["id"] for n in listed.json()["notes"]}

    assert api.get(f"{base}/{note['id']}").json() == {"note": note}
    put = api.put(f"{base}/{note['id']}", json={"body": "Met at the fair, twice", "pinned": True})
    assert put.status_code == 200
    assert (put.json()["note"]["body"], put.json()["note"]["pinned"]) == ("Met at the fair, twice", True)

    deleted = api.delete(f"{base}/{note['id']}")
    assert (deleted.status_code, deleted.json()) == (200, {"succeded": True})
    assert api.get(f"{base}/{note['id']}").status_code == 400


def test_appointments(api: Api) -> None:
    # Seeded appointments are generated per contact; find one with some.
    for contact in api.search(pageLimit=50).json()["contacts"]:
        resp = api.get(f"/contacts/{contact['id']}/appointments")
        assert resp.status_code == 200
        assert set(resp.json()) == {"events"}
        if resp.json()["events"]:
            event = resp.json()["events"][0]
            assert (event["contactId"], event["locationId"]) == (contact["id"], api.location_id)
            return
    pytest.fail("no seeded contact among 50 has an appointment")


def test_seeded_children_exist(api: Api) -> None:
    counts = {"tasks": 0, "notes": 0}
    for contact in api.search(pageLimit=20).json()["contacts"]:
        for kind in counts:
            counts[kind] += len(api.get(f"/contacts/{contact['id']}/{kind}").json()[kind])
    assert counts["tasks"] > 0
    assert counts["notes"] > 0


# -- tags, followers, campaigns, workflows ------------------------------------------------------------------
def test_tags_add_remove(api: Api) -> None:
    contact = api.new_contact(email="tags@example.org", tags=["a"])
    added = api.post(f"/contacts/{contact['id']}/tags", json={"tags": ["b", "c", "b"]})
    assert added.status_code == 201
    assert added.json() == {"tags": ["a", "b", "c"]}
    removed = api.delete(f"/contacts/{contact['id']}/tags", json={"tags": ["a", "c"]})
    assert removed.status_code == 200
    assert removed.json() == {"tags": ["b"]}
    assert api.get(f"/contacts/{contact['id']}").json()["contact"]["tags"] == ["b"]


def test_followers_add_remove(api: Api) -> None:
    cid = api.first_contact()["id"]
    users = _info(api)["users"]
    added = api.post(f"/contacts/{cid}/followers", json={"followers": users[:2]})
    assert added.status_code == 201
    assert added.json() == {"followers": users[:2], "followersAdded": users[:2]}
    removed = api.delete(f"/contacts/{cid}/followers", json={"followers": [users[0]]})
    assert removed.status_code == 200
    assert removed.json() == {"followers": [users[1]], "followersRemoved": [users[0]]}


def test_campaigns(api: Api) -> None:
    cid = api.first_contact()["id"]
    campaign = _info(api)["campaigns"][0]
    added = api.post(f"/contacts/{cid}/campaigns/{campaign}", json={})
    assert (added.status_code, added.json()) == (201, {"succeded": True})
    removed = api.delete(f"/contacts/{cid}/campaigns/{campaign}")
    assert (removed.status_code, removed.json()) == (200, {"succeded": True})
    # removeAll is a literal, not a campaign id.
    all_removed = api.delete(f"/contacts/{cid}/campaigns/removeAll")
    assert (all_removed.status_code, all_removed.json()) == (200, {"succeded": True})
    assert api.post(f"/contacts/{cid}/campaigns/nope", json={}).status_code == 400


def test_workflows(api: Api) -> None:
    cid = api.first_contact()["id"]
    workflow = _info(api)["workflows"][0]
    added = api.post(f"/contacts/{cid}/workflow/{workflow}", json={"eventStartTime": DUE})
    assert (added.status_code, added.json()) == (200, {"succeded": True})
    removed = api.delete(f"/contacts/{cid}/workflow/{workflow}", json={})
    assert (removed.status_code, removed.json()) == (200, {"succeded": True})
    assert api.post(f"/contacts/{cid}/workflow/nope", json={}).status_code == 400
    bad_time = api.post(f"/contacts/{cid}/workflow/{workflow}", json={"eventStartTime": "soon"})
    assert bad_time.status_code == 422


def test_bulk_tags(api: Api, api2: Api) -> None:
    mine = api.new_contact(email="bulk@example.org", tags=["x"])
    theirs = api2.first_contact()["id"]
    resp = api.post(
        "/contacts/bulk/tags/update/add",
        json={"locationId": api.location_id, "contacts": [mine["id"], theirs, "missing"], "tags": ["y"]},
    )
    assert resp.status_code == 201
    body = resp.json()
    assert set(body) == {"succeded", "errorCount", "responses"}
    assert (body["succeded"], body["errorCount"]) == (False, 2)
    ok = body["responses"][0]
    assert (ok["contactId"], ok["type"], ok["oldTags"], ok["tagsAdded"]) == (mine["id"], "success", ["x"], ["y"])
    assert body["responses"][1]["message"] == "contact does not belong to location"
    removed = api.post(
        "/contacts/bulk/tags/update/remove",
        json={"locationId": api.location_id, "contacts": [mine["id"]], "tags": [], "removeAllTags": True},
    )
    assert (removed.json()["succeded"], removed.json()["responses"][0]["tagsRemoved"]) == (True, ["x", "y"])
    bad_type = api.post(
        "/contacts/bulk/tags/update/toggle", json={"locationId": api.location_id, "contacts": [], "tags": []}
    )
    assert bad_type.status_code == 422


def test_bulk_business(api: Api) -> None:
    business = _info(api)["businesses"][0]["id"]
    ids = [c["id"] for c in api.search(pageLimit=3).json()["contacts"]]
    resp = api.post("/contacts/bulk/business", json={"locationId": api.location_id, "ids": ids, "businessId": business})
    assert (resp.status_code, resp.json()) == (200, {"success": True, "ids": ids})
    assert all(api.get(f"/contacts/{i}").json()["contact"]["businessId"] == business for i in ids)
    cleared = api.post("/contacts/bulk/business", json={"locationId": api.location_id, "ids": ids, "businessId": None})
    assert cleared.status_code == 200
    assert api.get(f"/contacts/{ids[0]}").json()["contact"]["businessId"] == ""


# -- locations ----------------------------------------------------------------------------------------------
def test_custom_fields(api: Api) -> None:
    resp = api.get(f"/locations/{api.location_id}/customFields")
    assert resp.status_code == 200
    assert set(resp.json()) == {"customFields"}
    fields = resp.json()["customFields"]
    assert len(fields) >= 5
    assert all(f["fieldKey"].startswith("contact.") and f["locationId"] == api.location_id for f in fields)
    # Contacts carry values for these definitions: {id, value} with ids from this list.
    known = {f["id"] for f in fields}
    values = [cf for c in api.search(pageLimit=50).json()["contacts"] for cf in c["customFields"]]
    assert values
    assert {v["id"] for v in values} <= known


def test_custom_field_values_written_by_key(api: Api) -> None:
    fields = {
        f["fieldKey"]: f["id"] for f in api.get(f"/locations/{api.location_id}/customFields").json()["customFields"]
    }
    contact = api.new_contact(email="cf@example.org", customFields=[{"key": "referral_code", "field_value": "ABC"}])
    assert contact["customFields"] == [{"id": fields["contact.referral_code"], "value": "ABC"}]


def test_location_task_search(api: Api) -> None:
    resp = api.post(f"/locations/{api.location_id}/tasks/search", json={"completed": False, "limit": 100})
    assert resp.status_code == 200
    assert "tasks" in resp.json()
    tasks = resp.json()["tasks"]
    assert tasks
    assert all(t["completed"] is False for t in tasks)
    cid = tasks[0]["contactId"]
    only = api.post(f"/locations/{api.location_id}/tasks/search", json={"contactId": [cid]}).json()["tasks"]
    assert {t["contactId"] for t in only} == {cid}
    assert {t["id"] for t in only} == {t["id"] for t in api.get(f"/contacts/{cid}/tasks").json()["tasks"]}


# -- trailing slashes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/contacts/{cid}",
        "/contacts/{cid}/tasks",
        "/contacts/{cid}/notes",
        "/contacts/{cid}/appointments",
        "/locations/{loc}/customFields",
        "/contacts/search/duplicate?locationId={loc}&email=a@b.c",
        "/contacts?locationId={loc}&limit=3",
    ],
)
def test_get_with_and_without_trailing_slash(api: Api, path: str) -> None:
    path = path.format(cid=api.first_contact()["id"], loc=api.location_id)
    route, _, query = path.partition("?")
    plain = api.get(route + ("?" + query if query else ""))
    slashed = api.get(route + "/" + ("?" + query if query else ""))
    assert plain.status_code == slashed.status_code == 200
    assert plain.json() == slashed.json()


@pytest.mark.parametrize("path", ["/contacts", "/contacts/", "/contacts/upsert", "/contacts/upsert/"])
def test_create_with_and_without_trailing_slash(api: Api, path: str) -> None:
    resp = api.post(path, json={"locationId": api.location_id, "email": f"slash{len(path)}@example.org"})
    assert resp.status_code in (200, 201)
    assert "contact" in resp.json()


@pytest.mark.parametrize("path", ["/contacts/search", "/contacts/search/"])
def test_search_with_and_without_trailing_slash(api: Api, path: str) -> None:
    resp = api.post(path, json={"locationId": api.location_id, "pageLimit": 3})
    assert resp.status_code == 200
    assert resp.json()["total"] == 200


# -- errors -------------------------------------------------------------------------------------------------
def test_validation_errors_are_422_with_message_list(api: Api) -> None:
    cid = api.first_contact()["id"]
    cases = [
        (api.post("/contacts/", json={"locationId": api.location_id, "bogus": 1}), "property bogus should not exist"),
        (api.put(f"/contacts/{cid}", json={"locationId": api.location_id}), "property locationId should not exist"),
        (api.post(f"/contacts/{cid}/tasks", json={"dueDate": DUE, "completed": False}), "title should not be empty"),
        (api.post(f"/contacts/{cid}/notes", json={}), "body should not be empty"),
        (
            api.post("/contacts/", json={"locationId": api.location_id, "email": "not-an-email"}),
            "email must be an email",
        ),
        (api.post("/contacts/search", json={"pageLimit": 5}), "locationId should not be empty"),
        (api.post("/contacts/search", json={"locationId": api.location_id}), "pageLimit should not be empty"),
    ]
    for resp, message in cases:
        assert resp.status_code == 422, resp.text
        body = resp.json()
        assert body["statusCode"] == 422
        assert isinstance(body["message"], list)
        assert message in body["message"], body


def test_unknown_contact_task_note_are_400(api: Api) -> None:
    cid = api.first_contact()["id"]
    for resp, message in [
        (api.get("/contacts/nope"), "Contact with id nope not found"),
        (api.put("/contacts/nope", json={"city": "X"}), "Contact with id nope not found"),
        (api.delete("/contacts/nope"), "Contact with id nope not found"),
        (api.get("/contacts/nope/tasks"), "Contact with id nope not found"),
        (api.get(f"/contacts/{cid}/tasks/nope"), "Task with id nope not found"),
        (api.put(f"/contacts/{cid}/tasks/nope", json={"title": "x"}), "Task with id nope not found"),
        (api.delete(f"/contacts/{cid}/tasks/nope"), "Task with id nope not found"),
        (api.get(f"/contacts/{cid}/notes/nope"), "Note with id nope not found"),
        (api.delete(f"/contacts/{cid}/notes/nope"), "Note with id nope not found"),
    ]:
        assert resp.status_code == 400, resp.text
        assert (resp.json()["statusCode"], resp.json()["message"]) == (400, message)


def test_other_location_is_403(api: Api, api2: Api) -> None:
    other = api2.location_id
    theirs = api2.first_contact()["id"]
    for resp in [
        api.post("/contacts/search", json={"locationId": other, "pageLimit": 1}),
        api.get("/contacts/", params={"locationId": other}),
        api.get("/contacts/"),  # no locationId at all
        api.post("/contacts/", json={"locationId": other, "email": "x@example.org"}),
        api.get(f"/locations/{other}/customFields"),
        api.post(f"/locations/{other}/tasks/search", json={}),
        api.get(f"/contacts/{theirs}"),
    ]:
        assert resp.status_code == 403, resp.text
        assert resp.json() == {
            "statusCode": 403,
            "message": "The token does not have access to this location.",
            "traceId": resp.json()["traceId"],
        }


def test_duplicate_contact_is_400_with_meta(api: Api) -> None:
    existing = api.first_contact()
    by_email = api.post("/contacts/", json={"locationId": api.location_id, "email": existing["email"].upper()})
    assert by_email.status_code == 400
    body = by_email.json()
    assert body["message"] == "This location does not allow duplicated contacts."
    assert (body["meta"]["contactId"], body["meta"]["matchingField"]) == (existing["id"], "email")
    by_phone = api.post("/contacts/", json={"locationId": api.location_id, "phone": existing["phone"]})
    assert by_phone.status_code == 400
    assert (by_phone.json()["meta"]["contactId"], by_phone.json()["meta"]["matchingField"]) == (existing["id"], "phone")
    assert len(api.server.contact_ids(api.location_id)) == 200


def test_duplicates_allowed_when_configured(api: Api) -> None:
    api.server.reset(allow_duplicates=True)
    existing = api.first_contact()
    resp = api.post("/contacts/", json={"locationId": api.location_id, "email": existing["email"]})
    assert resp.status_code == 201
    assert resp.json()["contact"]["id"] != existing["id"]


def test_unknown_route_is_404(api: Api) -> None:
    resp = api.get("/contacts/abc/nothing")
    assert resp.status_code == 404
    assert resp.json()["statusCode"] == 404
