"""The GHL operations the hook speaks, as data: one row per operation of the Contacts API (``contacts.json``),
the two location-level reads the provider needs (``locations.json``) and the agency's list of the locations
where the app is installed (``oauth.json``).

Each typed method of :class:`~airflow_provider_ghl.hooks.ghl.GHLHook` is a one-line call into this table; the
request funnel reads the row to build the URL, place ``locationId``, decide whether a failed attempt may be
repeated and pick the resource out of the response.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, NamedTuple

#: Where an operation takes ``locationId``: a query parameter, a body field, a path parameter, or nowhere.
LocationPlacement = Literal["query", "body", "path", None]

#: ``result`` value meaning "return the whole response body".
WHOLE_BODY = "*"


class Expect(NamedTuple):
    """What one key of a 2xx body must hold.

    :param kind: ``dict`` (an object) or ``list`` (an array).
    :param nullable: whether GHL documents ``null`` for it (e.g. the duplicate lookup's "no match").
    """

    kind: type[dict] | type[list]
    nullable: bool = False


OBJECT = Expect(dict)
ARRAY = Expect(list)
OBJECT_OR_NULL = Expect(dict, nullable=True)
#: A body that must be a JSON object (or empty), with no key checked.
ANY_OBJECT: Mapping[str, Expect] = MappingProxyType({})


class Endpoint(NamedTuple):
    """One GHL operation.

    :param method: HTTP method.
    :param path: path template; ``{name}`` placeholders are GHL's path parameter names.
    :param result: key of the resource in the response, :data:`WHOLE_BODY`, or None (the call returns None).
    :param location: where ``locationId`` goes (the hook fills in the connection's default).
    :param retry_safe: whether repeating the request after a 5xx or a dropped connection cannot duplicate a
        write: GET, PUT and DELETE are idempotent, and the two search POSTs only read.
    :param v3_path: the path under ``Version: v3`` when it differs; ``""`` means the operation is gone in v3.
    :param shape: the keys a 2xx body must have, and what each holds (from contacts.json / locations.json and
        GHL's observed answers); any 2xx body must be a JSON object, an empty one only where ``result`` is None.
    :param agency: an agency-level operation: sent with the agency (Company) token itself, on the company's
        rate budget, never with a location token.
    :param v3_shape: the shape under ``Version: v3`` when it differs.
    """

    method: str
    path: str
    result: str | None
    location: LocationPlacement = None
    retry_safe: bool | None = None
    v3_path: str | None = None
    shape: Mapping[str, Expect] = ANY_OBJECT
    agency: bool = False
    v3_shape: Mapping[str, Expect] | None = None

    @property
    def is_retry_safe(self) -> bool:
        if self.retry_safe is not None:
            return self.retry_safe
        return self.method in ("GET", "PUT", "DELETE")

    @property
    def is_read(self) -> bool:
        return self.method == "GET" or self.path.endswith("/search")


_C = "/contacts/{contactId}"

ENDPOINTS: dict[str, Endpoint] = {
    # Contacts
    "get_contact": Endpoint("GET", _C, "contact", shape={"contact": OBJECT}),
    "create_contact": Endpoint("POST", "/contacts/", "contact", location="body", shape={"contact": OBJECT}),
    "update_contact": Endpoint("PUT", _C, "contact", shape={"contact": OBJECT}),
    "delete_contact": Endpoint("DELETE", _C, None),
    "upsert_contact": Endpoint("POST", "/contacts/upsert", WHOLE_BODY, location="body", shape={"contact": OBJECT}),
    "get_duplicate_contact": Endpoint(
        "GET", "/contacts/search/duplicate", "contact", location="query", shape={"contact": OBJECT_OR_NULL}
    ),
    "search_contacts": Endpoint(
        "POST", "/contacts/search", WHOLE_BODY, location="body", retry_safe=True, shape={"contacts": ARRAY}
    ),
    "get_contacts": Endpoint("GET", "/contacts/", WHOLE_BODY, location="query", v3_path="", shape={"contacts": ARRAY}),
    "get_contacts_by_business": Endpoint(
        "GET", "/contacts/business/{businessId}", WHOLE_BODY, location="query", shape={"contacts": ARRAY}
    ),
    # Tags
    "add_tags": Endpoint("POST", f"{_C}/tags", "tags", shape={"tags": ARRAY}),
    "remove_tags": Endpoint("DELETE", f"{_C}/tags", "tags", shape={"tags": ARRAY}),
    "bulk_update_tags": Endpoint(
        "POST", "/contacts/bulk/tags/update/{type}", WHOLE_BODY, location="body", shape={"responses": ARRAY}
    ),
    "bulk_update_business": Endpoint(
        "POST", "/contacts/bulk/business", WHOLE_BODY, location="body", shape={"ids": ARRAY}
    ),
    # Tasks
    "get_tasks": Endpoint("GET", f"{_C}/tasks", "tasks", shape={"tasks": ARRAY}),
    "get_task": Endpoint("GET", f"{_C}/tasks/{{taskId}}", "task", shape={"task": OBJECT}),
    "create_task": Endpoint("POST", f"{_C}/tasks", "task", shape={"task": OBJECT}),
    "update_task": Endpoint("PUT", f"{_C}/tasks/{{taskId}}", "task", shape={"task": OBJECT}),
    "complete_task": Endpoint("PUT", f"{_C}/tasks/{{taskId}}/completed", "task", shape={"task": OBJECT}),
    "delete_task": Endpoint("DELETE", f"{_C}/tasks/{{taskId}}", None),
    # Notes
    "get_notes": Endpoint("GET", f"{_C}/notes", "notes", shape={"notes": ARRAY}),
    "get_note": Endpoint("GET", f"{_C}/notes/{{id}}", "note", shape={"note": OBJECT}),
    "create_note": Endpoint("POST", f"{_C}/notes", "note", shape={"note": OBJECT}),
    "update_note": Endpoint("PUT", f"{_C}/notes/{{id}}", "note", shape={"note": OBJECT}),
    "delete_note": Endpoint("DELETE", f"{_C}/notes/{{id}}", None),
    # Appointments, followers, campaigns, workflows
    "get_appointments": Endpoint("GET", f"{_C}/appointments", "events", shape={"events": ARRAY}),
    "add_followers": Endpoint("POST", f"{_C}/followers", WHOLE_BODY, shape={"followers": ARRAY}),
    "remove_followers": Endpoint("DELETE", f"{_C}/followers", WHOLE_BODY, shape={"followers": ARRAY}),
    "add_to_campaign": Endpoint("POST", f"{_C}/campaigns/{{campaignId}}", None),
    "remove_from_campaign": Endpoint("DELETE", f"{_C}/campaigns/{{campaignId}}", None),
    "remove_from_all_campaigns": Endpoint(
        "DELETE", f"{_C}/campaigns/removeAll", None, v3_path=f"{_C}/campaigns/remove-all"
    ),
    "add_to_workflow": Endpoint("POST", f"{_C}/workflow/{{workflowId}}", None),
    "remove_from_workflow": Endpoint("DELETE", f"{_C}/workflow/{{workflowId}}", None),
    # Location level (locations.json)
    "get_custom_fields": Endpoint(
        "GET", "/locations/{locationId}/customFields", "customFields", location="path", shape={"customFields": ARRAY}
    ),
    "search_location_tasks": Endpoint(
        "POST",
        "/locations/{locationId}/tasks/search",
        "tasks",
        location="path",
        retry_safe=True,
        shape={"tasks": ARRAY},
    ),
    # Agency level (oauth.json, oauth-v3.json)
    "get_installed_locations": Endpoint(
        "GET",
        "/oauth/installedLocations",
        WHOLE_BODY,
        v3_path="/oauth/installed-locations",
        shape={"locations": ARRAY},
        agency=True,
        v3_shape={"items": ARRAY, "pagination": OBJECT},
    ),
}

#: Operations of ``contacts.json`` (the rest of the table is location- or agency-level).
CONTACT_OPERATIONS = tuple(name for name, ep in ENDPOINTS.items() if not ep.path.startswith(("/locations/", "/oauth/")))

#: OAuth endpoints (``oauth.json``); called by the token manager, never retried after the request was sent.
OAUTH_TOKEN_PATH = "/oauth/token"
OAUTH_LOCATION_TOKEN_PATH = "/oauth/locationToken"
#: The v3 agency location-token endpoint (``oauth-v3.json``); the token endpoint keeps its path in v3.
OAUTH_V3_LOCATION_TOKEN_PATH = "/oauth/location-token"
