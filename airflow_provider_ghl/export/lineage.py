"""OpenLineage for the export operators: GHL datasets in, the object-storage output directory out.

The openlineage provider is optional (extra ``[openlineage]``): nothing here imports it at module level, as
its developer guide asks; :func:`operator_lineage` imports it when the OpenLineage listener calls an
operator's ``get_openlineage_facets_on_complete``, which only happens when the provider is installed.

Naming follows OpenLineage's spec (``scheme://authority`` namespace, path name): ``file:///data/x`` is
``("file", "/data/x")``, ``s3://bucket/key`` is ``("s3://bucket", "key")``. GHL has no spec entry, so its data
is ``highlevel://<location_id>`` with the resource as name (``contacts``, ``tasks``, ``notes``,
``appointments``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

#: Namespace scheme of GHL datasets.
GHL_SCHEME = "highlevel"


def ghl_dataset_name(location_id: str, resource: str) -> tuple[str, str]:
    """``(namespace, name)`` of a GHL resource of a location: ``("highlevel://<location_id>", "contacts")``."""
    return f"{GHL_SCHEME}://{location_id}", resource


def storage_dataset_name(uri: str) -> tuple[str, str]:
    """``(namespace, name)`` of an object-storage location by OpenLineage's naming.

    :param uri: ``file:///p`` (or a plain absolute path), ``s3://bucket/key``, ``gs://bucket/key``...
    """
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return "file", parts.path.rstrip("/") or "/"
    return f"{parts.scheme}://{parts.netloc}", parts.path.strip("/")


def operator_lineage(location_id: str, resources: Sequence[str], output_uri: str) -> Any:
    """The ``OperatorLineage`` of an export: each GHL resource read, and the output directory written.

    :param location_id: the location exported.
    :param resources: the GHL resources read (``contacts``, then any children).
    :param output_uri: the output directory (``str`` of its ``ObjectStoragePath``).
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs = [Dataset(*ghl_dataset_name(location_id, r)) for r in resources]
    return OperatorLineage(inputs=inputs, outputs=[Dataset(*storage_dataset_name(output_uri))])


def writeback_lineage(input_uri: str, location_id: str, resources: Sequence[str]) -> Any:
    """The ``OperatorLineage`` of a write-back: the input file read, each GHL resource written.

    :param input_uri: the input file (``str`` of its ``ObjectStoragePath``).
    :param location_id: the location written.
    :param resources: the GHL resources written (``contacts``, and ``tasks`` / ``notes`` when records have them).
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    outputs = [Dataset(*ghl_dataset_name(location_id, r)) for r in resources]
    return OperatorLineage(inputs=[Dataset(*storage_dataset_name(input_uri))], outputs=outputs)
