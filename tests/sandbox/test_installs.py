"""The app's installs over the wire: GHL's installed-locations listing (v2 and v3), uninstall and suspension as
tokens see them, the authorization page and the code exchange, and locations whose data is made when read."""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ghl_sandbox.testing import SandboxServer
from tests.sandbox.conftest import Api

REDIRECT = "https://app.example.com/ghl/oauth/callback"


def _agency(api: Api, scopes: list[str] | None = None) -> str:
    """An agency access token: from the company's refresh token, or a new agency install with ``scopes``."""
    if scopes is None:
        form = {"grant_type": "refresh_token", "refresh_token": api.server.info["oauth"]["company_refresh_token"]}
    else:
        form = {
            "grant_type": "authorization_code",
            "code": api.server.authorize(company_id=_company(api), scopes=scopes),
        }
    resp = api.oauth_token(**form)
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def _company(api: Api) -> str:
    return str(api.server.info["company_id"])


def _query(api: Api, **extra: str) -> dict[str, str]:
    return {"companyId": _company(api), "appId": api.server.info["oauth"]["app_id"], **extra}


def _v2_pages(api: Api, token: str, limit: int, **extra: str) -> list[list[dict[str, Any]]]:
    pages, skip = [], 0
    while True:
        resp = api.get(
            "/oauth/installedLocations", token=token, params=_query(api, skip=str(skip), limit=str(limit), **extra)
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pages.append(body["locations"])
        skip += limit
        if skip >= body["count"]:
            return pages


def _location_tokens(api: Api, index: int) -> dict[str, Any]:
    """The app's tokens of location ``index`` (its initial refresh token, used once)."""
    refresh = api.server.info["locations"][index]["refresh_token"]
    resp = api.oauth_token(grant_type="refresh_token", refresh_token=refresh)
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


@pytest.fixture
def many(clean_sandbox: SandboxServer) -> Api:
    """45 locations without contacts: room for three pages of the listing."""
    clean_sandbox.reset(locations=45, contacts=0)
    return Api(clean_sandbox, 0)


def test_v2_listing_pages_every_installed_location_newest_first(many: Api) -> None:
    ids = many.server.location_ids
    gone = ids[7]
    many.server.uninstall(gone)
    agency = _agency(many)
    pages = _v2_pages(many, agency, 20, isInstalled="true")
    assert [len(p) for p in pages] == [20, 20, 4]
    listed = [item["_id"] for page in pages for item in page]
    assert sorted(listed) == sorted(set(ids) - {gone})
    stamps = [item["installedAt"] for page in pages for item in page]
    assert stamps == sorted(stamps, reverse=True)
    assert all(
        item["isInstalled"] and item["name"] and item["address"] and item["versionId"] for p in pages for item in p
    )
    # Without the filter: every location of the company, the one without the app last.
    everything = [item for page in _v2_pages(many, agency, 100) for item in page]
    assert len(everything) == 45 and everything[-1] == {**everything[-1], "_id": gone, "isInstalled": False}
    assert "installedAt" not in everything[-1]
    only_gone = many.get("/oauth/installedLocations", token=agency, params=_query(many, isInstalled="false")).json()
    assert [item["_id"] for item in only_gone["locations"]] == [gone] and only_gone["count"] == 1
    # Installed again: now the newest.
    many.server.install(gone)
    first = many.get("/oauth/installedLocations", token=agency, params=_query(many, limit="1")).json()
    assert first["locations"][0]["_id"] == gone and first["installToFutureLocations"] is True


def test_v3_listing_walks_page_tokens_to_the_same_locations(many: Api) -> None:
    agency = _agency(many)
    listed, token, pages = [], None, 0
    while True:
        params = _query(many, pageSize="20", **({"pageToken": token} if token else {}))
        resp = many.get("/oauth/installed-locations", token=agency, version="v3", params=params)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        pagination = body["pagination"]
        assert pagination["hasPrevPage"] is (pages > 0) and pagination["totalRecords"] == 45
        assert pagination["currentPageSize"] == len(body["items"])
        assert body["metadata"]["sortApplied"] == {"installedAt": "desc"}
        listed += [item["_id"] for item in body["items"]]
        pages += 1
        if not pagination["hasNextPage"]:
            assert "nextPageToken" not in pagination
            break
        token = pagination["nextPageToken"]
    assert pages == 3 and sorted(listed) == sorted(many.server.location_ids)
    v2 = [item["_id"] for page in _v2_pages(many, agency, 20) for item in page]
    assert listed == v2


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"pageToken": "bm90IGpzb24"}, 400, "INVALID_ARGUMENT"),  # base64 of "not json"
        ({"pageToken": base64.urlsafe_b64encode(json.dumps({"skip": -1}).encode()).decode()}, 400, "INVALID_ARGUMENT"),
        ({"appId": "anotherApp"}, 404, "RESOURCE_NOT_FOUND"),
        ({"companyId": "anotherCompany"}, 400, "INVALID_ARGUMENT"),
    ],
)
def test_v3_listing_refuses_in_the_aip_envelope(many: Api, params: dict[str, str], status: int, code: str) -> None:
    resp = many.get("/oauth/installed-locations", token=_agency(many), version="v3", params=_query(many, **params))
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "101"}, "limit must be between 1 and 100"),
        ({"limit": "0"}, "limit must be between 1 and 100"),
        ({"skip": "-1"}, "skip must be at least 0"),
        ({"skip": "two"}, "skip must be a number string"),
        ({"isInstalled": "yes"}, "isInstalled must be a boolean value"),
        ({"companyId": ""}, "companyId should not be empty"),
    ],
)
def test_v2_listing_checks_its_query(many: Api, params: dict[str, str], message: str) -> None:
    resp = many.get("/oauth/installedLocations", token=_agency(many), params=_query(many, **params))
    assert resp.status_code == 422, resp.text
    assert resp.json()["message"] == [message]


def test_the_listing_is_for_agency_tokens_with_oauth_readonly(many: Api) -> None:
    params = _query(many)
    # A location's tokens (its PIT, the app's location token) are refused: Agency-Access-Only.
    assert many.get("/oauth/installedLocations", params=params).status_code == 401
    location_token = _location_tokens(many, 0)["access_token"]
    assert many.get("/oauth/installedLocations", token=location_token, params=params).status_code == 401
    # An agency install without oauth.readonly: GHL's scope refusal.
    narrow = _agency(many, scopes=["contacts.readonly", "oauth.write"])
    refused = many.get("/oauth/installedLocations", token=narrow, params=params)
    assert refused.status_code == 401 and refused.json()["message"] == "The token is not authorized for this scope."
    # Each version has its own path.
    agency = _agency(many)
    assert many.get("/oauth/installed-locations", token=agency, params=params).status_code == 404
    assert many.get("/oauth/installedLocations", token=agency, version="v3", params=params).status_code == 404


def test_offset_paging_repeats_an_item_when_an_install_lands_between_pages(many: Api) -> None:
    # GHL's offset paging over a newest-first list: a client must expect repeats (and a later run for misses).
    many.server.uninstall(many.server.location_ids[3])
    agency = _agency(many)
    first = many.get("/oauth/installedLocations", token=agency, params=_query(many, limit="10")).json()["locations"]
    many.server.install(many.server.location_ids[3])
    second = many.get("/oauth/installedLocations", token=agency, params=_query(many, skip="10", limit="10"))
    assert second.json()["locations"][0]["_id"] == first[-1]["_id"]


def test_an_uninstall_ends_the_apps_tokens_of_the_location_but_not_its_pit(api: Api) -> None:
    tokens = _location_tokens(api, 1)
    location_api = Api(api.server, 1, token=tokens["access_token"])
    assert location_api.search(pageLimit=1).status_code == 200
    result = api.server.uninstall(api.server.location_ids[1])
    # The access token, its refresh token and the used initial one.
    assert result["tokens_revoked"] == 3 and api.server.location_ids[1] in result["uninstalled"]
    assert location_api.search(pageLimit=1).status_code == 401
    refused = api.oauth_token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    agency = _agency(api)
    form = {"companyId": _company(api), "locationId": api.server.location_ids[1]}
    minted = api.post("/oauth/locationToken", token=agency, data=form)
    assert minted.status_code == 400 and "app not installed" in minted.json()["message"]
    assert Api(api.server, 1).search(pageLimit=1).status_code == 200  # the location's own PIT
    assert api.server.location_ids[1] not in api.oauth_token(
        grant_type="refresh_token", refresh_token=api.server.info["oauth"]["company_refresh_token"]
    ).json().get("approvedLocations", [])
    api.server.install(api.server.location_ids[1])
    assert api.post("/oauth/locationToken", token=agency, data=form).status_code == 200


def test_a_suspended_location_answers_refreshes_not_active_and_keeps_the_token(api: Api) -> None:
    tokens = _location_tokens(api, 0)
    api.server.set_active(api.location_id, False)
    refused = api.oauth_token(grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["message"] == "Location is not active"
    agency = _agency(api)
    minted = api.post(
        "/oauth/locationToken", token=agency, data={"companyId": _company(api), "locationId": api.location_id}
    )
    assert minted.status_code == 400 and minted.json()["message"] == "Location is not active"
    api.server.set_active(api.location_id, True)
    assert api.oauth_token(grant_type="refresh_token", refresh_token=tokens["refresh_token"]).status_code == 200


# -- the authorization page ---------------------------------------------------------------------------------
def _page_params(api: Api, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": api.server.info["oauth"]["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "contacts.readonly contacts.write",
        "state": "s-123",
        **extra,
    }


def _redirected(resp: requests.Response) -> dict[str, list[str]]:
    assert resp.status_code == 302, resp.text
    target = urlsplit(resp.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    return parse_qs(target.query)


def test_the_authorization_page_installs_and_redirects_with_a_code_and_the_state(api: Api) -> None:
    page = requests.get(f"{api.server.base_url}/v2/oauth/chooselocation", params=_page_params(api), timeout=10)
    assert page.status_code == 200 and "Sandbox Location 2" in page.text
    links = [part.split('"', 1)[0] for part in page.text.split('href="')[1:]]
    assert len(links) == 1 + len(api.server.location_ids)  # the agency, then each location
    link = next(link for link in links if api.server.location_ids[1] in link).replace("&amp;", "&")
    query = _redirected(requests.get(api.server.base_url + link, allow_redirects=False, timeout=10))
    assert query["state"] == ["s-123"]
    exchanged = api.oauth_token(grant_type="authorization_code", code=query["code"][0], redirect_uri=REDIRECT)
    assert exchanged.status_code == 200, exchanged.text
    body = exchanged.json()
    assert body["locationId"] == api.server.location_ids[1] and body["scope"] == "contacts.readonly contacts.write"
    # A code works once.
    replayed = api.oauth_token(grant_type="authorization_code", code=query["code"][0], redirect_uri=REDIRECT)
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"


def test_a_pick_set_by_the_test_skips_the_page(api: Api) -> None:
    api.server.choose_on_authorization_page(company_id=_company(api))
    resp = requests.get(
        f"{api.server.base_url}/oauth/chooselocation", params=_page_params(api), allow_redirects=False, timeout=10
    )
    code = _redirected(resp)["code"][0]
    body = api.oauth_token(grant_type="authorization_code", code=code, user_type="Company").json()
    assert body["userType"] == "Company" and sorted(body["approvedLocations"]) == sorted(api.server.location_ids)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_id": "someone-else"}, "Invalid client_id"),
        ({"response_type": "token"}, "response_type must be code"),
        ({"redirect_uri": "javascript:alert(1)"}, "redirect_uri must be an http(s) URL"),
        ({"scope": "contacts.readonly admin.everything"}, "Invalid scope"),
    ],
)
def test_the_page_refuses_a_bad_request_without_redirecting(api: Api, change: dict[str, str], message: str) -> None:
    api.server.choose_on_authorization_page(location_id=api.location_id)
    resp = requests.get(
        f"{api.server.base_url}/v2/oauth/chooselocation",
        params=_page_params(api, **change),
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code == 400 and message in resp.text
    assert "location" not in resp.headers


def test_a_code_is_bound_to_its_redirect_uri_and_expires(api: Api) -> None:
    code = api.server.authorize(location_id=api.location_id, redirect_uri=REDIRECT)
    elsewhere = api.oauth_token(grant_type="authorization_code", code=code, redirect_uri="https://evil.example/cb")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"] == "invalid_request"
    # The refused exchange did not burn it.
    assert api.oauth_token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT).status_code == 200
    api.server.reset(code_ttl=1)
    late = api.server.authorize(location_id=api.location_id)
    time.sleep(1.1)
    expired = api.oauth_token(grant_type="authorization_code", code=late)
    assert expired.status_code == 400 and "expired" in expired.json()["error_description"]


# -- many locations -----------------------------------------------------------------------------------------
def test_hundreds_of_locations_cost_only_the_ones_read(clean_sandbox: SandboxServer) -> None:
    info = clean_sandbox.reset(locations=300, contacts=200)
    assert len(info["locations"]) == 300 and all(loc["contacts"] == 200 for loc in info["locations"])
    assert clean_sandbox.stats()["locations_generated"] == 0
    last = Api(clean_sandbox, 299)
    assert len(last.search_all()) == 200
    assert clean_sandbox.stats()["locations_generated"] == 1
    assert clean_sandbox.webhook_stats()["events"] == 0  # making a location's data is no change
    # Whenever and in whatever order locations are read, each gets the same contacts: the seed fixes them.
    a, b = info["locations"][4]["id"], info["locations"][5]["id"]
    first = (clean_sandbox.contact_ids(a), clean_sandbox.contact_ids(b))
    clean_sandbox.reset(locations=300, contacts=200)
    later_b = clean_sandbox.contact_ids(b)  # read the other way round this time
    assert (clean_sandbox.contact_ids(a), later_b) == first and len(later_b) == 200
