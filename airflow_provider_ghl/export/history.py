"""Earlier runs of the same export: the previous committed one (through the layout) and what changed since."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.export.output import MANIFEST, read_json
from airflow_provider_ghl.layout import OutputLayout


@dataclass(frozen=True)
class CommittedExport:
    """A complete full export: its directory and its manifest."""

    root: ObjectStoragePath
    manifest: Mapping[str, Any]

    @property
    def contact_files(self) -> list[str]:
        return list(self.manifest["datasets"]["contacts"]["files"])


def previous_export(
    layout: OutputLayout, root: ObjectStoragePath, location_id: str, dataset: str = "contacts"
) -> CommittedExport | None:
    """The latest committed export of ``dataset`` and ``location_id`` before ``root`` in ``layout``, if any.

    A run directory without a manifest (unfinished, or not an export) or of another location or dataset is
    passed over.

    :param layout: the kind of output (``FULL_EXPORT``, ``ENRICHMENT``).
    :param root: this export's directory.
    :param location_id: this export's location.
    :param dataset: the manifest's ``dataset`` (``contacts`` for a full export, ``enrichment``).
    """
    for directory in layout.earlier_runs(root):
        manifest = read_json(directory / MANIFEST)
        if manifest and manifest.get("dataset") == dataset and manifest.get("location_id") == location_id:
            return CommittedExport(directory, manifest)
    return None


def custom_field_types(definitions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """``fieldKey`` -> ``dataType`` of a location's custom fields: what the manifest records of its schema."""
    return {str(d.get("fieldKey") or f"contact.{d['id']}"): str(d.get("dataType")) for d in definitions}


def schema_drift(previous: CommittedExport | None, current: Mapping[str, str]) -> dict[str, Any] | None:
    """Custom fields added, removed or retyped since ``previous`` (None when there is nothing to compare).

    :param previous: the previous committed run of the same export; its manifest's ``custom_fields``.
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
