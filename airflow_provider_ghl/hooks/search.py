"""GHL's contact search: its limits, and the checks of a search's arguments (operators, sensors, the hook)."""

from __future__ import annotations

import json
from typing import Any

from airflow_provider_ghl.checks import absent, require_mapping_list
from airflow_provider_ghl.exceptions import GHLInputError

#: GHL refuses longer full-text queries.
MAX_QUERY_LENGTH = 75

#: The most contacts one ``POST /contacts/search`` page may ask for.
SEARCH_MAX_PAGE_LIMIT = 500


def search_filters(field: str, value: Any) -> list[dict[str, Any]]:
    """GHL search filters: a list (or its JSON text) of objects with ``field`` and ``operator``, or ``group``;
    empty or None means no filter."""
    if value in (None, "", []):
        return []
    filters = require_mapping_list(field, value)
    for i, item in enumerate(filters):
        if "group" not in item and not ("field" in item and "operator" in item):
            raise GHLInputError(f"{field}[{i}]", 'needs "field" and "operator" (or "group" and "filters")')
    try:
        json.dumps(filters)  # it becomes a request body (and trigger kwargs when deferred)
    except (TypeError, ValueError):
        raise GHLInputError(field, "values must be JSON: strings, numbers, booleans, lists, objects") from None
    return filters


def search_query(field: str, value: Any) -> str | None:
    """A GHL full-text query of at most :data:`MAX_QUERY_LENGTH` characters; None or empty means none."""
    if absent(value):
        return None
    if not isinstance(value, str) or len(value) > MAX_QUERY_LENGTH:
        raise GHLInputError(field, f"expected a string of at most {MAX_QUERY_LENGTH} characters, got {value!r}")
    return value
