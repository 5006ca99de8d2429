"""Which OAuth scope each GHL route needs, as GHL's OpenAPI files declare it (their ``security`` entries).

Every token of the sandbox carries scopes; the request gate refuses a call outside them with GHL's
``401 {"statusCode": 401, "message": "The token is not authorized for this scope."}``, writes included.
``tests/sandbox/test_contract.py`` checks this table against the official files, so it is the spec's word, not
the provider's. The bulk routes declare no security in the spec; GHL treats them as contact writes.
"""

from __future__ import annotations

#: Every scope a sandbox token can hold (the default of Private Integration Tokens and app installs).
ALL_SCOPES: tuple[str, ...] = (
    "contacts.readonly",
    "contacts.write",
    "locations/customFields.readonly",
    "locations/tasks.readonly",
    "oauth.readonly",
    "oauth.write",
)

#: GHL's message for a call the token has no scope for.
SCOPE_REFUSAL = "The token is not authorized for this scope."

#: ``(method, route)`` -> the scope it needs, where it is not the contacts rule of :func:`required_scope`.
_LOCATION_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/locations/{locationId}/customFields"): "locations/customFields.readonly",
    ("POST", "/locations/{locationId}/tasks/search"): "locations/tasks.readonly",
    ("POST", "/oauth/locationToken"): "oauth.write",
    ("POST", "/oauth/location-token"): "oauth.write",
    ("GET", "/oauth/installedLocations"): "oauth.readonly",
    ("GET", "/oauth/installed-locations"): "oauth.readonly",
}
#: Contact routes that read although they are POSTs.
_READ_POSTS = {"/contacts/search"}


def required_scope(method: str, route: str) -> str | None:
    """The scope ``method route`` needs (``route`` is the path template), or None when it needs none.

    :param method: HTTP method.
    :param route: the matched route's path template, e.g. ``/contacts/{contactId}``.
    """
    if (method, route) in _LOCATION_ROUTES:
        return _LOCATION_ROUTES[method, route]
    if route.startswith("/contacts"):
        return "contacts.readonly" if method == "GET" or route in _READ_POSTS else "contacts.write"
    return None


def parse_scopes(value: str | list[str] | tuple[str, ...] | None) -> frozenset[str]:
    """Scopes given as a list or as GHL writes them (space-separated; commas accepted), all known.

    :param value: the scopes; None means every scope in :data:`ALL_SCOPES`.
    """
    if value is None:
        return frozenset(ALL_SCOPES)
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(v).strip() for v in value]
    unknown = sorted(set(items) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; the sandbox knows {', '.join(ALL_SCOPES)}")
    return frozenset(items)


def scope_text(scopes: frozenset[str]) -> str:
    """Scopes as GHL's token endpoint reports them: space-separated, in a stable order."""
    return " ".join(s for s in ALL_SCOPES if s in scopes)
