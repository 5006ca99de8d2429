"""``Version: v3`` against ``Version: 2021-07-28``: what contacts-v3.json and oauth-v3.json change, side by side.

The contract test validates both versions' answers against their files; these pin what a schema alone cannot
(keys the schemas leave optional, routes one version lacks)."""

from __future__ import annotations

from typing import Any

import requests

from tests.sandbox.conftest import Api

V3 = {"version": "v3"}


def test_the_success_flag_is_spelled_as_each_version_declares(api: Api) -> None:
    contact = api.new_contact(firstName="Flag", email="flag@example.org")
    note = api.post(f"/contacts/{contact['id']}/notes", json={"body": "n"}).json()["note"]
    assert api.delete(f"/contacts/{contact['id']}/notes/{note['id']}").json() == {"succeded": True}
    note = api.post(f"/contacts/{contact['id']}/notes", json={"body": "n"}).json()["note"]
    # v3 declares both keys on deletes (the legacy one kept for old clients) ...
    assert api.delete(f"/contacts/{contact['id']}/notes/{note['id']}", **V3).json() == {
        "succeeded": True,
        "succeded": True,
    }
    # ... and only the new one on the contact update.
    updated = api.put(f"/contacts/{contact['id']}", json={"city": "Lyon"}, **V3).json()
    assert updated["succeeded"] is True and "succeded" not in updated
    assert api.put(f"/contacts/{contact['id']}", json={"city": "Nice"}).json()["succeded"] is True


def test_dnd_channels_are_camel_case_in_v3_both_ways(api: Api) -> None:
    dnd = {"status": "active", "message": "", "code": ""}
    created = api.post(
        "/contacts/",
        json={
            "locationId": api.location_id,
            "email": "dnd3@example.org",
            "dndSettings": {"email": dnd, "whatsApp": dnd},
        },
        **V3,
    ).json()["contact"]
    assert set(created["dndSettings"]) == {"email", "whatsApp"}
    # Stored once: a v2 client sees the same settings under v2's names.
    v2: dict[str, Any] = api.get(f"/contacts/{created['id']}").json()["contact"]
    assert set(v2["dndSettings"]) == {"Email", "WhatsApp"}
    assert set(api.get(f"/contacts/{created['id']}", **V3).json()["contact"]["dndSettings"]) == {"email", "whatsApp"}


def test_routes_only_one_version_has(api: Api) -> None:
    listing = {"params": {"locationId": api.location_id, "limit": 5}}
    assert api.get("/contacts/", **listing).status_code == 200
    gone = api.get("/contacts/", **listing, **V3)
    assert (gone.status_code, gone.json()["message"]) == (404, "Cannot GET /contacts")
    contact = api.first_contact()["id"]
    campaign = api.server.info["locations"][0]["campaigns"][0]
    assert api.post(f"/contacts/{contact}/campaigns/{campaign}", json={}).status_code == 201
    # Each version's remove-every-campaign path is an unknown campaign id in the other one.
    v2_on_v3 = api.delete(f"/contacts/{contact}/campaigns/remove-all")
    assert (v2_on_v3.status_code, v2_on_v3.json()["message"]) == (400, "Campaign with id remove-all not found")
    v3_on_v2 = api.delete(f"/contacts/{contact}/campaigns/removeAll", **V3)
    assert (v3_on_v2.status_code, v3_on_v2.json()["message"]) == (400, "Campaign with id removeAll not found")
    assert api.delete(f"/contacts/{contact}/campaigns/remove-all", **V3).json() == {"succeeded": True, "succeded": True}


def test_v3_oauth_speaks_camel_case(api: Api) -> None:
    oauth = api.server.info["oauth"]
    code = api.server.authorize(location_id=api.location_id)
    body = {"clientId": oauth["client_id"], "clientSecret": oauth["client_secret"], "grantType": "authorization_code"}
    # oauth-v3.json takes the token form as JSON too.
    tokens = api.call("POST", "/oauth/token", token=None, json={**body, "code": code}, **V3).json()
    assert {"accessToken", "refreshToken", "expiresIn", "tokenType", "scope", "userId"} <= set(tokens)
    assert not {"access_token", "refresh_token"} & set(tokens)
    refreshed = api.call(
        "POST",
        "/oauth/token",
        token=None,
        data={**body, "grantType": "refresh_token", "refreshToken": tokens["refreshToken"]},
        **V3,
    ).json()
    assert refreshed["refreshToken"] != tokens["refreshToken"]
    missing = api.call("POST", "/oauth/token", token=None, data={"grantType": "refresh_token"}, **V3).json()
    assert set(missing["message"]) == {"clientId should not be empty", "clientSecret should not be empty"}


def test_v3_location_tokens(api: Api) -> None:
    info = api.server.info
    agency = api.oauth_token(grant_type="refresh_token", refresh_token=info["oauth"]["company_refresh_token"]).json()
    form = {"companyId": info["company_id"], "locationId": api.location_id}
    minted = api.call("POST", "/oauth/location-token", token=agency["access_token"], data=form, **V3).json()
    assert minted["accessToken"] and minted["refreshToken"] and minted["locationId"] == api.location_id
    assert requests.post(  # the new token reads the location
        f"{api.base_url}/contacts/search",
        json={"locationId": api.location_id, "pageLimit": 1},
        headers={"Authorization": f"Bearer {minted['accessToken']}", "Version": "v3"},
        timeout=10,
    ).ok
    # Each version has only its own path.
    assert api.call("POST", "/oauth/locationToken", token=agency["access_token"], data=form, **V3).status_code == 404
    assert api.call("POST", "/oauth/location-token", token=agency["access_token"], data=form).status_code == 404
    assert "access_token" in api.call("POST", "/oauth/locationToken", token=agency["access_token"], data=form).json()
