"""OpenLineage for the operators that write outputs: what each run read and wrote, by OpenLineage's naming.

The openlineage provider is optional (extra ``[openlineage]``): nothing here imports it at module level, as
its developer guide asks; :func:`lineage` imports it when the OpenLineage listener calls an operator's
``get_openlineage_facets_on_complete``, which only happens when the provider is installed.

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


#: A dataset by OpenLineage's naming: ``(namespace, name)``.
DatasetName = tuple[str, str]


def lineage(inputs: Sequence[DatasetName], outputs: Sequence[DatasetName]) -> Any:
    """The ``OperatorLineage`` of a run: the datasets it read and those it wrote.

    :param inputs: ``(namespace, name)`` of each dataset read (:func:`ghl_dataset_name`, :func:`storage_dataset_name`).
    :param outputs: ``(namespace, name)`` of each dataset written.
    :return: an ``OperatorLineage`` of the openlineage provider (imported here, when called).
    """
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=[Dataset(*n) for n in inputs], outputs=[Dataset(*n) for n in outputs])
