"""Streaming, resumable export of GHL contacts into an :class:`~airflow_provider_ghl.export.output.ExportOutput`.

Pages are written as they arrive (constant memory), cut into part files of ``records_per_file`` that are
published whole; after each part the cursor of its last contact is checkpointed. A retried attempt discards
what was not checkpointed and continues from that cursor, so the result holds every contact exactly once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow_provider_ghl.export.output import Checkpoint, ExportOutput, PartWriter

log = logging.getLogger(__name__)

#: ``(contacts, total)`` pages starting after a ``searchAfter`` cursor (None: from the beginning).
PageSource = Callable[[list[Any] | None], Iterable[tuple[list[dict[str, Any]], int | None]]]

CSV_COLUMNS = (
    "id", "locationId", "firstName", "lastName", "name", "email", "phone", "companyName", "address1", "city",
    "state", "postalCode", "country", "timezone", "website", "type", "source", "assignedTo", "dnd", "tags",
    "dateOfBirth", "dateAdded", "dateUpdated", "businessId",
)  # fmt: skip


def custom_field_keys(definitions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Custom field id -> key (``contact.lead_score`` -> ``lead_score``), from the location's definitions."""
    keys = {}
    for definition in definitions:
        key = str(definition.get("fieldKey") or definition.get("name") or definition["id"])
        keys[definition["id"]] = key.removeprefix("contact.")
    return keys


def with_custom_fields_by_key(contact: dict[str, Any], keys: Mapping[str, str]) -> dict[str, Any]:
    """The contact plus ``customFieldsByKey``: its custom field values keyed by field key (unknown ids kept)."""
    by_key = {keys.get(cf.get("id"), cf.get("id")): cf.get("value") for cf in contact.get("customFields") or ()}
    return {**contact, "customFieldsByKey": by_key}


class Progress:
    """Logs records so far, rate and ETA against GHL's total every ``every`` pages."""

    def __init__(self, label: str, every: int, already: int = 0) -> None:
        self.label = label
        self.every = max(every, 1)
        self.pages = 0
        self.records = already
        self.started = time.monotonic()
        self.base = already

    def page(self, n: int, total: int | None) -> None:
        self.pages += 1
        self.records += n
        if self.pages % self.every:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (self.records - self.base) / elapsed
        eta = f", ETA {(total - self.records) / rate:.0f} s" if total and rate > 0 and total > self.records else ""
        of_total = f" of {total}" if total else ""
        log.info("%s: %d%s records, %.0f records/s%s", self.label, self.records, of_total, rate, eta)


class DatasetWriter:
    """Writes one dataset (``contacts``, ``tasks``, ...) as checkpointed part files.

    :param output: where the parts go.
    :param dataset: file name prefix and checkpoint key.
    :param checkpoint: progress restored from an earlier attempt (updated in place).
    :param records_per_file: records per published part.
    :param columns: CSV columns, for ``csv`` output.
    :param save: called after every published part to persist all checkpoints.
    """

    def __init__(
        self,
        output: ExportOutput,
        dataset: str,
        checkpoint: Checkpoint,
        *,
        records_per_file: int,
        columns: Sequence[str] | None = None,
        save: Callable[[], None],
    ) -> None:
        self.output = output
        self.dataset = dataset
        self.checkpoint = checkpoint
        self.records_per_file = records_per_file
        self.columns = columns
        self.save = save
        self._part: PartWriter | None = None

    def write(self, record: Mapping[str, Any]) -> None:
        if self._part is None:
            self._part = self.output.open_part(self.dataset, len(self.checkpoint.parts) + 1, self.columns)
        self._part.write(record)

    def boundary(self, cursor: list[Any] | None) -> None:
        """A point the export could resume from (``cursor``): publish the part if it is full."""
        if self._part is not None and self._part.records >= self.records_per_file:
            self._publish(cursor)

    def finish(self, cursor: list[Any] | None = None) -> None:
        if self._part is not None and self._part.records:
            self._publish(cursor)
        elif self._part is not None:
            self._part.abort()
            self._part = None

    def abort(self) -> None:
        if self._part is not None:
            self._part.abort()
            self._part = None

    def _publish(self, cursor: list[Any] | None) -> None:
        assert self._part is not None
        self.checkpoint.parts.append(self._part.publish())
        self.checkpoint.cursor = cursor
        self._part = None
        self.save()


def export_contacts(
    pages: PageSource,
    output: ExportOutput,
    *,
    custom_fields: Mapping[str, str],
    records_per_file: int = 10_000,
    progress_every: int = 10,
    label: str = "contacts",
    checkpoints: dict[str, Checkpoint] | None = None,
    save_meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Stream every contact ``pages`` yields into ``output``; resume from its checkpoint if there is one.

    Returns the dataset's summary: files, records, GHL's reported total, whether it resumed.
    """
    checkpoints = output.read_checkpoints() if checkpoints is None else checkpoints
    output.discard_unpublished(checkpoints)
    checkpoint = checkpoints.setdefault("contacts", Checkpoint())
    resumed_from = checkpoint.records
    columns = None
    if output.fmt == "csv":
        columns = [*CSV_COLUMNS, *(f"customFieldsByKey.{k}" for k in sorted(set(custom_fields.values())))]

    def save() -> None:
        output.write_checkpoints(checkpoints, **(save_meta or {}))

    writer = DatasetWriter(
        output, "contacts", checkpoint, records_per_file=records_per_file, columns=columns, save=save
    )
    progress = Progress(label, progress_every, already=resumed_from)
    total: int | None = checkpoint.extra.get("ghl_total")
    cursor = checkpoint.cursor
    try:
        for contacts, page_total in pages(cursor):
            if page_total is not None:
                total = page_total
                checkpoint.extra["ghl_total"] = total
            for contact in contacts:
                writer.write(with_custom_fields_by_key(contact, custom_fields))
            if contacts:
                cursor = contacts[-1].get("searchAfter")
                writer.boundary(cursor)
            progress.page(len(contacts), total)
        writer.finish(cursor)
    except BaseException:
        writer.abort()
        raise
    return {
        "files": [p.name for p in checkpoint.parts],
        "records": checkpoint.records,
        "ghl_total": total,
        "resumed_from_records": resumed_from,
    }


def utcnow_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
