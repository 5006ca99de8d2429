"""Deleted contacts as tombstones: the ids of the previous full export that this one no longer has.

GHL's search never returns a deleted contact, so a full export cannot see a deletion directly. It can see an
absence: an id of the previous committed full export of the same location (the task's previous output, or
the one named by ``previous_output``) missing from this one. Those ids
are written as the ``deleted`` dataset of this export, in its format, before its manifest (so in the same
commit), each with the time of the export that noticed.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable, Iterator, Sequence

import orjson
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.outputs.columns import TOMBSTONE_COLUMNS
from airflow_provider_ghl.outputs.directory import OutputDirectory, PartInfo
from airflow_provider_ghl.outputs.runs import CommittedOutput

#: The tombstone dataset's name.
DELETED = "deleted"


def contact_ids(root: ObjectStoragePath, files: Iterable[str], fmt: str) -> Iterator[str]:
    """The ``id`` of every record in ``files`` of ``root`` (``jsonl``, ``csv`` or ``parquet``, gzip or not).

    :param root: the export directory.
    :param files: its part file names.
    :param fmt: the export's format.
    """
    for name in files:
        path = root / name
        if fmt == "parquet":
            from airflow_provider_ghl.outputs.parquet import parquet_ids

            yield from parquet_ids(path)
            continue
        with path.open("rb") as raw:
            data = raw.read()
        if name.endswith(".gz"):
            data = gzip.decompress(data)
        if fmt == "csv":
            yield from (row["id"] for row in csv.DictReader(io.StringIO(data.decode("utf-8"))))
        else:
            yield from (orjson.loads(line)["id"] for line in data.splitlines() if line.strip())


def vanished_ids(previous: CommittedOutput, current: OutputDirectory, current_files: Sequence[str]) -> list[str]:
    """Ids of ``previous`` that the current export (its committed ``current_files``) does not have, sorted.

    Holds the previous export's ids in memory (one set), streams the current ones.
    """
    gone = set(contact_ids(previous.root, previous.files("contacts"), previous.format))
    for contact_id in contact_ids(current.root, current_files, current.fmt):
        gone.discard(contact_id)
    return sorted(gone)


def write_tombstones(
    output: OutputDirectory,
    ids: Sequence[str],
    *,
    location_id: str,
    detected_at: str,
    records_per_file: int,
) -> list[PartInfo]:
    """Write one tombstone per id as the ``deleted`` dataset of ``output``; its published parts.

    :param output: this export's output.
    :param ids: the contacts that disappeared.
    :param location_id: their location.
    :param detected_at: when this export started (ISO 8601, UTC): the time the deletion was noticed.
    :param records_per_file: records per part, as for the contacts.
    """
    parts: list[PartInfo] = []
    for start in range(0, len(ids), records_per_file):
        part = output.open_part(
            DELETED, len(parts) + 1, output.record_layouts([DELETED], {DELETED: TOMBSTONE_COLUMNS})[DELETED]
        )
        try:
            for contact_id in ids[start : start + records_per_file]:
                part.write({"id": contact_id, "locationId": location_id, "detectedAt": detected_at})
        except BaseException:
            part.abort()
            raise
        parts.append(part.publish())
    return parts
