"""Incremental enrichment: contacts changed in a window, plus their tasks, notes and appointments."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.export.contacts import run_export, utcnow_iso
from airflow_provider_ghl.export.enrich import TASK_SEARCH_MODES, child_records, enrichment_columns
from airflow_provider_ghl.hooks.ghl import CHILD_KINDS
from airflow_provider_ghl.operators.export import GHLBaseExportOperator
from airflow_provider_ghl.validation import require_datetime, require_window

if TYPE_CHECKING:
    from airflow.sdk import Context


class GHLEnrichContactsOperator(GHLBaseExportOperator):
    """Write the contacts updated in ``[updated_since, updated_until)`` and their tasks, notes and appointments.

    Streams the changed contacts (``POST /contacts/search`` on ``dateUpdated``, ``searchAfter`` paging) and,
    page by page, fetches the children of just those contacts concurrently under the hook's shared rate
    limiter: one request per (changed contact, kind), or, for tasks, the location-wide task search when it
    needs fewer requests. Writes ``contacts``, ``tasks``, ``notes`` and ``appointments`` part files (every
    child carries ``contactId``) and a manifest, with the same atomic publish, checkpointed resume and
    progress log as :class:`~airflow_provider_ghl.operators.export.GHLExportContactsOperator`. Contacts and
    children are committed together, so a retried task neither loses nor repeats a record.

    :param updated_since: window start, inclusive (templated); default: the run's ``data_interval_start``.
    :param updated_until: window end, exclusive (templated); default: the run's ``data_interval_end``.
    :param lookback: widen the window backwards by this much (seconds or a timedelta), so contacts GHL's
        search index had not caught up with last run are picked up now.
    :param include: child kinds to fetch: any of ``tasks``, ``notes``, ``appointments``.
    :param task_search: ``auto`` (use the location-wide task search when it is cheaper), ``always`` or
        ``never`` (the search needs the ``locations/tasks.readonly`` scope).
    :param max_workers: concurrent child requests.

    Other parameters: see :class:`~airflow_provider_ghl.operators.export.GHLBaseExportOperator`.
    """

    template_fields: Sequence[str] = (*GHLBaseExportOperator.template_fields, "updated_since", "updated_until")
    dataset = "enrichment"

    def __init__(
        self,
        *,
        updated_since: str | datetime | None = None,
        updated_until: str | datetime | None = None,
        lookback: float | timedelta = 0,
        include: Iterable[str] = CHILD_KINDS,
        task_search: str = "auto",
        max_workers: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.updated_since = updated_since
        self.updated_until = updated_until
        self.lookback = lookback
        self.include = tuple(include)
        self.task_search = task_search
        self.max_workers = max_workers

    def _hook_kwargs(self) -> dict[str, Any]:
        # The fan-out is capped at the hook's pool size: size the pool for max_workers.
        return {"max_workers": self.max_workers, **super()._hook_kwargs()}

    def _window(self, context: Context) -> tuple[datetime, datetime]:
        since = _as_datetime(self.updated_since, "updated_since") or context.get("data_interval_start")
        until = _as_datetime(self.updated_until, "updated_until") or context.get("data_interval_end")
        if since is None or until is None:
            raise GHLConfigError(
                "updated_since and updated_until are required when the run has no data interval "
                "(use a data-interval timetable such as CronDataIntervalTimetable, or pass them)"
            )
        lookback = self.lookback if isinstance(self.lookback, timedelta) else timedelta(seconds=self.lookback)
        if lookback < timedelta(0):
            raise GHLConfigError(f"lookback must not be negative, got {self.lookback!r}")
        require_window("updated_since", since, "updated_until", until)
        return since - lookback, until

    def execute(self, context: Context) -> dict[str, Any]:
        unknown = sorted(set(self.include) - set(CHILD_KINDS))
        if unknown:
            raise GHLConfigError(f"include: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(CHILD_KINDS)}")
        if self.task_search not in TASK_SEARCH_MODES:
            raise GHLConfigError(f"task_search must be one of {', '.join(TASK_SEARCH_MODES)}, got {self.task_search!r}")
        if not isinstance(self.max_workers, int) or self.max_workers < 1:
            raise GHLConfigError(f"max_workers must be a positive integer, got {self.max_workers!r}")
        since, until = self._window(context)
        output, location = self._validate()
        if (done := self._already_done(output)) is not None:
            return self._summary(output, done)
        started, started_at = time.monotonic(), utcnow_iso()
        result = run_export(
            lambda cursor: self.hook.iter_contact_pages(
                since=since,
                until=until,
                date_field="dateUpdated",
                page_limit=self.page_limit,
                search_after=cursor,
                location_id=location,
            ),
            output,
            lambda contacts: self._records(contacts, location),
            enrichment_columns(self.include, output.fmt == "csv"),
            records_per_file=self.records_per_file,
            progress_every=self.progress_every,
            label=f"GHL contacts of {location} changed in [{since.isoformat()}, {until.isoformat()})",
            identity={"location_id": location, "since": since.isoformat(), "until": until.isoformat()},
        )
        manifest = self._publish(
            context,
            output,
            location,
            result,
            window={"updated_since": since.isoformat(), "updated_until": until.isoformat()},
            include=list(self.include),
            started_at=started_at,
            duration_seconds=round(time.monotonic() - started, 3),
        )
        return self._summary(output, manifest)

    def _records(self, contacts: list[dict[str, Any]], location: str) -> Iterable[tuple[str, Any]]:
        for contact in contacts:
            yield "contacts", contact
        yield from child_records(
            self.hook,
            contacts,
            self.include,
            task_search=self.task_search,
            max_workers=self.max_workers,
            location_id=location,
        )


def _as_datetime(value: str | datetime | None, field: str) -> datetime | None:
    """An aware datetime, or None when not given; ``GHLInputError`` naming ``field`` when unreadable."""
    return None if value is None or value == "" else require_datetime(field, value)
