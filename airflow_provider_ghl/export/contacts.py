"""Streaming, resumable export of GHL contacts into an :class:`~airflow_provider_ghl.outputs.directory.OutputDirectory`.

Pages are written as they arrive (constant memory), cut into part files of ``records_per_file`` that are
published whole; at each commit the cursor of the last contact written is checkpointed. A retried attempt
discards what was not committed and continues from that cursor, so the result holds every record exactly once.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow_provider_ghl.outputs.columns import CONTACT_COLUMNS
from airflow_provider_ghl.outputs.directory import Checkpoint, OutputDirectory, PartWriter

if TYPE_CHECKING:
    from airflow_provider_ghl.outputs.parquet import ParquetTable

#: Each dataset's record layout: CSV columns, a Parquet table or None (see ``OutputDirectory.record_layouts``).
Layouts = Mapping[str, "Sequence[str] | ParquetTable | None"]

log = logging.getLogger(__name__)

#: ``(contacts, total)`` pages starting after a ``searchAfter`` cursor (None: from the beginning).
PageSource = Callable[[list[Any] | None], Iterable[tuple[list[dict[str, Any]], int | None]]]


def custom_field_keys(definitions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Custom field id -> key (``contact.lead_score`` -> ``lead_score``), from the location's definitions."""
    keys = {}
    for definition in definitions:
        key = str(definition.get("fieldKey") or definition.get("name") or definition["id"])
        keys[definition["id"]] = key.removeprefix("contact.")
    return keys


def with_custom_fields_by_key(contact: dict[str, Any], keys: Mapping[str, str] | None) -> dict[str, Any]:
    """The contact plus ``customFieldsByKey``: its custom field values keyed by field key (unknown ids kept).

    :param keys: field id -> key; None when the definitions could not be read (no scope): the contact as it is.
    """
    if keys is None:
        return contact
    by_key = {keys.get(cf.get("id"), cf.get("id")): cf.get("value") for cf in contact.get("customFields") or ()}
    return {**contact, "customFieldsByKey": by_key}


_frozen_lock = threading.Lock()
_frozen_depth = 0
_unfreeze_at_end = False


@contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """Keep the objects that exist now out of the garbage collector's full collections while the block runs.

    A worker holds Airflow's whole import-time heap (some 190,000 objects) and every page of contacts allocates
    thousands of containers, so the collector ran a full collection every few pages and re-scanned that heap
    each time: 40 % of the export's client CPU. ``gc.freeze`` moves what exists now to the permanent
    generation (nothing of it is garbage the export makes); the block's own objects are collected as usual.
    When the last concurrent export of the process ends the heap is handed back (``gc.unfreeze``), unless
    the process had frozen objects of its own before (a forked worker may): its freeze is left as it was.
    """
    global _frozen_depth, _unfreeze_at_end
    with _frozen_lock:
        if _frozen_depth == 0:
            _unfreeze_at_end = gc.get_freeze_count() == 0
            gc.freeze()
        _frozen_depth += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_depth -= 1
            if _frozen_depth == 0 and _unfreeze_at_end:
                gc.unfreeze()


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


class DatasetWriters:
    """Part writers for several datasets (``contacts``, ``tasks``, ...) that are committed together.

    A commit publishes every open part and checkpoints one cursor for all datasets, so after a crash contacts
    and their children resume from the same point: nothing is lost and nothing comes twice.

    :param output: where the parts go.
    :param checkpoints: progress restored from an earlier attempt, per dataset (updated in place).
    :param columns: the datasets to write, each with its record layout (``OutputDirectory.record_layouts``).
    :param records_per_file: a part this full triggers a commit of all datasets.
    :param identity: what the run exports (location, window, format); stored with the checkpoint.
    """

    def __init__(
        self,
        output: OutputDirectory,
        checkpoints: dict[str, Checkpoint],
        columns: Layouts,
        *,
        records_per_file: int,
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        self.output = output
        self.checkpoints = checkpoints
        self.columns = columns
        self.records_per_file = records_per_file
        self.identity = dict(identity or {})
        for dataset in columns:
            checkpoints.setdefault(dataset, Checkpoint())
        self._parts: dict[str, PartWriter] = {}

    @property
    def cursor(self) -> list[Any] | None:
        """Where the last commit stopped (the same for every dataset)."""
        return next(iter(self.checkpoints.values())).cursor

    def write(self, dataset: str, record: Mapping[str, Any]) -> None:
        part = self._parts.get(dataset)
        if part is None:
            number = len(self.checkpoints[dataset].parts) + 1
            part = self._parts[dataset] = self.output.open_part(dataset, number, self.columns[dataset])
        part.write(record)

    def commit_if_full(self, cursor: list[Any] | None) -> None:
        """A point the export could resume from (``cursor``): commit when some part is full."""
        if any(p.records >= self.records_per_file for p in self._parts.values()):
            self.commit(cursor)

    def commit(self, cursor: list[Any] | None) -> None:
        for dataset, part in self._parts.items():
            if part.records:
                self.checkpoints[dataset].parts.append(part.publish())
            else:
                part.abort()
        self._parts.clear()
        for checkpoint in self.checkpoints.values():
            checkpoint.cursor = cursor
        self.output.write_checkpoints(self.checkpoints, self.identity)

    def abort(self) -> None:
        for part in self._parts.values():
            part.abort()
        self._parts.clear()

    def summary(self) -> dict[str, dict[str, Any]]:
        summary: dict[str, dict[str, Any]] = {}
        for dataset, cp in self.checkpoints.items():
            summary[dataset] = {"files": [p.name for p in cp.parts], "records": cp.records}
            if self.output.fmt == "parquet":
                summary[dataset]["type_mismatches"] = sum_counts(p.type_mismatches for p in cp.parts)
        return summary


def sum_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Per-key totals of several counters (e.g. the type mismatches of every part)."""
    total: dict[str, int] = {}
    for count in counts:
        for key, n in count.items():
            total[key] = total.get(key, 0) + n
    return dict(sorted(total.items()))


#: Turns one page of contacts into ``(dataset, record)`` pairs to write.
PageTransform = Callable[[list[dict[str, Any]]], Iterable[tuple[str, Mapping[str, Any]]]]


def run_export(
    pages: PageSource,
    output: OutputDirectory,
    transform: PageTransform,
    columns: Layouts,
    *,
    records_per_file: int = 10_000,
    progress_every: int = 10,
    label: str = "contacts",
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Stream contact pages through ``transform`` into ``output``, resuming from its checkpoint if any.

    Returns per-dataset files and record counts, GHL's reported total and how many contacts an earlier
    attempt had already committed.
    """
    identity = {**(identity or {}), "format": output.fmt, "compression": output.compression, "datasets": list(columns)}
    checkpoints = output.read_checkpoints(identity)
    output.discard_unpublished(checkpoints)
    writers = DatasetWriters(output, checkpoints, columns, records_per_file=records_per_file, identity=identity)
    contacts_cp = checkpoints["contacts"]
    resumed_from = contacts_cp.records
    progress = Progress(label, progress_every, already=resumed_from)
    total: int | None = contacts_cp.extra.get("ghl_total")
    cursor = writers.cursor
    with long_lived_heap_frozen():
        try:
            for contacts, page_total in pages(cursor):
                if page_total is not None and total is None:
                    # GHL's total when the run began; later pages may count contacts created since.
                    total = contacts_cp.extra["ghl_total"] = page_total
                for dataset, record in transform(contacts):
                    writers.write(dataset, record)
                if contacts:
                    cursor = contacts[-1].get("searchAfter")
                    writers.commit_if_full(cursor)
                progress.page(len(contacts), total)
            writers.commit(cursor)
        except BaseException:
            writers.abort()
            raise
    return {"datasets": writers.summary(), "ghl_total": total, "resumed_from_records": resumed_from}


def export_contacts(
    pages: PageSource,
    output: OutputDirectory,
    *,
    custom_fields: Mapping[str, str] | None,
    definitions: Sequence[Mapping[str, Any]] = (),
    records_per_file: int = 10_000,
    progress_every: int = 10,
    label: str = "contacts",
    identity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every contact ``pages`` yields, with ``customFieldsByKey``: the full export's one dataset.

    :param custom_fields: custom field id -> short key (``customFieldsByKey``, the CSV columns); None when the
        definitions could not be read (no scope): records keep only the raw ``customFields`` (in CSV one column
        of ``[{id, value}]`` JSON).
    :param definitions: the custom field definitions (the Parquet columns; may be empty).
    """
    by_key = [f"customFieldsByKey.{k}" for k in sorted(set(custom_fields.values()))] if custom_fields else []
    csv_columns = [*CONTACT_COLUMNS, *(by_key if custom_fields is not None else ["customFields"])]
    result = run_export(
        pages,
        output,
        lambda contacts: (("contacts", with_custom_fields_by_key(c, custom_fields)) for c in contacts),
        output.record_layouts(["contacts"], {"contacts": csv_columns}, definitions),
        records_per_file=records_per_file,
        progress_every=progress_every,
        label=label,
        identity=identity,
    )
    contacts = result.pop("datasets")["contacts"]
    return {**contacts, **result}
