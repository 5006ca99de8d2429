"""``POST /contacts/search`` (filters, sort, page, searchAfter, caps, total) and legacy ``GET /contacts/`` paging."""

from __future__ import annotations

import operator
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from ghl_sandbox.testing import SandboxServer
from tests.sandbox.conftest import Api

COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _ids(contacts: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in contacts]


@pytest.fixture
def everyone(api: Api) -> list[dict[str, Any]]:
    """Every contact of location 0 (one 500-contact page), the oracle the filter tests compare against."""
    resp = api.search(pageLimit=500)
    assert resp.status_code == 200
    contacts = resp.json()["contacts"]
    assert len(contacts) == resp.json()["total"] == 200
    return contacts


def test_search_sees_every_contact_once(api: Api, everyone: list[dict[str, Any]]) -> None:
    assert sorted(_ids(everyone)) == sorted(api.server.contact_ids(api.location_id))
    assert all(c["locationId"] == api.location_id for c in everyone)


@pytest.mark.parametrize("field", ["dateUpdated", "dateAdded"])
@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_range_filter_bounds(api: Api, everyone: list[dict[str, Any]], field: str, op: str) -> None:
    # The bound is a contact's own timestamp, so gt/gte (and lt/lte) differ exactly by the equal ones.
    pivot = sorted(c[field] for c in everyone)[len(everyone) // 2]
    expected = {c["id"] for c in everyone if COMPARE[op](c[field], pivot)}
    resp = api.search(pageLimit=500, filters=[{"field": field, "operator": "range", "value": {op: pivot}}])
    assert resp.status_code == 200
    assert {c["id"] for c in resp.json()["contacts"]} == expected
    assert resp.json()["total"] == len(expected)


def test_range_window_and_epoch_bounds(api: Api, everyone: list[dict[str, Any]]) -> None:
    stamps = sorted(c["dateUpdated"] for c in everyone)
    low, high = stamps[40], stamps[160]
    expected = {c["id"] for c in everyone if low <= c["dateUpdated"] < high}
    window = [{"field": "dateUpdated", "operator": "range", "value": {"gte": low, "lt": high}}]
    assert {c["id"] for c in api.search(pageLimit=500, filters=window).json()["contacts"]} == expected
    epoch = [{"field": "dateUpdated", "operator": "range", "value": {"gte": _ms(low), "lt": _ms(high)}}]
    assert {c["id"] for c in api.search(pageLimit=500, filters=epoch).json()["contacts"]} == expected


def test_eq_filters(api: Api, everyone: list[dict[str, Any]]) -> None:
    target = everyone[7]
    by_email = api.search(filters=[{"field": "email", "operator": "eq", "value": target["email"].upper()}]).json()
    assert (by_email["total"], _ids(by_email["contacts"])) == (1, [target["id"]])

    tag = next(t for c in everyone for t in c["tags"])
    tagged = {c["id"] for c in everyone if tag in c["tags"]}
    by_tag = api.search(pageLimit=500, filters=[{"field": "tags", "operator": "eq", "value": tag}]).json()
    assert ({c["id"] for c in by_tag["contacts"]}, by_tag["total"]) == (tagged, len(tagged))

    business = next(c["businessId"] for c in everyone if c["businessId"])
    members = {c["id"] for c in everyone if c["businessId"] == business}
    by_business = api.search(pageLimit=500, filters=[{"field": "businessId", "operator": "eq", "value": business}])
    assert {c["id"] for c in by_business.json()["contacts"]} == members


def test_filters_are_anded_and_groups_or(api: Api, everyone: list[dict[str, Any]]) -> None:
    pivot = sorted(c["dateAdded"] for c in everyone)[100]
    tag = "vip"
    both = [
        {"field": "dateAdded", "operator": "range", "value": {"gte": pivot}},
        {"field": "tags", "operator": "eq", "value": tag},
    ]
    expected_and = {c["id"] for c in everyone if c["dateAdded"] >= pivot and tag in c["tags"]}
    assert {c["id"] for c in api.search(pageLimit=500, filters=both).json()["contacts"]} == expected_and
    expected_or = {c["id"] for c in everyone if c["dateAdded"] >= pivot or tag in c["tags"]}
    either = api.search(pageLimit=500, filters=[{"group": "OR", "filters": both}]).json()["contacts"]
    assert {c["id"] for c in either} == expected_or


@pytest.mark.parametrize("field", ["dateAdded", "dateUpdated"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sort_and_search_after_cursor(api: Api, field: str, direction: str) -> None:
    contacts = api.search(pageLimit=500, sort=[{"field": field, "direction": direction}]).json()["contacts"]
    keys = [(_ms(c[field]), c["id"]) for c in contacts]
    assert [c["searchAfter"] for c in contacts] == [list(k) for k in keys]
    values = [k[0] for k in keys]
    assert values == sorted(values, reverse=direction == "desc")


def test_search_after_walk_with_filter_and_sort(api: Api, everyone: list[dict[str, Any]]) -> None:
    pivot = sorted(c["dateUpdated"] for c in everyone)[50]
    body = {
        "filters": [{"field": "dateUpdated", "operator": "range", "value": {"gt": pivot}}],
        "sort": [{"field": "dateUpdated", "direction": "desc"}],
    }
    walked = api.search_all(page_limit=7, **body)
    expected = api.search(pageLimit=500, **body).json()["contacts"]
    assert _ids(walked) == _ids(expected)
    assert len(set(_ids(walked))) == len(walked) == sum(c["dateUpdated"] > pivot for c in everyone)


def test_page_paging_covers_everything_once(api: Api, everyone: list[dict[str, Any]]) -> None:
    seen: list[str] = []
    for page in range(1, 7):
        resp = api.search(pageLimit=37, page=page)
        assert resp.status_code == 200
        assert resp.json()["total"] == 200
        seen += _ids(resp.json()["contacts"])
    assert seen == _ids(everyone)
    assert api.search(pageLimit=37, page=7).json()["contacts"] == []


def test_page_limit_cap(api: Api) -> None:
    assert api.search(pageLimit=500).status_code == 200
    for bad in (501, 0, -1, "ten"):
        resp = api.search(pageLimit=bad)
        assert resp.status_code == 422, bad
        assert isinstance(resp.json()["message"], list)
    assert "pageLimit must not be greater than 500" in api.search(pageLimit=501).json()["message"]


def test_page_times_limit_over_10000_is_refused(api: Api) -> None:
    assert api.search(pageLimit=500, page=20).status_code == 200  # exactly 10,000: allowed
    for page, limit in [(21, 500), (101, 100), (10_001, 1)]:
        resp = api.search(pageLimit=limit, page=page)
        assert resp.status_code == 422, (page, limit)
        assert "searchAfter" in resp.json()["message"][0]


@pytest.mark.parametrize(
    "body",
    [
        {"filters": [{"field": "shoeSize", "operator": "eq", "value": "9"}]},
        {"filters": [{"field": "dateAdded", "operator": "eq", "value": "2026-01-01"}]},
        {"filters": [{"field": "dateAdded", "operator": "range", "value": {"after": "2026-01-01"}}]},
        {"filters": [{"field": "dateAdded", "operator": "range", "value": {"gt": "yesterday"}}]},
        {"filters": "email"},
        {"sort": [{"field": "email", "direction": "asc"}]},
        {"sort": [{"field": "dateAdded", "direction": "up"}]},
        {"searchAfter": [1]},
        {"searchAfter": ["x", "id"]},
        {"query": "x" * 76},
    ],
)
def test_bad_search_bodies_are_422(api: Api, body: dict[str, Any]) -> None:
    resp = api.search(**body)
    assert resp.status_code == 422, resp.text
    assert isinstance(resp.json()["message"], list)


def test_query_matches_name_and_email(api: Api, everyone: list[dict[str, Any]]) -> None:
    name = everyone[3]["lastName"]
    expected = {c["id"] for c in everyone if name.lower() in c["name"].lower() or name.lower() in c["email"]}
    assert {c["id"] for c in api.search(pageLimit=500, query=name).json()["contacts"]} == expected


# -- legacy GET /contacts/ ----------------------------------------------------------------------------------
def _legacy_walk(api: Api, limit: int, follow_url: bool = False) -> Iterator[dict[str, Any]]:
    resp = api.get("/contacts/", params={"locationId": api.location_id, "limit": limit})
    while True:
        assert resp.status_code == 200, resp.text
        body = resp.json()
        yield body
        meta = body["meta"]
        if meta["nextPage"] is None:
            return
        if follow_url:
            resp = api.session.get(
                meta["nextPageUrl"], headers={"Authorization": f"Bearer {api.token}", "Version": "2021-07-28"}
            )
        else:
            params = {"locationId": api.location_id, "limit": limit}
            resp = api.get(
                "/contacts/", params={**params, "startAfter": meta["startAfter"], "startAfterId": meta["startAfterId"]}
            )


@pytest.mark.parametrize("follow_url", [False, True], ids=["cursor", "nextPageUrl"])
def test_legacy_paging_walks_every_contact_once(api: Api, follow_url: bool) -> None:
    pages = list(_legacy_walk(api, 30, follow_url))
    ids = [c["id"] for page in pages for c in page["contacts"]]
    assert len(pages) == 7
    assert len(ids) == len(set(ids)) == 200
    assert set(ids) == set(api.server.contact_ids(api.location_id))
    assert [p["meta"]["currentPage"] for p in pages] == list(range(1, 8))
    assert all(p["meta"]["total"] == 200 for p in pages)
    # Newest first; the cursor is the last contact's dateAdded in epoch ms, and its id.
    added = [c["dateAdded"] for page in pages for c in page["contacts"]]
    assert added == sorted(added, reverse=True)
    first = pages[0]
    assert first["meta"]["startAfterId"] == first["contacts"][-1]["id"]
    assert first["meta"]["startAfter"] == _ms(first["contacts"][-1]["dateAdded"])
    last = pages[-1]["meta"]
    assert (last["nextPage"], last["startAfterId"], last["startAfter"], last["nextPageUrl"]) == (None,) * 4


def test_legacy_limit_cap_and_default(api: Api) -> None:
    assert len(api.get("/contacts/", params={"locationId": api.location_id}).json()["contacts"]) == 20
    assert len(api.get("/contacts/", params={"locationId": api.location_id, "limit": 100}).json()["contacts"]) == 100
    for bad in (101, 0, "many"):
        resp = api.get("/contacts/", params={"locationId": api.location_id, "limit": bad})
        assert resp.status_code == 422, bad
        assert isinstance(resp.json()["message"], list)


def test_legacy_query(api: Api, everyone: list[dict[str, Any]]) -> None:
    name = everyone[0]["firstName"]
    resp = api.get("/contacts/", params={"locationId": api.location_id, "limit": 100, "query": name})
    expected = {c["id"] for c in everyone if name.lower() in c["name"].lower() or name.lower() in c["email"]}
    assert {c["id"] for c in resp.json()["contacts"]} == expected
    assert resp.json()["meta"]["total"] == len(expected)


# -- past 10,000 --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deep() -> Iterator[Api]:
    """A location with more contacts than page paging can reach (about a second to start)."""
    with SandboxServer(contacts=10_050, locations=1, seed=3) as server:
        yield Api(server, 0)


def test_search_after_reaches_past_10000(deep: Api) -> None:
    walked = deep.search_all(page_limit=500, sort=[{"field": "dateUpdated", "direction": "asc"}])
    ids = _ids(walked)
    assert len(ids) == len(set(ids)) == 10_050
    assert set(ids) == set(deep.server.contact_ids(deep.location_id))
    stamps = [c["searchAfter"][0] for c in walked]
    assert stamps == sorted(stamps)


def test_page_paging_stops_at_10000_then_search_after_continues(deep: Api) -> None:
    last_page = deep.search(pageLimit=500, page=20)
    assert last_page.status_code == 200
    assert last_page.json()["total"] == 10_050
    refused = deep.search(pageLimit=500, page=21)
    assert refused.status_code == 422
    rest = deep.search(pageLimit=500, searchAfter=last_page.json()["contacts"][-1]["searchAfter"])
    assert rest.status_code == 200
    assert len(rest.json()["contacts"]) == 50
    paged = {c["id"] for p in range(1, 21) for c in deep.search(pageLimit=500, page=p).json()["contacts"]}
    assert len(paged) == 10_000
    assert paged.isdisjoint(_ids(rest.json()["contacts"]))
