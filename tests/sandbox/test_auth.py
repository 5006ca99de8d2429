"""Authentication: private integration tokens, OAuth code + rotating refresh tokens, agency tokens, Version."""

from __future__ import annotations

import time

import pytest

from ghl_sandbox.testing import SandboxServer
from tests.sandbox.conftest import Api

INVALID_JWT = {"statusCode": 401, "message": "Invalid JWT"}


def _code_grant(api: Api, index: int = 0) -> dict[str, str]:
    code = api.server.authorize(location_id=api.server.location_ids[index])
    resp = api.oauth_token(grant_type="authorization_code", code=code, user_type="Location")
    assert resp.status_code == 200, resp.text
    return resp.json()


def _contacts_ok(api: Api, token: str) -> bool:
    resp = api.get("/contacts/", token=token, params={"locationId": api.location_id, "limit": 1})
    return resp.status_code == 200


def test_private_integration_token_works(api: Api) -> None:
    assert api.token.startswith("pit-")
    assert _contacts_ok(api, api.token)


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic abc", "Bearer "])
def test_missing_or_unknown_token_is_invalid_jwt(api: Api, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    resp = api.get(f"/contacts/{api.first_contact()['id']}", token=None, headers=headers)
    assert (resp.status_code, resp.json()) == (401, INVALID_JWT)


def test_authorization_code_grant(api: Api) -> None:
    body = _code_grant(api)
    assert body["token_type"] == "Bearer"
    assert body["userType"] == "Location"
    assert body["locationId"] == api.location_id
    assert body["companyId"] == api.server.info["company_id"]
    assert body["expires_in"] == api.server.info["limits"]["token_ttl"]
    assert body["access_token"] and body["refresh_token"] and body["userId"]
    assert "contacts.readonly" in body["scope"].split()
    assert _contacts_ok(api, body["access_token"])
    # A code works once.
    assert body["access_token"] != _code_grant(api)["access_token"]


def test_code_is_single_use(api: Api) -> None:
    code = api.server.authorize(location_id=api.location_id)
    assert api.oauth_token(grant_type="authorization_code", code=code).status_code == 200
    again = api.oauth_token(grant_type="authorization_code", code=code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_refresh_rotates_and_reuse_is_invalid_grant(api: Api) -> None:
    first = _code_grant(api)
    second = api.oauth_token(grant_type="refresh_token", refresh_token=first["refresh_token"], user_type="Location")
    assert second.status_code == 200
    second_body = second.json()
    assert second_body["refresh_token"] != first["refresh_token"]
    assert second_body["access_token"] != first["access_token"]
    assert _contacts_ok(api, second_body["access_token"])

    reused = api.oauth_token(grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert reused.json()["statusCode"] == 400

    # The chain goes on from the newest refresh token.
    third = api.oauth_token(grant_type="refresh_token", refresh_token=second_body["refresh_token"])
    assert third.status_code == 200
    stats = api.server.stats()
    assert (stats["refresh_tokens_reused"], stats["tokens_refreshed"]) == (1, 2)


def test_seeded_refresh_tokens_work_once(api: Api) -> None:
    refresh = api.server.info["locations"][1]["refresh_token"]
    resp = api.oauth_token(grant_type="refresh_token", refresh_token=refresh)
    assert resp.status_code == 200
    assert resp.json()["locationId"] == api.server.location_ids[1]
    assert api.oauth_token(grant_type="refresh_token", refresh_token=refresh).status_code == 400
    assert api.server.stats()["refresh_tokens_reused"] == 1


@pytest.mark.parametrize(
    ("change", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"refresh_token": "never-issued"}, 400, "invalid_grant"),
        ({"user_type": "Company"}, 400, "invalid_request"),
    ],
)
def test_token_endpoint_refusals(api: Api, change: dict[str, str], status: int, error: str) -> None:
    refresh = api.server.info["locations"][0]["refresh_token"]
    resp = api.oauth_token(**{"grant_type": "refresh_token", "refresh_token": refresh, **change})
    assert resp.status_code == status
    assert (resp.json()["statusCode"], resp.json()["error"]) == (status, error)
    # A refused request does not use up the refresh token.
    assert api.oauth_token(grant_type="refresh_token", refresh_token=refresh).status_code == 200


def test_token_endpoint_wants_form_fields(api: Api) -> None:
    missing = api.call("POST", "/oauth/token", token=None, version=None, data={"grant_type": "refresh_token"})
    assert missing.status_code == 422
    assert set(missing.json()["message"]) == {"client_id should not be empty", "client_secret should not be empty"}
    oauth = api.server.info["oauth"]
    as_json = api.call(
        "POST",
        "/oauth/token",
        token=None,
        version=None,
        json={"client_id": oauth["client_id"], "client_secret": oauth["client_secret"], "grant_type": "refresh_token"},
    )
    assert as_json.status_code == 422  # the token endpoint is form-encoded


def test_expired_tokens_are_invalid_jwt_and_refresh_recovers(api: Api) -> None:
    grant = _code_grant(api)
    assert api.server.expire_tokens() >= 1
    resp = api.get("/contacts/", token=grant["access_token"], params={"locationId": api.location_id})
    assert (resp.status_code, resp.json()) == (401, INVALID_JWT)
    assert _contacts_ok(api, api.token)  # private integration tokens do not expire
    fresh = api.oauth_token(grant_type="refresh_token", refresh_token=grant["refresh_token"]).json()
    assert _contacts_ok(api, fresh["access_token"])


def test_expire_one_token(api: Api) -> None:
    first, second = _code_grant(api), _code_grant(api)
    assert api.server.expire_tokens(first["access_token"]) == 1
    assert not _contacts_ok(api, first["access_token"])
    assert _contacts_ok(api, second["access_token"])


def test_access_token_ttl() -> None:
    with SandboxServer(contacts=3, locations=1, token_ttl=1) as server:
        api = Api(server)
        grant = _code_grant(api)
        assert grant["expires_in"] == 1
        assert _contacts_ok(api, grant["access_token"])
        time.sleep(1.1)
        resp = api.get("/contacts/", token=grant["access_token"], params={"locationId": api.location_id})
        assert (resp.status_code, resp.json()) == (401, INVALID_JWT)


def test_agency_token_mints_location_tokens(api: Api) -> None:
    company = api.server.info["company_id"]
    agency = api.oauth_token(
        grant_type="refresh_token", refresh_token=api.server.info["oauth"]["company_refresh_token"], user_type="Company"
    )
    assert agency.status_code == 200
    body = agency.json()
    assert (body["userType"], body["companyId"]) == ("Company", company)
    assert "locationId" not in body
    assert set(body["approvedLocations"]) == set(api.server.location_ids)
    agency_token = body["access_token"]

    # An agency token cannot read a location's contacts itself.
    assert api.get("/contacts/", token=agency_token, params={"locationId": api.location_id}).status_code == 401

    minted = api.post(
        "/oauth/locationToken",
        token=agency_token,
        data={"companyId": company, "locationId": api.server.location_ids[1]},
    )
    assert minted.status_code == 200, minted.text
    assert minted.json()["locationId"] == api.server.location_ids[1]
    location_api = Api(api.server, 1, token=minted.json()["access_token"])
    assert _contacts_ok(location_api, location_api.token)
    assert location_api.search(pageLimit=1).status_code == 200
    # ...only for its own location.
    assert location_api.search(locationId=api.location_id, pageLimit=1).status_code == 403


def test_agency_code_grant(api: Api) -> None:
    code = api.server.authorize(company_id=api.server.info["company_id"])
    resp = api.oauth_token(grant_type="authorization_code", code=code, user_type="Company")
    assert resp.status_code == 200
    assert resp.json()["userType"] == "Company"


def test_location_token_refusals(api: Api) -> None:
    company = api.server.info["company_id"]
    agency = api.oauth_token(
        grant_type="refresh_token", refresh_token=api.server.info["oauth"]["company_refresh_token"]
    ).json()["access_token"]
    form = {"companyId": company, "locationId": api.location_id}
    assert api.post("/oauth/locationToken", data=form).status_code == 401  # a location's PIT is not an agency token
    assert api.post("/oauth/locationToken", token=None, data=form).status_code == 401
    wrong = api.post("/oauth/locationToken", token=agency, data={**form, "companyId": "other"})
    assert wrong.status_code == 400
    missing = api.post("/oauth/locationToken", token=agency, data={"companyId": company})
    assert missing.status_code == 422
    assert missing.json()["message"] == ["locationId should not be empty"]


def test_version_header_required(api: Api) -> None:
    cid = api.first_contact()["id"]
    missing = api.get(f"/contacts/{cid}", version=None)
    assert missing.status_code == 400
    assert missing.json()["statusCode"] == 400
    assert "version" in missing.json()["message"].lower()
    unknown = api.get(f"/contacts/{cid}", version="1999-01-01")
    assert unknown.status_code == 400
    assert api.get(f"/contacts/{cid}").status_code == 200
    # Checked before the token: a request without either is a 400.
    assert api.get(f"/contacts/{cid}", version=None, token=None).status_code == 400


def test_token_endpoint_needs_no_version_header(api: Api) -> None:
    # POST /oauth/token declares no Version header in oauth.json; the helper sends none.
    assert _code_grant(api)["access_token"]


def test_reset_revokes_issued_tokens(api: Api) -> None:
    grant = _code_grant(api)
    api.server.reset()
    assert not _contacts_ok(api, grant["access_token"])
    assert api.oauth_token(grant_type="refresh_token", refresh_token=grant["refresh_token"]).status_code == 400
    assert _contacts_ok(api, api.token)  # PITs are seeded: the same after a reset
