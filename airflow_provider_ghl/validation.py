"""Checks of operator and sensor arguments, run before the first request.

Each raises :class:`~airflow_provider_ghl.exceptions.GHLInputError` naming the argument, so a bad templated value
fails the task at once (no retry) and nothing is sent to GHL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import pendulum

from airflow_provider_ghl.exceptions import GHLInputError


def require_id(field: str, value: Any) -> str:
    """A non-empty id string without whitespace or slashes (it goes into a URL path)."""
    if not isinstance(value, str) or not value.strip():
        raise GHLInputError(field, f"an id is required, got {value!r}")
    value = value.strip()
    if any(c.isspace() for c in value) or "/" in value:
        raise GHLInputError(field, f"not a valid id: {value!r}")
    return value


def optional_id(field: str, value: Any) -> str | None:
    """:func:`require_id` for an argument that may be left out (None or empty)."""
    return None if value in (None, "") else require_id(field, value)


def require_mapping(field: str, value: Any, *, allow_empty: bool = False) -> dict[str, Any]:
    """A JSON object; a JSON string (e.g. a rendered template) is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise GHLInputError(field, "expected a JSON object, got a string that is not JSON") from None
    if not isinstance(value, Mapping):
        raise GHLInputError(field, f"expected a JSON object (dict), got {type(value).__name__}")
    if not value and not allow_empty:
        raise GHLInputError(field, "must not be empty")
    bad = [k for k in value if not isinstance(k, str) or not k]
    if bad:
        raise GHLInputError(field, f"keys must be non-empty strings, got {bad!r}")
    return dict(value)


def require_mapping_list(field: str, value: Any) -> list[dict[str, Any]]:
    """A list of JSON objects (e.g. GHL search filters); a JSON string is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise GHLInputError(field, "expected a list of JSON objects, got a string that is not JSON") from None
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes, Mapping)):
        raise GHLInputError(field, f"expected a list of JSON objects, got {type(value).__name__}")
    return [require_mapping(f"{field}[{i}]", item) for i, item in enumerate(value)]


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


def require_str_list(field: str, value: Any, *, allow_empty: bool = False) -> list[str]:
    """A list of non-empty strings; one string or a JSON list string is accepted too."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except ValueError:
                raise GHLInputError(field, "expected a list of strings, got a string that is not a JSON list") from None
        else:
            value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise GHLInputError(field, f"expected a list of strings, got {type(value).__name__}")
    items = list(value)
    bad = [v for v in items if not isinstance(v, str) or not v.strip()]
    if bad:
        raise GHLInputError(field, f"every item must be a non-empty string, got {bad[:3]!r}")
    if not items and not allow_empty:
        raise GHLInputError(field, "must not be empty")
    return [v.strip() for v in items]


def require_id_list(field: str, value: Any) -> list[str]:
    """A non-empty list of ids (see :func:`require_id`)."""
    return [require_id(f"{field}[{i}]", v) for i, v in enumerate(require_str_list(field, value))]


def parse_datetime(value: Any) -> datetime | None:
    """An aware datetime from a datetime or an ISO-8601 string, or None when it is neither.

    Naive values are taken as UTC: GHL writes some dates (appointments) as ``2021-07-16 11:00:00``, no zone.
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else pendulum.instance(value, tz="UTC")
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = pendulum.parse(value.strip(), tz="UTC")
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return None
    return parsed if isinstance(parsed, datetime) else None


def require_datetime(field: str, value: Any) -> datetime:
    """:func:`parse_datetime`, for an argument that must be a date-time."""
    parsed = parse_datetime(value)
    if parsed is None:
        raise GHLInputError(field, f"expected a datetime or an ISO-8601 date-time, got {value!r}")
    return parsed


def require_window(since_field: str, since: datetime, until_field: str, until: datetime) -> None:
    """A half-open ``[since, until)`` window must not be empty."""
    if until <= since:
        raise GHLInputError(until_field, f"must be after {since_field} ({since.isoformat()}), got {until.isoformat()}")


def optional_text(field: str, value: Any, *, required: bool = False) -> str | None:
    """Text (None allowed unless ``required``; a required text must not be blank)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise GHLInputError(field, f"expected {'non-empty ' if required else ''}text, got {value!r}")
    return value


def require_bool(field: str, value: Any) -> bool:
    """A real boolean (templated "true"/"false" strings are accepted)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise GHLInputError(field, f"expected true or false, got {value!r}")


def require_choice(field: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise GHLInputError(field, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def require_int(field: str, value: Any, *, minimum: int, maximum: int | None = None) -> int:
    """An integer in ``[minimum, maximum]`` (a templated digit string is accepted)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GHLInputError(field, f"expected an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        raise GHLInputError(field, f"must be {bound}, got {value}")
    return value
