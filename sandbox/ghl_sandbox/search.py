"""``POST /contacts/search`` semantics: filters, sort, ``page`` paging capped at 10,000 and ``searchAfter``."""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from typing import Any

from ghl_sandbox.data import Contact, Location, is_positive_int, parse_time

Predicate = Callable[[Contact], bool]

MAX_PAGE_LIMIT = 500
MAX_PAGED_RECORDS = 10_000
DATE_FIELDS = {"dateAdded": "added_ms", "dateUpdated": "updated_ms"}
STRING_FIELDS = {
    "id", "email", "phone", "firstNameLowerCase", "lastNameLowerCase", "fullNameLowerCase", "companyName",
    "businessId", "assignedTo", "type", "source", "country", "city", "state", "postalCode", "timezone",
}  # fmt: skip
SORT_FIELDS = set(DATE_FIELDS)
DEFAULT_SORT = [{"field": "dateAdded", "direction": "asc"}]


class SearchError(ValueError):
    """A search body GHL would refuse with 422; ``messages`` are the validator messages."""

    def __init__(self, *messages: str) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)


def _date_predicate(attr: str, value: Any, field: str) -> Predicate:
    if not isinstance(value, dict) or not value or set(value) - {"gt", "gte", "lt", "lte"}:
        raise SearchError(f"filters.{field}: range value must be an object with gt, gte, lt or lte")
    try:
        bounds = {op: parse_time(v) for op, v in value.items()}
    except ValueError:
        raise SearchError(f"filters.{field}: range bounds must be ISO-8601 dates or epoch ms") from None
    gt, gte, lt, lte = (bounds.get(k) for k in ("gt", "gte", "lt", "lte"))

    def pred(c: Contact) -> bool:
        v = getattr(c, attr)
        return (
            (gt is None or v > gt)
            and (gte is None or v >= gte)
            and (lt is None or v < lt)
            and (lte is None or v <= lte)
        )

    return pred


def _field_value(c: Contact, field: str) -> Any:
    return c.data.get(field)


def compile_filters(filters: Any, group: str = "AND") -> Predicate:
    """Turn GHL's filter list (items and nested groups) into one predicate; ``SearchError`` on bad input."""
    if not isinstance(filters, list):
        raise SearchError("filters must be an array")
    preds = [_compile_one(f) for f in filters]
    if group == "OR":
        return lambda c: any(p(c) for p in preds)
    return lambda c: all(p(c) for p in preds)


def _compile_one(item: Any) -> Predicate:
    if not isinstance(item, dict):
        raise SearchError("each filter must be an object")
    if "group" in item:
        if item["group"] not in ("AND", "OR"):
            raise SearchError("filters.group must be one of AND, OR")
        return compile_filters(item.get("filters", []), item["group"])
    field, op, value = item.get("field"), item.get("operator"), item.get("value")
    if not isinstance(field, str) or not isinstance(op, str):
        raise SearchError("each filter needs a field and an operator")
    if field in DATE_FIELDS:
        attr = DATE_FIELDS[field]
        if op == "range":
            return _date_predicate(attr, value, field)
        if op in ("exists", "not_exists"):
            return lambda c: op == "exists"
        raise SearchError(f"filters.{field}: operator {op} is not supported for dates; use range")
    if field == "tags":
        if op == "eq":
            wanted = value if isinstance(value, list) else [value]
            return lambda c: any(t in c.data.get("tags", []) for t in wanted)
        if op == "not_eq":
            return lambda c: value not in c.data.get("tags", [])
        if op in ("exists", "not_exists"):
            return lambda c: bool(c.data.get("tags")) == (op == "exists")
        raise SearchError(f"filters.tags: operator {op} is not supported")
    if field == "dnd":
        if op not in ("eq", "not_eq") or not isinstance(value, bool):
            raise SearchError("filters.dnd: use eq or not_eq with a boolean")
        return lambda c: (c.data.get("dnd") is value) == (op == "eq")
    if field not in STRING_FIELDS:
        raise SearchError(f"filters.field {field} is not supported")
    if op in ("exists", "not_exists"):
        return lambda c: bool(_field_value(c, field)) == (op == "exists")
    if not isinstance(value, str) or len(value) > 75:
        raise SearchError(f"filters.{field}: value must be a string of at most 75 characters")
    low = value.lower()
    if op == "eq":
        return lambda c: str(_field_value(c, field) or "").lower() == low
    if op == "not_eq":
        return lambda c: str(_field_value(c, field) or "").lower() != low
    if op == "contains":
        return lambda c: low in str(_field_value(c, field) or "").lower()
    if op == "not_contains":
        return lambda c: low not in str(_field_value(c, field) or "").lower()
    raise SearchError(f"filters.{field}: operator {op} is not supported")


def _sort_spec(sort: Any) -> list[tuple[str, bool]]:
    if sort is None:
        sort = DEFAULT_SORT
    if not isinstance(sort, list) or not sort:
        raise SearchError("sort must be a non-empty array")
    spec = []
    for s in sort:
        if not isinstance(s, dict) or s.get("field") not in SORT_FIELDS:
            raise SearchError(f"sort.field must be one of {', '.join(sorted(SORT_FIELDS))}")
        if s.get("direction", "asc") not in ("asc", "desc"):
            raise SearchError("sort.direction must be one of asc, desc")
        spec.append((DATE_FIELDS[s["field"]], s.get("direction", "asc") == "desc"))
    return spec


def _key(c: Contact, spec: list[tuple[str, bool]]) -> tuple[Any, ...]:
    # Descending fields are negated so one ascending order serves every sort; the id breaks ties.
    return (*(-getattr(c, attr) if desc else getattr(c, attr) for attr, desc in spec), c.id)


def cursor_of(c: Contact, spec: list[tuple[str, bool]]) -> list[Any]:
    """The ``searchAfter`` value GHL puts on each hit: its sort values, then its id."""
    return [*(getattr(c, attr) for attr, _ in spec), c.id]


def search(loc: Location, body: dict[str, Any]) -> tuple[list[Contact], int, list[tuple[str, bool]]]:
    """Run one search page; returns (hits, total matching, sort spec for the hits' cursors)."""
    errors: list[str] = []
    limit = body.get("pageLimit")
    if limit is None:
        errors.append("pageLimit should not be empty")
    elif not is_positive_int(limit):
        errors.append("pageLimit must be a positive integer")
    elif limit > MAX_PAGE_LIMIT:
        errors.append(f"pageLimit must not be greater than {MAX_PAGE_LIMIT}")
    page, after = body.get("page"), body.get("searchAfter")
    if page is not None and not is_positive_int(page):
        errors.append("page must be a positive integer")
    query = body.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > 75):
        errors.append("query must be a string of at most 75 characters")
    # A missing limit is among the errors; naming it here tells the type checker it is set from now on.
    if errors or limit is None:
        raise SearchError(*errors)
    spec = _sort_spec(body.get("sort"))
    filters = body.get("filters") or []
    pred = compile_filters(filters)
    cache_key = (json.dumps(filters, sort_keys=True), tuple(spec), query or "")
    cached = loc.search_cache.get(cache_key)
    if cached is None:
        q = (query or "").lower()
        hits = [
            c
            for c in loc.contacts.values()
            if pred(c) and (not q or q in c.data["fullNameLowerCase"] or q in c.data["emailLowerCase"])
        ]
        hits.sort(key=lambda c: _key(c, spec))
        cached = (hits, [_key(c, spec) for c in hits])
        loc.search_cache[cache_key] = cached
    hits, keys = cached
    if after is not None:
        if not isinstance(after, list) or len(after) != len(spec) + 1:
            raise SearchError(f"searchAfter must be an array of {len(spec) + 1} values (sort values, then id)")
        try:
            values = [int(v) for v in after[:-1]]
        except (TypeError, ValueError):
            raise SearchError("searchAfter sort values must be numbers") from None
        start_key = (*(-v if desc else v for v, (_, desc) in zip(values, spec, strict=True)), str(after[-1]))
        start = bisect.bisect_right(keys, start_key)
    else:
        page = page or 1
        if page * limit > MAX_PAGED_RECORDS:
            raise SearchError(f"page * pageLimit must not exceed {MAX_PAGED_RECORDS}; use searchAfter to read further")
        start = (page - 1) * limit
    return hits[start : start + limit], len(hits), spec
