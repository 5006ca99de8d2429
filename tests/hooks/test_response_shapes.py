"""The endpoint table's response shapes against GHL's OpenAPI files: the funnel rejects any 2xx that does not
have its row's ``shape``, so each shape must be what GHL documents (and no row may return a key it does not
check)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.hooks.endpoints import ENDPOINTS, WHOLE_BODY, Endpoint

SPECS = Path(__file__).resolve().parents[1] / "openapi"
#: Newest first: the HEAD spec left the search response untyped; the 2025-08-26 one still types it.
SPEC_FILES = ("contacts.json", "contacts-2025-08-26.json", "locations.json", "oauth.json")
#: Documented outside the spec (ghl-api-details.md, operation 8): ``{contact: {...}}`` or ``{contact: null}``.
UNTYPED_BUT_KNOWN = {"get_duplicate_contact"}
SPEC_TYPE = {dict: "object", list: "array"}


@cache
def _spec(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((SPECS / name).read_text())
    return spec


def _resolved(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def _documented_properties(
    endpoint: Endpoint, files: tuple[str, ...] = SPEC_FILES, path: str | None = None
) -> dict[str, str] | None:
    """The typed properties of the operation's 2xx answer in the newest spec that types it, or None."""
    for name in files:
        spec = _spec(name)
        operation = spec["paths"].get(path or endpoint.path, {}).get(endpoint.method.lower())
        for status, answer in (operation or {}).get("responses", {}).items():
            if not status.startswith("2"):
                continue
            schema = _resolved(spec, answer.get("content", {}).get("application/json", {}).get("schema", {}))
            if schema.get("properties"):
                return {
                    key: _resolved(spec, value.get("allOf", [value])[0]).get("type", "object")
                    for key, value in schema["properties"].items()
                }
    return None


@pytest.mark.parametrize("operation", sorted(ENDPOINTS))
def test_shape_is_what_ghl_documents(operation: str) -> None:
    endpoint = ENDPOINTS[operation]
    if endpoint.result not in (None, WHOLE_BODY):
        assert endpoint.result in endpoint.shape, "the returned key must be checked"
    documented = _documented_properties(endpoint)
    if documented is None:
        assert operation in UNTYPED_BUT_KNOWN
        return
    for key, expect in endpoint.shape.items():
        assert documented.get(key) == SPEC_TYPE[expect.kind], f"{key}: spec says {documented.get(key)}"
        assert not expect.nullable or operation in UNTYPED_BUT_KNOWN


@pytest.mark.parametrize("operation", sorted(name for name, row in ENDPOINTS.items() if row.v3_shape is not None))
def test_v3_shape_is_what_ghl_documents(operation: str) -> None:
    endpoint = ENDPOINTS[operation]
    documented = _documented_properties(endpoint, ("oauth-v3.json", "contacts-v3.json"), endpoint.v3_path)
    assert documented is not None and endpoint.v3_shape
    for key, expect in endpoint.v3_shape.items():
        assert documented.get(key) == SPEC_TYPE[expect.kind], f"{key}: spec says {documented.get(key)}"
