"""Helpers for the over-the-wire sandbox tests: a thin GHL client on plain ``requests``."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from ghl_sandbox.testing import SandboxServer

VERSION = "2021-07-28"
RATE_HEADERS = (
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
)


class Api:
    """Calls the sandbox like a GHL client: bearer token and ``Version`` header on every request.

    :param server: the sandbox.
    :param index: location whose private integration token (and id) to use.
    :param token: another bearer token (OAuth access token, ...) instead of the location's PIT.
    """

    def __init__(self, server: SandboxServer, index: int = 0, token: str | None = None) -> None:
        self.server = server
        self.base_url = server.base_url
        self.location_id = server.location_ids[index]
        self.token = token or server.token(index)
        self.session = requests.Session()

    def call(
        self, method: str, path: str, *, token: str | None = "", version: str | None = VERSION, **kwargs: Any
    ) -> requests.Response:
        """``token=None`` sends no Authorization header, ``version=None`` no Version header."""
        headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
        if version is not None:
            headers["Version"] = version
        token = self.token if token == "" else token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.call("DELETE", path, **kwargs)

    def search(self, **body: Any) -> requests.Response:
        """``POST /contacts/search`` for this location (``locationId`` and ``pageLimit`` default in)."""
        return self.post("/contacts/search", json={"locationId": self.location_id, "pageLimit": 100, **body})

    def search_all(self, page_limit: int = 500, **body: Any) -> list[dict[str, Any]]:
        """Every hit of a search, walked with ``searchAfter``."""
        hits: list[dict[str, Any]] = []
        after = None
        while True:
            extra = {"searchAfter": after} if after else {}
            resp = self.search(pageLimit=page_limit, **body, **extra)
            assert resp.status_code == 200, resp.text
            page = resp.json()["contacts"]
            hits += page
            if len(page) < page_limit:
                return hits
            after = page[-1]["searchAfter"]

    def first_contact(self) -> dict[str, Any]:
        return self.search(pageLimit=1).json()["contacts"][0]

    def new_contact(self, **fields: Any) -> dict[str, Any]:
        resp = self.post("/contacts/", json={"locationId": self.location_id, **fields})
        assert resp.status_code == 201, resp.text
        return resp.json()["contact"]

    def oauth_token(self, **form: str) -> requests.Response:
        """``POST /oauth/token`` form-encoded with the app's client credentials (no Version, no bearer)."""
        oauth = self.server.info["oauth"]
        body = {"client_id": oauth["client_id"], "client_secret": oauth["client_secret"], **form}
        return self.call("POST", "/oauth/token", token=None, version=None, data=body)


@pytest.fixture
def api(clean_sandbox: SandboxServer) -> Api:
    """A client of location 0 (its private integration token) on a freshly reset sandbox."""
    return Api(clean_sandbox, 0)


@pytest.fixture
def api2(api: Api) -> Api:
    """A client of location 1 on the same freshly reset sandbox."""
    return Api(api.server, 1)
