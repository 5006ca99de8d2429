"""Contract: real sandbox responses validate against GHL's official OpenAPI files (``tests/openapi/``).

Cases come from the specs themselves: every operation in scope and every status it declares with a JSON
schema (2xx, 400, 401, 422) is one test, named after the operation, that provokes that status from the sandbox
and validates status and body with openapi-core. A declared status the sandbox has no way to provoke must be
listed in ``UNPROVOKABLE`` with the reason; ``test_every_operation_and_status_is_covered`` keeps that honest.

Known errors in the official files are patched by ``ERRATA`` (each patch first asserts the error is still
there), never skipped.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.templating.responses.exceptions import ResponseNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.exceptions import InvalidData
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from ghl_sandbox.scopes import ALL_SCOPES, SCOPE_REFUSAL, required_scope
from tests.sandbox.conftest import Api

SPEC_DIR = Path(__file__).resolve().parents[1] / "openapi"
# The files refer to ../common/common-schemas.json (their layout upstream); here it sits beside them.
COMMON_REF = "../common/common-schemas.json"
HOST = "https://services.leadconnectorhq.com"  # the specs' server; requests really go to the sandbox
METHODS = ("get", "put", "post", "delete", "patch")
JSON = "application/json"
DUE = "2026-03-01T10:00:00.000Z"
UNKNOWN_ID = "unknownContactId0000"

# Which operations of which file the sandbox serves. contacts.json (HEAD) leaves POST /contacts/search
# untyped ("200: Successful response", no content), so that one is checked against the 2025-08-26 file, the
# last whose search response is typed (SearchContactSuccessResponseDto).
SEARCH = ("POST", "/contacts/search")
SCOPE: dict[str, Callable[[str, str], bool]] = {
    "contacts.json": lambda method, path: (method, path) != SEARCH,
    "contacts-2025-08-26.json": lambda method, path: (method, path) == SEARCH,
    "locations.json": lambda method, path: (
        (method, path)
        in {("GET", "/locations/{locationId}/customFields"), ("POST", "/locations/{locationId}/tasks/search")}
    ),
    "oauth.json": lambda method, path: path in {"/oauth/token", "/oauth/locationToken", "/oauth/installedLocations"},
    # API v3 (Version: v3): every contacts operation; search is untyped here too (no 2xx schema, no 2xx case).
    "contacts-v3.json": lambda method, path: True,
    "oauth-v3.json": lambda method, path: (
        path in {"/oauth/token", "/oauth/location-token", "/oauth/installed-locations"}
    ),
}
#: The Version header each file's cases are sent with.
V3_FILES = {"contacts-v3.json", "oauth-v3.json"}
#: Where each file's ``../common/common-schemas.json`` is here (the v3 files mean the v3 copy).
COMMON_FILE = {"contacts-v3.json": "common-schemas-v3.json", "oauth-v3.json": "common-schemas-v3.json"}


# -- errata -------------------------------------------------------------------------------------------------
def _schemas(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["components"]["schemas"]


def _http_schemes_without_apikey_fields(spec: dict[str, Any]) -> None:
    # Every file: the bearer schemes (type "http") also carry apiKey's "name" and "in", which OpenAPI 3.0's
    # SecurityScheme forbids for http; openapi-spec-validator then refuses the whole file. Same meaning without.
    schemes = spec["components"]["securitySchemes"]
    assert any("in" in s for s in schemes.values() if s["type"] == "http"), "erratum fixed upstream?"
    for scheme in schemes.values():
        if scheme["type"] == "http":
            scheme.pop("name", None)
            scheme.pop("in", None)


def _bulk_tags_type_parameter(spec: dict[str, Any]) -> None:
    # contacts.json: POST /contacts/bulk/tags/update/{type} declares no "type" path parameter (a spec error:
    # "Path parameter 'type' ... was not resolved"). The 2025-08-26 file had it: add | remove.
    params = spec["paths"]["/contacts/bulk/tags/update/{type}"]["post"]["parameters"]
    assert all(p["name"] != "type" for p in params), "erratum fixed upstream?"
    params.append(
        {"name": "type", "in": "path", "required": True, "schema": {"type": "string", "enum": ["add", "remove"]}}
    )


def _bulk_tags_responses_are_objects(spec: dict[str, Any]) -> None:
    # contacts.json: UpdateTagsResponseDTO.responses declares string items, but its own example (and GHL's
    # behaviour) has one object per contact: {contactId, message, type, oldTags?, tagsAdded?, tagsRemoved?}.
    responses = _schemas(spec)["UpdateTagsResponseDTO"]["properties"]["responses"]
    assert responses["items"] == {"type": "string"}, "erratum fixed upstream?"
    assert all(isinstance(item, dict) for item in responses["example"])
    tags = {"type": "array", "items": {"type": "string"}}
    responses["items"] = {
        "type": "object",
        "required": ["contactId", "message", "type"],
        "properties": {
            "contactId": {"type": "string"},
            "message": {"type": "string"},
            "type": {"type": "string", "enum": ["success", "error"]},
            "oldTags": tags,
            "tagsAdded": tags,
            "tagsRemoved": tags,
        },
    }


def _search_after_mixes_numbers_and_ids(spec: dict[str, Any]) -> None:
    # contacts-2025-08-26.json: Contact.searchAfter declares string items, while its own example is
    # [1234, "102goXVW3lIExEQPOnd3"]: the sort value (epoch ms, a number), then the id.
    search_after = _schemas(spec)["Contact"]["properties"]["searchAfter"]
    assert search_after["items"] == {"type": "string"}, "erratum fixed upstream?"
    assert isinstance(search_after["example"][0], int)
    search_after["items"] = {"anyOf": [{"type": "number"}, {"type": "string"}]}


def _timezones_location_parameter(spec: dict[str, Any]) -> None:
    # locations.json: GET /locations/{locationId}/timezones declares no "locationId" path parameter (a spec
    # error that makes the validator refuse the file; the sandbox does not serve this route).
    params = spec["paths"]["/locations/{locationId}/timezones"]["get"]["parameters"]
    assert all(p["name"] != "locationId" for p in params), "erratum fixed upstream?"
    params.append({"name": "locationId", "in": "path", "required": True, "schema": {"type": "string"}})


def _task_search_items_are_tasks(spec: dict[str, Any]) -> None:
    # locations.json: LocationTaskListSuccessfulResponseDto declares tasks as an array of arrays; the route
    # returns task objects. locations.json has no task schema, so take the contacts API's TaskSchema.
    tasks = _schemas(spec)["LocationTaskListSuccessfulResponseDto"]["properties"]["tasks"]
    assert tasks["items"] == {"type": "array"}, "erratum fixed upstream?"
    tasks["items"] = copy.deepcopy(_schemas(_raw("contacts.json"))["TaskSchema"])


def _business_start_after_parameter_oneof(spec: dict[str, Any]) -> None:
    # contacts-v3.json: GET /contacts/business/{businessId} puts a "oneOf" on the startAfter parameter itself,
    # beside its "schema"; an OpenAPI 3.0 Parameter has no "oneOf", so the validator refuses the file. The
    # parameter's own schema (an array of strings) stays.
    params = spec["paths"]["/contacts/business/{businessId}"]["get"]["parameters"]
    start_after = next(p for p in params if p["name"] == "startAfter")
    assert "oneOf" in start_after and "schema" in start_after, "erratum fixed upstream?"
    del start_after["oneOf"]


ERRATA: dict[str, list[Callable[[dict[str, Any]], None]]] = {
    "contacts.json": [_http_schemes_without_apikey_fields, _bulk_tags_type_parameter, _bulk_tags_responses_are_objects],
    "contacts-2025-08-26.json": [_http_schemes_without_apikey_fields, _search_after_mixes_numbers_and_ids],
    "locations.json": [
        _http_schemes_without_apikey_fields,
        _timezones_location_parameter,
        _task_search_items_are_tasks,
    ],
    "oauth.json": [_http_schemes_without_apikey_fields],
    "contacts-v3.json": [
        _http_schemes_without_apikey_fields,
        _business_start_after_parameter_oneof,
        _bulk_tags_type_parameter,
        _bulk_tags_responses_are_objects,
    ],
    "oauth-v3.json": [_http_schemes_without_apikey_fields],
}


# -- specs --------------------------------------------------------------------------------------------------
@functools.cache
def _raw(name: str) -> dict[str, Any]:
    """The official file as shipped, with the common-schemas reference pointed at the copy beside it."""
    common = COMMON_FILE.get(name, "common-schemas.json")
    return json.loads((SPEC_DIR / name).read_text().replace(COMMON_REF, common))


@functools.cache
def _openapi(name: str, leave_out: Callable[[dict[str, Any]], None] | None = None) -> OpenAPI:
    """The file with its errata patched (all of them, or all but ``leave_out``) as an openapi-core app."""
    spec = copy.deepcopy(_raw(name))
    for patch in ERRATA[name]:
        if patch is not leave_out:
            patch(spec)
    # Building validates the patched file against the OpenAPI 3.0 schema (openapi-spec-validator).
    return OpenAPI.from_dict(spec, base_uri=(SPEC_DIR / name).as_uri())


def _declared() -> dict[tuple[str, str, str, int], dict[str, Any]]:
    """Every (file, method, path, status) in scope whose response has a JSON schema -> the operation."""
    found = {}
    for name, in_scope in SCOPE.items():
        for path, item in _raw(name)["paths"].items():
            for method, operation in item.items():
                if method not in METHODS or not in_scope(method.upper(), path):
                    continue
                for status, response in operation["responses"].items():
                    if "schema" in response.get("content", {}).get(JSON, {}):
                        found[(name, method.upper(), path, int(status))] = operation
    return found


# -- provoking each status ----------------------------------------------------------------------------------
@dataclasses.dataclass
class Ctx:
    """A fresh sandbox with one contact of our own (with a task and a note) and ids for every path parameter."""

    api: Api
    params: dict[str, str]
    email: str
    _agency_token: str | None = None

    @property
    def location_id(self) -> str:
        return self.api.location_id

    def agency_token(self) -> str:
        if self._agency_token is None:
            info = self.api.server.info
            resp = self.api.oauth_token(
                grant_type="refresh_token", refresh_token=info["oauth"]["company_refresh_token"]
            )
            self._agency_token = resp.json()["access_token"]
        return self._agency_token


_WITH_APPOINTMENTS: dict[str, str] = {}


def _contact_with_appointments(api: Api) -> str:
    """A seeded contact with appointments (the seed decides which, so look once per server)."""
    if api.base_url not in _WITH_APPOINTMENTS:
        for contact in api.search(pageLimit=100).json()["contacts"]:
            if api.get(f"/contacts/{contact['id']}/appointments").json()["events"]:
                _WITH_APPOINTMENTS[api.base_url] = contact["id"]
                break
        else:
            raise AssertionError("no seeded contact with appointments")
    return _WITH_APPOINTMENTS[api.base_url]


@pytest.fixture
def ctx(api: Api) -> Ctx:
    fields = {
        f["fieldKey"]: f["id"] for f in api.get(f"/locations/{api.location_id}/customFields").json()["customFields"]
    }
    contact = api.new_contact(
        firstName="Con",
        lastName="Tract",
        email="contract@example.org",
        phone="+15550001111",
        tags=["t1"],
        customFields=[{"id": fields["contact.referral_code"], "field_value": "R1"}],
        dnd=True,
        dndSettings={"Email": {"status": "active", "message": "", "code": ""}},
    )
    cid = contact["id"]
    task = api.post(f"/contacts/{cid}/tasks", json={"title": "Call", "dueDate": DUE, "completed": False}).json()
    note = api.post(f"/contacts/{cid}/notes", json={"body": "Hello"}).json()
    business = api.search(filters=[{"field": "businessId", "operator": "exists"}], pageLimit=1).json()
    loc = api.server.info["locations"][0]
    params = {
        "contactId": cid,
        "taskId": task["task"]["id"],
        "id": note["note"]["id"],
        "locationId": api.location_id,
        "businessId": business["contacts"][0]["businessId"],
        "campaignId": loc["campaigns"][0],
        "workflowId": loc["workflows"][0],
        "type": "add",
    }
    return Ctx(api, params, contact["email"])


Request = dict[str, Any]  # keyword arguments of Api.call, plus "path_params" overrides

# The happy-path request of each operation.
OK: dict[tuple[str, str], Callable[[Ctx], Request]] = {
    ("POST", "/contacts/"): lambda c: {
        "json": {
            "locationId": c.location_id,
            "firstName": "New",
            "lastName": "Person",
            "email": "new.person@example.org",
            "phone": "+15550002222",
            "tags": ["a", "b"],
            "source": "contract test",
            "companyName": "Acme",
            "dateOfBirth": "1990-09-25",
            "customFields": [{"key": "lead_score", "field_value": "42"}],
        }
    },
    ("GET", "/contacts/"): lambda c: {"params": {"locationId": c.location_id, "limit": 20}},
    ("GET", "/contacts/{contactId}"): lambda c: {},
    ("PUT", "/contacts/{contactId}"): lambda c: {
        "json": {"city": "Paris", "customFields": [{"key": "membership_level", "field_value": "Gold"}]}
    },
    ("DELETE", "/contacts/{contactId}"): lambda c: {},
    ("POST", "/contacts/upsert"): lambda c: {"json": {"locationId": c.location_id, "email": c.email, "lastName": "Up"}},
    ("POST", "/contacts/search"): lambda c: {"json": {"locationId": c.location_id, "pageLimit": 50}},
    ("GET", "/contacts/search/duplicate"): lambda c: {"params": {"locationId": c.location_id, "email": c.email}},
    ("GET", "/contacts/business/{businessId}"): lambda c: {"params": {"locationId": c.location_id, "limit": 10}},
    ("GET", "/contacts/{contactId}/tasks"): lambda c: {},
    ("POST", "/contacts/{contactId}/tasks"): lambda c: {"json": {"title": "Demo", "dueDate": DUE, "completed": False}},
    ("GET", "/contacts/{contactId}/tasks/{taskId}"): lambda c: {},
    ("PUT", "/contacts/{contactId}/tasks/{taskId}"): lambda c: {"json": {"title": "Renamed", "body": "More"}},
    ("DELETE", "/contacts/{contactId}/tasks/{taskId}"): lambda c: {},
    ("PUT", "/contacts/{contactId}/tasks/{taskId}/completed"): lambda c: {"json": {"completed": True}},
    ("GET", "/contacts/{contactId}/appointments"): lambda c: {
        "path_params": {"contactId": _contact_with_appointments(c.api)}
    },
    ("POST", "/contacts/{contactId}/tags"): lambda c: {"json": {"tags": ["t2"]}},
    ("DELETE", "/contacts/{contactId}/tags"): lambda c: {"json": {"tags": ["t1"]}},
    ("GET", "/contacts/{contactId}/notes"): lambda c: {},
    ("POST", "/contacts/{contactId}/notes"): lambda c: {"json": {"body": "Second note", "title": "2"}},
    ("GET", "/contacts/{contactId}/notes/{id}"): lambda c: {},
    ("PUT", "/contacts/{contactId}/notes/{id}"): lambda c: {"json": {"body": "Edited", "pinned": True}},
    ("DELETE", "/contacts/{contactId}/notes/{id}"): lambda c: {},
    ("POST", "/contacts/bulk/tags/update/{type}"): lambda c: {
        # One contact of ours and one unknown: the response then holds both shapes of item.
        "json": {"locationId": c.location_id, "contacts": [c.params["contactId"], UNKNOWN_ID], "tags": ["bulk"]}
    },
    ("POST", "/contacts/bulk/business"): lambda c: {
        "json": {"locationId": c.location_id, "ids": [c.params["contactId"]], "businessId": c.params["businessId"]}
    },
    ("POST", "/contacts/{contactId}/followers"): lambda c: {
        "json": {"followers": c.api.server.info["locations"][0]["users"][:2]}
    },
    ("DELETE", "/contacts/{contactId}/followers"): lambda c: {
        "json": {"followers": c.api.server.info["locations"][0]["users"][:1]}
    },
    ("POST", "/contacts/{contactId}/campaigns/{campaignId}"): lambda c: {"json": {}},
    ("DELETE", "/contacts/{contactId}/campaigns/{campaignId}"): lambda c: {},
    ("DELETE", "/contacts/{contactId}/campaigns/removeAll"): lambda c: {},
    ("POST", "/contacts/{contactId}/workflow/{workflowId}"): lambda c: {"json": {"eventStartTime": DUE}},
    ("DELETE", "/contacts/{contactId}/workflow/{workflowId}"): lambda c: {"json": {}},
    ("GET", "/locations/{locationId}/customFields"): lambda c: {"params": {"model": "all"}},
    ("POST", "/locations/{locationId}/tasks/search"): lambda c: {"json": {"limit": 10}},
    ("POST", "/oauth/token"): lambda c: {
        "token": None,
        "version": None,
        "data": _client(c)
        | {"grant_type": "authorization_code", "code": c.api.server.authorize(location_id=c.location_id)},
    },
    ("POST", "/oauth/locationToken"): lambda c: {
        "token": c.agency_token(),
        "data": {"companyId": c.api.server.info["company_id"], "locationId": c.location_id},
    },
    ("GET", "/oauth/installedLocations"): lambda c: {
        "token": c.agency_token(),
        "params": _installed_query(c) | {"isInstalled": "true", "limit": "1"},
    },
}


def _installed_query(c: Ctx) -> dict[str, str]:
    return {"companyId": c.api.server.info["company_id"], "appId": c.api.server.info["oauth"]["app_id"]}


def _client(c: Ctx) -> dict[str, str]:
    oauth = c.api.server.info["oauth"]
    return {"client_id": oauth["client_id"], "client_secret": oauth["client_secret"]}


def _client_v3(c: Ctx) -> dict[str, str]:
    oauth = c.api.server.info["oauth"]
    return {"clientId": oauth["client_id"], "clientSecret": oauth["client_secret"]}


# Under Version v3: the renamed route, and OAuth in camelCase (the token endpoint also takes JSON).
OK_V3: dict[tuple[str, str], Callable[[Ctx], Request]] = {
    ("DELETE", "/contacts/{contactId}/campaigns/remove-all"): lambda c: {},
    ("POST", "/oauth/token"): lambda c: {
        "token": None,
        "json": _client_v3(c)
        | {"grantType": "authorization_code", "code": c.api.server.authorize(location_id=c.location_id)},
    },
    ("POST", "/oauth/location-token"): lambda c: {
        "token": c.agency_token(),
        "data": {"companyId": c.api.server.info["company_id"], "locationId": c.location_id},
    },
    # pageSize 1 of the two locations: a next page, so nextPageToken is validated too.
    ("GET", "/oauth/installed-locations"): lambda c: {
        "token": c.agency_token(),
        "params": _installed_query(c) | {"pageSize": "1"},
    },
}
SPECIAL_V3: dict[tuple[str, str, int], Callable[[Ctx], Request]] = {
    ("POST", "/oauth/token", 400): lambda c: {
        "token": None,
        "data": _client_v3(c) | {"grantType": "authorization_code", "code": "never-issued"},
    },
    ("POST", "/oauth/token", 401): lambda c: {
        "token": None,
        "data": _client_v3(c) | {"clientSecret": "wrong", "grantType": "refresh_token", "refreshToken": "x"},
    },
    ("POST", "/oauth/token", 422): lambda c: {"token": None, "data": {"grantType": "refresh_token"}},
    ("POST", "/oauth/location-token", 400): lambda c: {
        "token": c.agency_token(),
        "data": {"companyId": "someOtherCompany", "locationId": c.location_id},
    },
    ("POST", "/oauth/location-token", 422): lambda c: {
        "token": c.agency_token(),
        "data": {"companyId": c.api.server.info["company_id"]},
    },
    ("GET", "/oauth/installed-locations", 400): lambda c: {
        "token": c.agency_token(),
        "params": _installed_query(c) | {"pageToken": "not-a-token"},
    },
    ("GET", "/oauth/installed-locations", 404): lambda c: {
        "token": c.agency_token(),
        "params": _installed_query(c) | {"appId": "someOtherApp"},
    },
    ("GET", "/oauth/installed-locations", 422): lambda c: {
        "token": c.agency_token(),
        "params": {"appId": c.api.server.info["oauth"]["app_id"]},
    },
}


# Error statuses provoked some other way than the defaults (400: unknown contact, or no Version header;
# 401: no token; 422: an unknown body property).
SPECIAL: dict[tuple[str, str, int], Callable[[Ctx], Request]] = {
    ("POST", "/contacts/", 400): lambda c: {"json": {"locationId": c.location_id, "email": c.email}},  # duplicate
    ("POST", "/contacts/search", 400): lambda c: {"data": b"{not json", "headers": {"Content-Type": JSON}},
    ("GET", "/contacts/", 422): lambda c: {"params": {"locationId": c.location_id, "limit": 101}},
    ("GET", "/contacts/business/{businessId}", 422): lambda c: {"params": {"locationId": c.location_id, "limit": 101}},
    ("GET", "/locations/{locationId}/customFields", 422): lambda c: {"params": {"model": "nothing"}},
    ("POST", "/oauth/token", 400): lambda c: {
        "token": None,
        "version": None,
        "data": _client(c) | {"grant_type": "authorization_code", "code": "never-issued"},
    },
    ("POST", "/oauth/token", 401): lambda c: {
        "token": None,
        "version": None,
        "data": _client(c) | {"client_secret": "wrong", "grant_type": "refresh_token", "refresh_token": "x"},
    },
    ("POST", "/oauth/token", 422): lambda c: {"token": None, "version": None, "data": {"grant_type": "refresh_token"}},
    ("POST", "/oauth/locationToken", 400): lambda c: {
        "token": c.agency_token(),
        "data": {"companyId": "someOtherCompany", "locationId": c.location_id},
    },
    ("POST", "/oauth/locationToken", 422): lambda c: {
        "token": c.agency_token(),
        "data": {"companyId": c.api.server.info["company_id"]},
    },
    ("GET", "/oauth/installedLocations", 400): lambda c: {
        "token": c.agency_token(),
        "params": _installed_query(c) | {"appId": "someOtherApp"},
    },
    ("GET", "/oauth/installedLocations", 422): lambda c: {
        "token": c.agency_token(),
        "params": _installed_query(c) | {"limit": "101"},
    },
}

# Declared statuses the sandbox cannot be made to answer, and why.
NOTHING_TO_VALIDATE = "no body or query, and path ids of any shape are looked up (400), not validated"
UNPROVOKABLE: dict[tuple[str, str, int], str] = {
    ("GET", "/contacts/{contactId}", 422): NOTHING_TO_VALIDATE,
    ("DELETE", "/contacts/{contactId}", 422): NOTHING_TO_VALIDATE,
    ("GET", "/contacts/{contactId}/appointments", 422): NOTHING_TO_VALIDATE,
    ("GET", "/contacts/{contactId}/notes/{id}", 422): NOTHING_TO_VALIDATE,
    ("DELETE", "/contacts/{contactId}/notes/{id}", 422): NOTHING_TO_VALIDATE,
    ("DELETE", "/contacts/{contactId}/campaigns/{campaignId}", 422): NOTHING_TO_VALIDATE,
    ("DELETE", "/contacts/{contactId}/campaigns/removeAll", 422): NOTHING_TO_VALIDATE,
    ("DELETE", "/contacts/{contactId}/campaigns/remove-all", 422): NOTHING_TO_VALIDATE,
}


@dataclasses.dataclass(frozen=True)
class Case:
    spec: str
    method: str
    path: str
    status: int
    operation_id: str
    how: str

    @property
    def id(self) -> str:
        version = "v3-" if self.spec in V3_FILES else ""
        return f"{version}{self.operation_id}-{self.status}-{self.how}"


def _specials(v3: bool) -> dict[tuple[str, str, int], Callable[[Ctx], Request]]:
    """The special ways of provoking a status: v3 has its own for OAuth, and shares the contacts ones."""
    if not v3:
        return SPECIAL
    return {**{k: v for k, v in SPECIAL.items() if not k[1].startswith("/oauth/")}, **SPECIAL_V3}


def _how(method: str, path: str, status: int, operation: dict[str, Any], v3: bool = False) -> str | None:
    """How to provoke ``status`` from the operation; None when it cannot be provoked."""
    if (method, path, status) in _specials(v3):
        return "special"
    if 200 <= status < 300:
        return "ok"
    if status == 401:
        return "no-token"
    if status == 400:
        return "unknown-contact" if "{contactId}" in path else "no-version"
    if status == 422 and JSON in operation.get("requestBody", {}).get("content", {}):
        return "unknown-property"
    return None


def _cases() -> list[Case]:
    cases = []
    for (spec, method, path, status), operation in sorted(_declared().items()):
        how = _how(method, path, status, operation, spec in V3_FILES)
        if how is not None:
            cases.append(Case(spec, method, path, status, operation["operationId"], how))
    return cases


CASES = _cases()


def _ok_request(case: Case, ctx: Ctx) -> Request:
    """The request the operation of ``case`` answers with 2xx, in the case's API version."""
    if case.spec not in V3_FILES:
        return OK[(case.method, case.path)](ctx)
    return {"version": "v3", **(OK_V3.get((case.method, case.path)) or OK[(case.method, case.path)])(ctx)}


def _request(case: Case, ctx: Ctx) -> Request:
    v3 = case.spec in V3_FILES
    if case.how == "special":
        special = _specials(v3)[(case.method, case.path, case.status)](ctx)
        return {"version": "v3", **special} if v3 else special
    request = _ok_request(case, ctx)
    if case.how == "no-token":
        return {**request, "token": None}
    if case.how == "no-version":
        return {**request, "version": None}
    if case.how == "unknown-contact":
        return {**request, "path_params": {**request.get("path_params", {}), "contactId": UNKNOWN_ID}}
    if case.how == "unknown-property":
        return {**request, "json": {**request["json"], "bogus": 1}}
    return request


def _send(case: Case, ctx: Ctx) -> requests.Response:
    request = _request(case, ctx)
    values = {**ctx.params, **request.pop("path_params", {})}
    path = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], case.path)
    return ctx.api.call(case.method, path, **request)


def _validate(case: Case, resp: requests.Response) -> None:
    # path_pattern pins the operation (so /campaigns/removeAll is not taken for /campaigns/{campaignId}).
    request = MockRequest(HOST, case.method.lower(), resp.request.path_url.split("?")[0], path_pattern=case.path)
    response = MockResponse(
        resp.content,
        status_code=resp.status_code,
        headers=dict(resp.headers),
        content_type=resp.headers["content-type"],
    )
    _openapi(case.spec).validate_response(request, response)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_response_matches_spec(ctx: Ctx, case: Case) -> None:
    resp = _send(case, ctx)
    assert resp.status_code == case.status, (
        f"{case.operation_id}: wanted {case.status}, got {resp.status_code} {resp.text}"
    )
    _validate(case, resp)


def test_every_operation_and_status_is_covered() -> None:
    contacts_ops = {
        (method.upper(), path)
        for path, item in _raw("contacts.json")["paths"].items()
        for method in item
        if method in METHODS
    }
    assert len(contacts_ops) == 32
    assert contacts_ops <= {(c.method, c.path) for c in CASES if c.spec.startswith("contacts")}
    for name, in_scope in SCOPE.items():
        for path, item in _raw(name)["paths"].items():
            for method in item:
                if method in METHODS and in_scope(method.upper(), path) and name != "contacts.json":
                    assert (method.upper(), path) in {(c.method, c.path) for c in CASES}, (name, method, path)
    # API v3: every operation of contacts-v3.json (31: no GET /contacts/, remove-all for removeAll).
    v3_ops = {
        (method.upper(), path)
        for path, item in _raw("contacts-v3.json")["paths"].items()
        for method in item
        if method in METHODS
    }
    assert len(v3_ops) == 31 and ("DELETE", "/contacts/{contactId}/campaigns/remove-all") in v3_ops
    # The v3 search declares no response schema at all (its one answer is "200: Success"): nothing to validate.
    assert v3_ops - {SEARCH} <= {(c.method, c.path) for c in CASES if c.spec == "contacts-v3.json"}
    # Every declared JSON response of every file is exercised, or listed as unprovokable with a reason (and
    # only those).
    missing = {(m, p, s) for (spec, m, p, s) in _declared()} - set(UNPROVOKABLE)
    assert all((spec, m, p, s) in {(c.spec, c.method, c.path, c.status) for c in CASES}
               for (spec, m, p, s) in _declared() if (m, p, s) in missing)  # fmt: skip
    assert {(m, p, s) for (spec, m, p, s) in _declared()} - {(c.method, c.path, c.status) for c in CASES} == set(
        UNPROVOKABLE
    )
    # Every happy path has a case: no operation is only checked on its errors, except where the spec gives
    # the 2xx no schema (GET /contacts/search/duplicate: "200: Successful response", no content).
    ok_cases = {(c.method, c.path) for c in CASES if c.status < 300}
    assert {(m, p) for (m, p) in OK} - ok_cases == {("GET", "/contacts/search/duplicate")}


@pytest.mark.parametrize("name", sorted(ERRATA))
def test_shipped_files_are_refused_without_errata(name: str) -> None:
    # Each patch also asserts that the error it fixes is still in the shipped file.
    assert _openapi(name) is not None
    with pytest.raises(OpenAPIValidationError):
        validate(_raw(name), base_uri=(SPEC_DIR / name).as_uri())


# Schema errata: the case whose real response needs each one.
SCHEMA_ERRATA = [
    ("contacts.json", _bulk_tags_responses_are_objects, "create-association-201-ok"),
    ("contacts-2025-08-26.json", _search_after_mixes_numbers_and_ids, "search-contacts-advanced-200-ok"),
    ("locations.json", _task_search_items_are_tasks, "task-search-200-ok"),
]


@pytest.mark.parametrize(("name", "patch", "case_id"), SCHEMA_ERRATA, ids=[c for _, _, c in SCHEMA_ERRATA])
def test_schema_errata_are_needed_by_real_responses(
    ctx: Ctx, name: str, patch: Callable[[dict[str, Any]], None], case_id: str
) -> None:
    case = next(c for c in CASES if c.id == case_id)
    resp = _send(case, ctx)
    _validate(case, resp)
    with pytest.raises(InvalidData):
        request = MockRequest(HOST, case.method.lower(), resp.request.path_url, path_pattern=case.path)
        _openapi(name, leave_out=patch).validate_response(request, MockResponse(resp.content, resp.status_code))


# The validator is not vacuous: wrong bodies and undeclared statuses fail.
WRONG = [
    ("contacts.json", "GET", "/contacts/{contactId}", 200, {"contact": {"dnd": "yes"}}),
    ("contacts.json", "GET", "/contacts/{contactId}", 404, {"statusCode": 404, "message": "Not Found"}),
    ("contacts.json", "GET", "/contacts/{contactId}", 400, {"statusCode": 400, "message": ["common schema"]}),
    ("contacts.json", "POST", "/contacts/{contactId}/tasks", 422, {"statusCode": 422, "message": "not a list"}),
    ("contacts.json", "POST", "/contacts/", 200, {"contact": {}}),  # creates answer 201
    ("contacts.json", "POST", "/contacts/bulk/tags/update/{type}", 201, {"succeded": True, "responses": []}),
    ("contacts-2025-08-26.json", "POST", "/contacts/search", 200, {"contacts": []}),
    ("contacts-2025-08-26.json", "POST", "/contacts/search", 200, {"contacts": [{"searchAfter": [True]}], "total": 1}),
    ("locations.json", "POST", "/locations/{locationId}/tasks/search", 200, {"tasks": [{"completed": "no"}]}),
    ("oauth.json", "POST", "/oauth/token", 200, {"access_token": "no userId"}),
]


@pytest.mark.parametrize(("name", "method", "path", "status", "body"), WRONG)
def test_validator_rejects_wrong_responses(name: str, method: str, path: str, status: int, body: Any) -> None:
    request = MockRequest(HOST, method.lower(), "/", path_pattern=path)
    with pytest.raises((InvalidData, ResponseNotFound)):
        _openapi(name).validate_response(request, MockResponse(json.dumps(body).encode(), status))


# -- scopes -------------------------------------------------------------------------------------------------
def _spec_scopes(operation: dict[str, Any]) -> set[str]:
    return {scope for entry in operation.get("security") or [] for scopes in entry.values() for scope in scopes}


def _operations_in_scope() -> list[tuple[str, str, str, dict[str, Any]]]:
    return [
        (name, method.upper(), path, operation)
        for name, in_scope in SCOPE.items()
        for path, item in _raw(name)["paths"].items()
        for method, operation in item.items()
        if method in METHODS and in_scope(method.upper(), path)
    ]


def test_the_sandboxes_scope_table_is_the_specs() -> None:
    # Where the spec names a scope, the sandbox requires exactly that one; where it names none (the bulk
    # routes, the token endpoint), the sandbox requires a contact write or nothing.
    for name, method, path, operation in _operations_in_scope():
        declared = _spec_scopes(operation)
        needed = required_scope(method, path)
        if declared:
            assert {needed} == declared, (name, method, path, declared, needed)
        else:
            assert needed in (None, "contacts.write"), (name, method, path, needed)


# One case per operation whose spec declares a JSON 401: the request it answers with 2xx, sent with a token
# that has every scope but the one it needs, is refused with a 401 the spec's schema accepts.
SCOPE_CASES = [
    c
    for c in CASES
    if c.status == 401 and c.how == "no-token" and required_scope(c.method, c.path) is not None
    if not c.path.startswith("/oauth/")
]


@pytest.mark.parametrize("case", SCOPE_CASES, ids=lambda c: c.id.replace("-no-token", "-missing-scope"))
def test_a_call_outside_the_tokens_scopes_is_refused_as_the_spec_says(ctx: Ctx, case: Case) -> None:
    needed = required_scope(case.method, case.path)
    token = ctx.api.server.issue_token(0, scopes=[s for s in ALL_SCOPES if s != needed])
    before = ctx.api.server.stats()["writes"]
    request = _ok_request(case, ctx)
    values = {**ctx.params, **request.pop("path_params", {})}
    path = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], case.path)
    resp = ctx.api.call(case.method, path, **{**request, "token": token})
    assert resp.status_code == 401, resp.text
    assert resp.json()["message"] == SCOPE_REFUSAL
    _validate(case, resp)
    assert ctx.api.server.stats()["writes"] == before  # a refused write changed nothing


def test_every_operation_with_a_scope_has_a_refusal_case() -> None:
    with_scope = {
        (n, m, p)
        for n, m, p, op in _operations_in_scope()
        if _spec_scopes(op) and "/oauth/" not in p and (n, m, p) != ("contacts-v3.json", *SEARCH)
    }
    assert with_scope <= {(c.spec, c.method, c.path) for c in SCOPE_CASES}
