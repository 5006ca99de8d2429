"""Scopes: every token carries them (PITs as made, OAuth tokens as authorized), calls outside them get GHL's 401."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import requests

from ghl_sandbox.scopes import SCOPE_REFUSAL
from tests.sandbox.cli_run import started_cli
from tests.sandbox.conftest import Api

REFUSED = {"statusCode": 401, "message": SCOPE_REFUSAL}


def _search(api: Api, token: str) -> requests.Response:
    return api.post("/contacts/search", json={"locationId": api.location_id, "pageLimit": 1}, token=token)


def test_a_readonly_pit_reads_contacts_and_nothing_else(api: Api) -> None:
    token = api.server.issue_token(0, scopes=["contacts.readonly"])
    contact = api.first_contact()
    assert api.get(f"/contacts/{contact['id']}", token=token).status_code == 200
    assert _search(api, token).status_code == 200
    refused = [
        api.get(f"/locations/{api.location_id}/customFields", token=token),
        api.post(f"/locations/{api.location_id}/tasks/search", json={"limit": 1}, token=token),
        api.put(f"/contacts/{contact['id']}", json={"city": "Nowhere"}, token=token),
        api.post(f"/contacts/{contact['id']}/tags", json={"tags": ["x"]}, token=token),
    ]
    assert [(r.status_code, r.json()) for r in refused] == [(401, REFUSED)] * 4
    # The refused update changed nothing.
    assert api.get(f"/contacts/{contact['id']}").json()["contact"].get("city") == contact.get("city")


def test_oauth_tokens_carry_the_scopes_of_their_authorization(api: Api) -> None:
    code = api.server.authorize(location_id=api.location_id, scopes=["contacts.readonly", "contacts.write"])
    first = api.oauth_token(grant_type="authorization_code", code=code, user_type="Location").json()
    assert first["scope"] == "contacts.readonly contacts.write"
    # A refresh keeps the grant's scopes.
    second = api.oauth_token(grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert second["scope"] == first["scope"]
    for token in (first["access_token"], second["access_token"]):
        assert _search(api, token).status_code == 200
        resp = api.get(f"/locations/{api.location_id}/customFields", token=token)
        assert (resp.status_code, resp.json()) == (401, REFUSED)


def test_unknown_scopes_are_refused_when_issuing(api: Api) -> None:
    resp = requests.post(
        f"{api.base_url}/_sandbox/tokens/pit",
        json={"locationId": api.location_id, "scopes": ["contacts.everything"]},
        timeout=10,
    )
    assert resp.status_code == 422
    assert "contacts.everything" in resp.text


@pytest.mark.timeout(60)
def test_the_cli_issues_least_privilege_tokens() -> None:
    with started_cli("--contacts", "3", "--locations", "1", "--pit-scopes", "contacts.readonly") as (text, base_url):
        pit = re.search(r"private integration token: (pit-\w+) \(contacts\.readonly\)", text)
        location = re.search(r"location (\w{20}) ", text)
        assert pit and location, text
        headers = {"Authorization": f"Bearer {pit[1]}", "Version": "2021-07-28"}
        url = f"{base_url}/locations/{location[1]}/customFields"
        resp = requests.get(url, headers=headers, timeout=10)
        assert (resp.status_code, resp.json()) == (401, REFUSED)
        body = {"locationId": location[1], "pageLimit": 1}
        assert requests.post(f"{base_url}/contacts/search", json=body, headers=headers, timeout=10).ok


def test_a_bad_pit_scope_option_is_refused_naming_it() -> None:
    cmd = [sys.executable, "-m", "ghl_sandbox.cli", "--port", "0", "--pit-scopes", "nope"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--pit-scopes" in proc.stderr and "nope" in proc.stderr
