"""A location's custom-field schema as an export records it, and how it drifted since a previous committed output."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from airflow_provider_ghl.outputs.runs import CommittedOutput


def custom_field_types(definitions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``fieldKey`` -> ``dataType`` of a location's custom fields: what the manifest records of its schema."""
    return {str(d.get("fieldKey") or f"contact.{d['id']}"): str(d.get("dataType")) for d in definitions}


def schema_drift(previous: CommittedOutput | None, current: Mapping[str, str]) -> dict[str, Any] | None:
    """Custom fields added, removed or retyped since ``previous`` (None when there is nothing to compare).

    :param previous: the previous committed output of the same task; its manifest's ``custom_fields``.
    :param current: this run's :func:`custom_field_types`.
    """
    before = previous.manifest.get("custom_fields") if previous is not None else None
    if previous is None or not isinstance(before, dict):
        return None
    return {
        "previous_export": str(previous.root),
        "added": sorted(set(current) - set(before)),
        "removed": sorted(set(before) - set(current)),
        "retyped": {
            k: {"from": before[k], "to": current[k]}
            for k in sorted(set(before) & set(current))
            if before[k] != current[k]
        },
    }
