"""Apply one claimed inbox batch: the final state of every record it changes, written whole, then acknowledged.

For each record the batch touches (``(kind, id)``, see :mod:`~airflow_provider_ghl.webhooks.changes`) its events
are taken in ``timestamp`` order (last writer wins; arrival order breaks a tie). An event older than the version
the inbox stored for the record when an earlier batch was applied is **stale** and ignored; so is a repeat of an
event already in the batch under another ``webhookId`` (a **duplicate**). What is left folds into one record:
a ``put`` replaces it, a ``merge`` changes some fields, a ``delete`` makes it a tombstone.

The API is asked only for what the payloads lack (:class:`RecordSource`): the contact of a tag or DND update whose
payload carries only the changed fields, the task of a partial ``TaskComplete``, the ``contactId`` of a task
whose payload has none. Everything else is written from the payloads.

The batch's folder (``<webhooks folder>/<batch_id>/``) gets one part file per non-empty dataset (``contacts``,
``tombstones``, ``tasks``, ``notes``, ``appointments``), published whole, then ``_manifest.json`` (the commit
marker), then the inbox's ``ack`` with the new versions. Exactly once: a task killed before its ack is run again
on the same batch (``claim`` returns the open batch); when the manifest is already there the files are not
rewritten, the ack is repeated (with the same versions, computed from the same events), and nothing is applied
twice. Unpublished files of a killed attempt are removed before a batch is written again.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.exceptions import GHLNotFoundError
from airflow_provider_ghl.outputs.directory import OutputDirectory
from airflow_provider_ghl.outputs.runs import RunClock, committed_manifest, read_committed
from airflow_provider_ghl.webhooks.changes import (
    CARRIED_OVER,
    CHILD_KINDS,
    CSV_LAYOUTS,
    DATASETS,
    DELETED_FLAG,
    TOMBSTONES,
    Change,
    change_of,
    child_tombstone,
    contact_tombstone,
    event_fields,
    parquet_tables,
)
from airflow_provider_ghl.webhooks.inbox import BATCH_ID, LIFECYCLE_EVENTS, event_instant

if TYPE_CHECKING:
    from airflow_provider_ghl.hooks.ghl import GHLHook
    from airflow_provider_ghl.webhooks.inbox import Batch, Inbox, InboxEvent

log = logging.getLogger(__name__)

#: A record's key in the inbox's versions: ``(kind, record_id)``.
Key = tuple[str, str]
#: The location-wide task search answers at most this many tasks per request.
TASK_SEARCH_PAGE = 100


class RecordSource(Protocol):
    """Where a record a payload lacks comes from (the API); None when it no longer exists."""

    def contact(self, contact_id: str) -> dict[str, Any] | None: ...

    def task(self, task_id: str, *, contact_id: str | None, title: str | None) -> dict[str, Any] | None: ...


class HookRecordSource:
    """:class:`RecordSource` through a :class:`~airflow_provider_ghl.hooks.ghl.GHLHook` (its budget and retries).

    A task without its contact is found by the location-wide task search, by its title when the payload has one
    (one request, usually), else by one walk of the location's tasks shared by every such task of the batch.

    :param hook: the task's hook.
    :param location_id: the batch's location.
    """

    def __init__(self, hook: GHLHook, location_id: str) -> None:
        self.hook = hook
        self.location_id = location_id
        self._all_tasks: dict[str, dict[str, Any]] | None = None

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        try:
            contact: dict[str, Any] = self.hook.get_contact(contact_id)
        except GHLNotFoundError:
            return None
        return contact

    def task(self, task_id: str, *, contact_id: str | None, title: str | None) -> dict[str, Any] | None:
        if contact_id:
            try:
                task: dict[str, Any] = self.hook.get_task(contact_id, task_id)
            except GHLNotFoundError:
                return None
            return {**task, "contactId": task.get("contactId") or contact_id}
        if title:
            for found in self._search(query=title):
                if found.get("id") == task_id:
                    return found
        if self._all_tasks is None:
            self._all_tasks = {str(t.get("id")): t for t in self._search()}
        return self._all_tasks.get(task_id)

    def _search(self, query: str | None = None) -> Iterator[dict[str, Any]]:
        tasks = self.hook.iter_location_tasks(query=query, page_limit=TASK_SEARCH_PAGE, location_id=self.location_id)
        yield from tasks


@dataclass
class _Fold:
    """One record's events folded in order."""

    last: Change
    state: dict[str, Any] | None = None
    has_record: bool = False
    deleted: bool = False
    contact_id: str | None = None


@dataclass
class BatchPlan:
    """What a batch does, worked out from its events and the stored versions alone (no request, no write).

    :param records: dataset -> the records to write (those needing the API are in ``lookups``).
    :param lookups: records whose payloads lack something, by key, with their fold.
    :param versions: ``(kind, id)`` -> the timestamp of the newest applied event: what ``ack`` stores.
    :param counts: events, ignored, stale, duplicates, applied.
    :param event_types: events per ``type``.
    :param uninstalled_at: the ``timestamp`` of the batch's last ``INSTALL``/``UNINSTALL`` event when it is an
        uninstall (the app left the location), else None.
    """

    records: dict[str, list[dict[str, Any]]]
    lookups: dict[Key, _Fold]
    versions: dict[Key, str]
    counts: dict[str, int]
    event_types: dict[str, int]
    uninstalled_at: str | None = None


def plan_batch(events: Sequence[InboxEvent], stored: Mapping[Key, str]) -> BatchPlan:
    """Fold ``events`` (one batch, in seq order) into the final state of each record they touch.

    :param events: the batch's events.
    :param stored: the versions of the records as of the batches applied before (``Inbox.versions``).
    """
    counts = Counter({"events": len(events), "ignored": 0, "stale": 0, "duplicates": 0, "applied": 0})
    by_key: dict[Key, list[Change]] = {}
    seen: set[Any] = set()
    for event in events:
        change = change_of(event)
        if change is None:
            counts["ignored"] += 1
            continue
        # GHL may send one change twice under two webhookIds; the same id twice is the inbox's to refuse.
        fingerprint = (event.webhook_id,), (event.type, event.timestamp, repr(sorted(change.fields.items())))
        if fingerprint[0] in seen or fingerprint[1] in seen:
            counts["duplicates"] += 1
            continue
        seen.update(fingerprint)
        version = stored.get(change.key)
        if version is not None and change.instant < event_instant(version):
            counts["stale"] += 1
            continue
        counts["applied"] += 1
        by_key.setdefault(change.key, []).append(change)

    records: dict[str, list[dict[str, Any]]] = {name: [] for name in DATASETS}
    lookups: dict[Key, _Fold] = {}
    versions: dict[Key, str] = {}
    # Output in the order the records last changed, so a re-run writes the very same files.
    for key, changes in sorted(by_key.items(), key=lambda item: max(c.order for c in item[1])):
        changes.sort(key=lambda c: c.order)
        fold = _fold(changes)
        versions[key] = changes[-1].event.timestamp
        record = finished_record(fold)
        if record is None:
            lookups[key] = fold
        else:
            records[dataset_of(fold)].append(record)
    types = dict(Counter(e.type for e in events))
    return BatchPlan(records, lookups, versions, dict(counts), types, _uninstalled_at(events))


def _uninstalled_at(events: Sequence[InboxEvent]) -> str | None:
    """The last lifecycle event's timestamp when it is an ``UNINSTALL`` (by time, then arrival), else None."""
    lifecycle = [(event_instant(e.timestamp), i, e) for i, e in enumerate(events) if e.type in LIFECYCLE_EVENTS]
    if not lifecycle:
        return None
    last = max(lifecycle, key=lambda item: item[:2])[2]
    return last.timestamp if last.type == "UNINSTALL" else None


def _fold(changes: Sequence[Change]) -> _Fold:
    fold = _Fold(last=changes[0])
    for change in changes:
        fold.contact_id = change.fields.get("contactId") or fold.contact_id
        if change.action == "delete":
            fold.state, fold.has_record, fold.deleted = None, False, True
        elif change.action == "put":
            kept = {k: v for k, v in (fold.state or {}).items() if k in CARRIED_OVER.get(change.kind, ())}
            fold.state, fold.has_record, fold.deleted = {**kept, **change.fields}, True, False
        elif fold.deleted:
            continue  # a change stamped after the record's deletion changes nothing
        else:
            fold.state = {**(fold.state or {}), **change.fields}
            fold.has_record = fold.has_record or change.carries_record
        fold.last = change
    return fold


def dataset_of(fold: _Fold) -> str:
    kind = fold.last.kind
    return TOMBSTONES if kind == "contacts" and fold.deleted else kind


def finished_record(fold: _Fold, fetched: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The record to write for ``fold``; None while it needs the API (a base record, or a task's contact).

    :param fold: the record's folded events.
    :param fetched: what the API returned for it (its current state, at least as new as the events).
    """
    change, kind = fold.last, fold.last.kind
    if fold.deleted:
        return contact_tombstone(change) if kind == "contacts" else child_tombstone(change, fold.contact_id)
    if fetched is not None:
        record = dict(fetched)
    elif fold.has_record and fold.state is not None:
        record = dict(fold.state)
    else:
        return None
    if kind in CHILD_KINDS:
        record["contactId"] = record.get("contactId") or fold.contact_id
        if kind == "tasks" and not record["contactId"] and fetched is None:
            return None
        record.setdefault("locationId", change.event.location_id)
        record[DELETED_FLAG] = False
    return {**record, **event_fields(change)}


def resolve_lookups(plan: BatchPlan, source: RecordSource | None) -> tuple[int, list[Key]]:
    """Ask ``source`` for what the payloads lacked and add those records to the plan.

    :return: how many records were looked up, and the keys left out (gone since, or no source to ask).
    """
    looked_up, unresolved = 0, []
    for key, fold in plan.lookups.items():
        kind, record_id = key
        fetched: dict[str, Any] | None = None
        if source is not None:
            looked_up += 1
            if kind == "contacts":
                fetched = source.contact(record_id)
            elif kind == "tasks":
                title = (fold.state or {}).get("title")
                found = source.task(record_id, contact_id=fold.contact_id, title=title)
                # Only the contact was missing: the payload's fields stand, the API adds the contactId.
                if found is not None and fold.has_record and fold.state is not None:
                    found = {**fold.state, "contactId": found.get("contactId")}
                fetched = found
        record = finished_record(fold, fetched) if fetched is not None else None
        if record is None:
            unresolved.append(key)
            continue
        plan.records[dataset_of(fold)].append(record)
    return looked_up, unresolved


@dataclass
class BatchResult:
    """An applied batch: its folder and its manifest; ``already`` when an earlier attempt had written it."""

    batch: Batch
    folder: ObjectStoragePath
    manifest: dict[str, Any]
    already: bool = False
    requests: int = 0
    paths: list[str] = field(default_factory=list)


def write_datasets(output: OutputDirectory, records: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, Any]:
    """One part file per non-empty dataset, each published whole; the manifest's ``datasets``."""
    tables: Mapping[str, Any] = parquet_tables() if output.fmt == "parquet" else {}
    datasets: dict[str, Any] = {}
    for name in DATASETS:
        rows = list(records.get(name, ()))
        summary: dict[str, Any] = {"files": [], "records": 0}
        if rows:
            layout = tables[name] if output.fmt == "parquet" else CSV_LAYOUTS[name] if output.fmt == "csv" else None
            part = output.open_part(name, 1, layout)
            try:
                part.write_many(rows)
            except BaseException:
                part.abort()
                raise
            info = part.publish()
            summary = {"files": [info.name], "records": info.records}
            if output.fmt == "parquet":
                summary["type_mismatches"] = info.type_mismatches
        datasets[name] = summary
    return datasets


def apply_batch(
    inbox: Inbox,
    batch: Batch,
    folder: ObjectStoragePath,
    *,
    fmt: str = "jsonl",
    compression: str | None = None,
    neutralise_formulas: bool = True,
    source: RecordSource | None = None,
    requests: Callable[[], int] | None = None,
) -> BatchResult:
    """Apply ``batch`` of ``inbox`` into ``folder / batch.batch_id``, then acknowledge it.

    :param inbox: the inbox the batch was claimed from.
    :param batch: the claimed batch.
    :param folder: the location's folder of batches (each batch a folder named by its ``batch_id``).
    :param fmt: ``jsonl``, ``csv`` or ``parquet``.
    :param compression: None or ``gzip``.
    :param neutralise_formulas: CSV: text cells that would start a spreadsheet formula get a leading ``'``.
    :param source: where to get what payloads lack (None: never ask; such records are counted unresolved).
    :param requests: a callable giving the API requests sent so far (for the manifest), e.g. the hook's stats.
    """
    clock = RunClock()
    output = OutputDirectory(
        folder / batch.batch_id, fmt=fmt, compression=compression, neutralise_formulas=neutralise_formulas
    )
    events = inbox.events(batch)
    keys = {c.key for c in map(change_of, events) if c is not None}
    plan = plan_batch(events, inbox.versions(batch.location_id, keys))
    identity = {"dataset": "webhooks", "location_id": batch.location_id, "batch_id": batch.batch_id}
    committed = committed_manifest(output, identity, field="output_path")
    if committed is not None:
        log.info(
            "Batch %s of %s already written (manifest found): acknowledging it.", batch.batch_id, batch.location_id
        )
        inbox.ack(batch, plan.versions)
        return BatchResult(batch, output.root, committed, already=True)
    output.discard_unpublished({})
    before = requests() if requests is not None else 0
    looked_up, unresolved = resolve_lookups(plan, source)
    sent = (requests() if requests is not None else 0) - before
    datasets = write_datasets(output, plan.records)
    manifest = {
        "dataset": "webhooks",
        "location_id": batch.location_id,
        "batch_id": batch.batch_id,
        "first_seq": batch.first_seq,
        "last_seq": batch.last_seq,
        "format": output.fmt,
        "compression": output.compression,
        **plan.counts,
        "event_types": dict(sorted(plan.event_types.items())),
        "uninstalled_at": plan.uninstalled_at,
        "looked_up": looked_up,
        "unresolved": [list(k) for k in unresolved],
        "datasets": datasets,
        "files": [f for d in datasets.values() for f in d["files"]],
        **clock.facts(requests=sent),
    }
    output.write_manifest(manifest)
    inbox.ack(batch, plan.versions)
    log.info(
        "Applied batch %s of %s: %d events (%d stale, %d duplicates, %d ignored), %s; %d API requests.",
        batch.batch_id,
        batch.location_id,
        plan.counts["events"],
        plan.counts["stale"],
        plan.counts["duplicates"],
        plan.counts["ignored"],
        ", ".join(f"{d['records']} {n}" for n, d in datasets.items() if d["records"]) or "no records",
        sent,
    )
    return BatchResult(batch, output.root, manifest, requests=sent)


def drain(
    inbox: Inbox,
    location_id: str,
    folder: ObjectStoragePath,
    *,
    max_events: int = 10_000,
    stopped: Callable[[], bool] | None = None,
    **apply_kwargs: Any,
) -> list[BatchResult]:
    """Apply every batch of ``location_id`` up to the high-water mark seen at the start.

    The asset event that started the run is only a doorbell: events that arrived meanwhile, or whose asset
    events were merged into another run, are all here. Events arriving while it drains wait for the next run
    (so a steady stream cannot keep one task busy for ever), unless a batch claimed anyway includes them.

    :param inbox: the inbox.
    :param location_id: the location.
    :param folder: the location's folder of batches.
    :param max_events: the most events per batch.
    :param stopped: whether the task was stopped (its ``on_kill``): no further batch is claimed; the applied
        ones stay applied.
    :param apply_kwargs: see :func:`apply_batch`.
    """
    high_water = inbox.pending().get(location_id)
    results: list[BatchResult] = []
    while not (stopped is not None and stopped()):
        batch = inbox.claim(location_id, limit=max_events)
        if batch is None:
            break
        results.append(apply_batch(inbox, batch, folder, **apply_kwargs))
        if high_water is None or batch.last_seq >= high_water:
            break
    return results


def committed_batches(folder: ObjectStoragePath) -> list[dict[str, Any]]:
    """The manifests of the committed batches in a location's folder of batches, in apply order."""
    try:
        batches = sorted((p for p in folder.iterdir() if BATCH_ID.fullmatch(p.name)), key=lambda p: p.name)
    except FileNotFoundError:
        return []
    committed = (read_committed(p) for p in batches)
    return [dict(c.manifest) for c in committed if c is not None]
