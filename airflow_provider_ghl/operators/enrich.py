"""Incremental enrichment: contacts changed in a window, plus their tasks, notes and appointments."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_ghl.checks import (
    interval_datetime,
    require_choice,
    require_choices,
    require_int,
    require_timedelta,
    require_window,
)
from airflow_provider_ghl.export.contacts import run_export
from airflow_provider_ghl.export.enrich import TASK_SEARCH_MODES, child_records
from airflow_provider_ghl.export.schema import custom_field_types, schema_drift
from airflow_provider_ghl.hooks.ghl import CHILD_KINDS, GHLHook
from airflow_provider_ghl.operators.export import GHLBaseExportOperator
from airflow_provider_ghl.outputs.columns import ENRICHMENT_CSV_COLUMNS

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
        ``never``. The search needs the ``locations/tasks.readonly`` scope: without it ``auto`` warns once and
        reads tasks per contact (the manifest's ``degraded`` says so), ``always`` fails.
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
        self.include = include
        self.task_search = task_search
        self.max_workers = max_workers

    def _hook_kwargs(self) -> dict[str, Any]:
        # The fan-out is capped at the hook's pool size: size the pool for max_workers (hook_params still win).
        return {"max_workers": self.max_workers, **super()._hook_kwargs()}

    def validate(self, context: Context) -> dict[str, Any]:
        # These come first: max_workers sizes the hook, which the shared checks build to read the connection.
        include = require_choices("include", self.include, CHILD_KINDS)
        task_search = require_choice("task_search", self.task_search, TASK_SEARCH_MODES)
        max_workers = require_int("max_workers", self.max_workers, minimum=1)
        since = interval_datetime("updated_since", self.updated_since, context, "data_interval_start")
        until = interval_datetime("updated_until", self.updated_until, context, "data_interval_end")
        lookback = require_timedelta("lookback", self.lookback)
        require_window("updated_since", since, "updated_until", until)
        return {
            **super().validate(context),
            "include": include,
            "task_search": task_search,
            "max_workers": max_workers,
            "window": (since - lookback, until),
        }

    def identity(self, args: dict[str, Any]) -> dict[str, Any]:
        since, until = args["window"]
        window = {"updated_since": since.isoformat(), "updated_until": until.isoformat()}
        return {**super().identity(args), "window": window}

    def lineage_resources(self, args: dict[str, Any]) -> list[str]:
        return ["contacts", *args["include"]]

    def export(self, hook: GHLHook, args: dict[str, Any], context: Context) -> tuple[dict[str, Any], dict[str, Any]]:
        location, output, include = args["location_id"], args["output"], args["include"]
        (since, until), page_limit = args["window"], args["page_limit"]
        # Only Parquet needs the custom field definitions (its typed columns): other formats send no request more.
        definitions = self.custom_field_definitions(hook, args) if output.fmt == "parquet" else []
        result = run_export(
            lambda cursor: hook.iter_contact_pages(
                since=since,
                until=until,
                date_field="dateUpdated",
                page_limit=page_limit,
                search_after=cursor,
                location_id=location,
            ),
            output,
            lambda contacts: self._records(hook, contacts, args),
            output.record_layouts(["contacts", *include], ENRICHMENT_CSV_COLUMNS, definitions or []),
            records_per_file=args["records_per_file"],
            progress_every=args["progress_every"],
            label=f"GHL contacts of {location} changed in [{since.isoformat()}, {until.isoformat()})",
            identity={"location_id": location, "since": since.isoformat(), "until": until.isoformat()},
        )
        window = {"updated_since": since.isoformat(), "updated_until": until.isoformat()}
        facts: dict[str, Any] = {"window": window, "include": include}
        if output.fmt == "parquet" and definitions is not None:
            facts["custom_fields"] = custom_field_types(definitions)
            previous = self.find_previous_output(context, location, self.dataset, output.root)
            facts["schema_drift"] = schema_drift(previous, facts["custom_fields"])
        return result, facts

    @staticmethod
    def _records(hook: GHLHook, contacts: list[dict[str, Any]], args: dict[str, Any]) -> Iterable[tuple[str, Any]]:
        for contact in contacts:
            yield "contacts", contact
        yield from child_records(
            hook,
            contacts,
            args["include"],
            task_search=args["task_search"],
            max_workers=args["max_workers"],
            location_id=args["location_id"],
            degradations=args["degradations"],
        )
