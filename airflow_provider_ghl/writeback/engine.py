"""Apply each row of an input file to GHL: match, diff, write what changed, create children once.

Rows run on a bounded thread pool, lazily fed like the hook's fan-out (:mod:`~airflow_provider_ghl.hooks.fanout`),
every request through the hook's one funnel and so under the token's shared budget.

Writes are never repeated blindly. Each is sent once (``max_attempts=1``: a 429 or a recovered token is still
repeated by the funnel, GHL having done nothing); when its answer is lost or is a 5xx, GHL is read again and the
record compared anew, and only what is still missing is written. So an update whose answer was lost is not sent
twice, and a create is repeated only after the duplicate lookup shows it did not happen. A create that GHL
refuses as a duplicate (400 with ``meta.contactId``: the contact appeared since the lookup) updates that contact.

A dry run makes the same reads and plans the same writes, and sends none.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_ghl.exceptions import (
    GHLApiError,
    GHLAuthError,
    GHLDuplicateContactError,
    GHLServerError,
    GHLUnexpectedResponseError,
)
from airflow_provider_ghl.hooks import operations as ops
from airflow_provider_ghl.hooks.fanout import lazily_fed
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.request import Request
from airflow_provider_ghl.writeback.diff import Change, CustomFieldRefs, create_body, diff, missing_children
from airflow_provider_ghl.writeback.matching import find_contact
from airflow_provider_ghl.writeback.rows import InputRow, RowRejected, WriteBackRecord

log = logging.getLogger(__name__)

#: What a row's result says was done (or, in a dry run, would be).
ACTIONS = ("create", "update", "skip", "reject", "error")
#: The kinds of write, as counted in results and the manifest.
WRITE_KINDS = ("contact_create", "field_update", "tag_add", "tag_remove", "task_create", "note_create")


@dataclass
class RowResult:
    """What happened to one input row (or would, in a dry run).

    :param row: the row's number in the input file (from 1).
    :param action: one of :data:`ACTIONS`.
    :param contact_id: the contact written (None for a planned create, a reject, an error before matching).
    :param matched_by: the key that found the contact (``id``, ``email``, ``email+phone``...), None for a create.
    :param changed: what was (or would be) written: field names, ``customFields.<key>``, ``tags``, ``tasks``.
    :param writes: the writes by kind (:data:`WRITE_KINDS`); of an ``error`` row, those it needed (some may not
        have been made: feeding the row again writes only what is missing).
    :param children: fingerprints of the tasks / notes created, by kind.
    :param error: why the row was rejected or failed.
    """

    row: int
    action: str
    contact_id: str | None = None
    matched_by: str | None = None
    changed: list[str] = field(default_factory=list)
    writes: dict[str, int] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.action in ("reject", "error")

    def as_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "action": self.action,
            "contact_id": self.contact_id,
            "matched_by": self.matched_by,
            "changed": self.changed,
            "writes": self.writes,
            "children": self.children,
            "error": self.error,
        }


@dataclass(frozen=True)
class WriteBackSettings:
    """How rows are applied.

    :param location_id: the location written.
    :param match_on: the keys a record is matched on, in order.
    :param tags_mode: ``add`` or ``replace``.
    :param dry_run: plan only: reads, no write.
    :param max_attempts: sends of one write at most (each after a read showed it still missing).
    :param retry_backoff: scale in seconds of the wait before reading GHL again after a failed write.
    """

    location_id: str
    match_on: tuple[str, ...]
    tags_mode: str = "add"
    dry_run: bool = False
    max_attempts: int = 4
    retry_backoff: float = 0.5


def is_ambiguous(err: BaseException) -> bool:
    """Whether a failed write may or may not have been applied (a 5xx, a lost answer, a garbled 2xx)."""
    return isinstance(err, GHLServerError | GHLUnexpectedResponseError)


def is_row_error(err: BaseException) -> bool:
    """Whether a failure belongs to one row (GHL refused or lost it) rather than to the whole task (token, scope,
    access, daily budget, configuration: every other row would fail the same way)."""
    return isinstance(err, GHLApiError) and not isinstance(err, GHLAuthError)


class RowApplier:
    """Plans and applies one row at a time (thread-safe: it holds no per-row state).

    :param hook: the task's hook.
    :param settings: how rows are applied.
    :param refs: the custom field resolver.
    """

    def __init__(self, hook: GHLHook, settings: WriteBackSettings, refs: CustomFieldRefs) -> None:
        self.hook = hook
        self.settings = settings
        self.refs = refs

    def apply(self, row: InputRow) -> RowResult:
        """The row's result; raises only failures of the whole task (see :func:`is_row_error`)."""
        record = row.record
        if record is None:
            return RowResult(row.number, "reject", error=row.problem)
        result = RowResult(row.number, "skip")
        try:
            contact, result.matched_by = find_contact(
                self.hook, record, self.settings.match_on, self.settings.location_id
            )
            fresh = contact is None
            if contact is None:
                fresh = self._create(record, result)
            else:
                self._update(record, contact, result)
            self._children(record, result, fresh=fresh)
        except RowRejected as err:
            return RowResult(row.number, "reject", error=str(err))
        except Exception as err:
            if not is_row_error(err):
                raise
            result.action, result.error = "error", str(err)
        return result

    # -- contacts -------------------------------------------------------------------------------------------
    def _create(self, record: WriteBackRecord, result: RowResult) -> bool:
        """Create the contact (or update the one GHL names as its duplicate); whether it is surely new."""
        body, changed = create_body(record, self.refs)
        result.action, result.changed, result.writes = "create", changed, {"contact_create": 1}
        if self.settings.dry_run:
            return True
        for attempt in itertools.count(1):
            try:
                contact = self.hook.run(ops.create_contact(body, location_id=self.settings.location_id), max_attempts=1)
            except GHLDuplicateContactError as err:
                if not err.contact_id:
                    raise
                # It appeared between the lookup and the create: update it instead of duplicating it.
                result.changed, result.writes = [], {}
                existing: dict[str, Any] = self.hook.run(ops.get_contact(err.contact_id))
                self._update(record, existing, result)
                result.matched_by = f"duplicate:{err.matching_field or 'email'}"
                return False
            except Exception as err:
                if not is_ambiguous(err) or attempt >= self.settings.max_attempts:
                    raise
                self._pause(attempt, err)
                found, _ = find_contact(
                    self.hook, _without_id(record), self.settings.match_on, self.settings.location_id
                )
                if found is None:
                    continue  # the lookup shows the create did not happen: send it again
                result.contact_id = str(found["id"])
                self._converge(record, found, diff(record, found, self.refs, self.settings.tags_mode))
                return False
            result.contact_id = str(contact["id"])
            return True
        raise AssertionError("unreachable")  # pragma: no cover

    def _update(self, record: WriteBackRecord, contact: Mapping[str, Any], result: RowResult) -> None:
        change = diff(record, contact, self.refs, self.settings.tags_mode)
        result.contact_id = str(contact["id"])
        result.action = "skip" if change.empty else "update"
        result.changed = change.changed
        result.writes = _counted(
            field_update=bool(change.fields), tag_add=bool(change.tags_add), tag_remove=bool(change.tags_remove)
        )
        if not self.settings.dry_run and not change.empty:
            self._converge(record, contact, change)

    def _converge(self, record: WriteBackRecord, contact: Mapping[str, Any], change: Change) -> None:
        """Send ``change``; after an ambiguous failure read the contact again and send only what is missing."""
        contact_id = str(contact["id"])
        for attempt in itertools.count(1):
            try:
                if change.fields:
                    self.hook.run(ops.update_contact(contact_id, change.fields), max_attempts=1)
                    change.fields = {}
                if change.tags_add:
                    self.hook.run(ops.add_tags(contact_id, change.tags_add), max_attempts=1)
                    change.tags_add = []
                if change.tags_remove:
                    self.hook.run(ops.remove_tags(contact_id, change.tags_remove), max_attempts=1)
                    change.tags_remove = []
                return
            except Exception as err:
                if not is_ambiguous(err) or attempt >= self.settings.max_attempts:
                    raise
                self._pause(attempt, err)
                current: dict[str, Any] = self.hook.run(ops.get_contact(contact_id))
                change = diff(record, current, self.refs, self.settings.tags_mode)

    # -- children -------------------------------------------------------------------------------------------
    def _children(self, record: WriteBackRecord, result: RowResult, *, fresh: bool) -> None:
        """Create the record's tasks and notes the contact does not have yet (by fingerprint)."""
        for kind, wanted in (("tasks", record.tasks), ("notes", record.notes)):
            if not wanted:
                continue
            existing = [] if fresh or result.contact_id is None else self._list(kind, result.contact_id)
            missing = missing_children(kind, wanted, existing)
            if not missing:
                continue
            result.children[kind] = [fingerprint for fingerprint, _ in missing]
            result.writes[f"{kind[:-1]}_create"] = len(missing)
            if kind not in result.changed:
                result.changed.append(kind)
            if result.action == "skip":
                result.action = "update"
            if self.settings.dry_run:
                continue
            assert result.contact_id is not None
            for _, child in missing:
                self._create_child(kind, result.contact_id, child)

    def _list(self, kind: str, contact_id: str) -> list[dict[str, Any]]:
        call = ops.get_tasks(contact_id) if kind == "tasks" else ops.get_notes(contact_id)
        return self.hook.run(call)

    def _create_child(self, kind: str, contact_id: str, child: Mapping[str, Any]) -> None:
        call: Request[dict[str, Any]]
        if kind == "tasks":
            call = ops.create_task(
                contact_id,
                title=child["title"],
                due_date=child["dueDate"],
                completed=child.get("completed", False),
                body=child.get("body"),
                assigned_to=child.get("assignedTo"),
            )
        else:
            call = ops.create_note(
                contact_id,
                child["body"],
                user_id=child.get("userId"),
                title=child.get("title"),
                color=child.get("color"),
                pinned=child.get("pinned"),
            )
        for attempt in itertools.count(1):
            try:
                self.hook.run(call, max_attempts=1)
                return
            except Exception as err:
                if not is_ambiguous(err) or attempt >= self.settings.max_attempts:
                    raise
                self._pause(attempt, err)
                # Repeated only when GHL shows it was not created.
                if not missing_children(kind, [child], self._list(kind, contact_id)):
                    return

    def _pause(self, attempt: int, err: BaseException) -> None:
        delay = random.uniform(0, self.settings.retry_backoff * 2 ** (attempt - 1))
        log.warning("GHL write failed (%s); reading GHL again in %.2f s before anything is resent.", err, delay)
        time.sleep(delay)


def _without_id(record: WriteBackRecord) -> WriteBackRecord:
    return WriteBackRecord(None, record.fields, record.tags, record.custom_fields, record.tasks, record.notes)


def _counted(**flags: bool) -> dict[str, int]:
    return {kind: 1 for kind, on in flags.items() if on}


def apply_rows(
    rows: Iterable[InputRow], apply: Callable[[InputRow], RowResult], workers: int
) -> Iterator[tuple[InputRow, RowResult]]:
    """Apply rows on a pool of ``workers`` threads, yielding ``(row, result)`` as they finish (any order).

    ``rows`` is consumed lazily (:func:`~airflow_provider_ghl.hooks.fanout.lazily_fed`). A failure of the whole
    task stops the feed, lets the rows in flight finish, then raises; their results are yielded first so nothing
    done is lost.
    """
    failures: list[BaseException] = []
    for row, future in lazily_fed(apply, rows, workers, thread_name="ghl-writeback", feeding=lambda: not failures):
        error = future.exception()
        if error is None:
            yield row, future.result()
        else:
            failures.append(error)
    if failures:
        raise failures[0]
