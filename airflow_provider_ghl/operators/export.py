"""Operators that export GHL data to object storage."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseOperator

from airflow_provider_ghl import __version__
from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.export.contacts import custom_field_keys, export_contacts, utcnow_iso
from airflow_provider_ghl.export.output import MANIFEST, ExportOutput, resolve_output
from airflow_provider_ghl.hooks.ghl import SEARCH_MAX_PAGE_LIMIT, GHLHook

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Asset alias the export operator attaches each run's output Asset to (schedule DAGs on it).
EXPORT_ASSET_ALIAS = "ghl_contacts_export"


class GHLBaseExportOperator(BaseOperator):
    """What the export operators share: output, validation before any request, manifest, summary.

    :param output_path: output directory, an Airflow object-storage URI such as ``file:///data/ghl/...`` or
        ``s3://bucket/ghl/...`` (templated).
    :param location_id: the location; default: the connection's (templated).
    :param file_format: ``jsonl`` (default) or ``csv`` (flattened, named columns).
    :param compression: None or ``gzip``.
    :param page_limit: contacts per search request, 1 to 500.
    :param records_per_file: records per part file; also how much work a retry can lose.
    :param progress_every: log progress every this many pages.
    :param ghl_conn_id: the ``ghl`` connection (templated).
    :param hook_params: extra keyword arguments for :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`.
    """

    template_fields: Sequence[str] = ("output_path", "location_id", "ghl_conn_id")
    ui_color = "#c6e2ff"
    #: Name of the dataset-level summary in the manifest.
    dataset = "contacts"

    def __init__(
        self,
        *,
        output_path: str,
        location_id: str | None = None,
        file_format: str = "jsonl",
        compression: str | None = None,
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        records_per_file: int = 10_000,
        progress_every: int = 10,
        ghl_conn_id: str = GHLHook.default_conn_name,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [AssetAlias(EXPORT_ASSET_ALIAS)])
        super().__init__(**kwargs)
        self.output_path = output_path
        self.location_id = location_id
        self.file_format = file_format
        self.compression = compression
        self.page_limit = page_limit
        self.records_per_file = records_per_file
        self.progress_every = progress_every
        self.ghl_conn_id = ghl_conn_id
        self.hook_params = hook_params or {}

    @cached_property
    def hook(self) -> GHLHook:
        return GHLHook(ghl_conn_id=self.ghl_conn_id, **self._hook_kwargs())

    def _hook_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the hook; ``hook_params`` win over anything an operator derives.

        The task's location becomes the hook's default, so requests that name no location (a contact's notes,
        tasks, appointments) use this location's token and rate budget, not the connection's location.
        """
        return {"location_id": self.location_id or None, **self.hook_params}

    def _validate(self) -> tuple[ExportOutput, str]:
        """Check the shared inputs before the first request or write; errors name the field."""
        if not isinstance(self.page_limit, int) or not 1 <= self.page_limit <= SEARCH_MAX_PAGE_LIMIT:
            raise GHLConfigError(
                f"page_limit must be an integer from 1 to {SEARCH_MAX_PAGE_LIMIT}, got {self.page_limit!r}"
            )
        if not isinstance(self.records_per_file, int) or self.records_per_file < 1:
            raise GHLConfigError(f"records_per_file must be a positive integer, got {self.records_per_file!r}")
        output = ExportOutput(resolve_output(self.output_path), fmt=self.file_format, compression=self.compression)
        location = self.location_id or self.hook.config.location_id
        if not location:
            raise GHLConfigError(f"location_id is required: pass it or set it on connection {self.ghl_conn_id!r}")
        return output, location

    def _already_done(self, output: ExportOutput) -> dict[str, Any] | None:
        manifest = output.read_manifest()
        if manifest is not None:
            self.log.info("%s already holds a complete export (manifest found); nothing to do.", output.root)
        return manifest

    def _publish(
        self, context: Context, output: ExportOutput, location: str, result: dict[str, Any], **facts: Any
    ) -> dict[str, Any]:
        """Write the manifest (the commit marker), log, attach the output Asset; return the manifest."""
        stats = self.hook.request_stats.as_dict()
        manifest = {
            "dataset": self.dataset,
            "location_id": location,
            "format": output.fmt,
            "compression": output.compression,
            **facts,
            "datasets": result["datasets"],
            "ghl_total": result["ghl_total"],
            "resumed_from_records": result["resumed_from_records"],
            "requests": stats["requests"],
            "responses_429": stats["responses_429"],
            "finished_at": utcnow_iso(),
            "api_version": self.hook.config.api_version,
            "provider_version": __version__,
        }
        output.write_manifest(manifest)
        counts = ", ".join(f"{d['records']} {name}" for name, d in result["datasets"].items())
        self.log.info(
            "Wrote %s of location %s to %s (%d requests, %d x 429).",
            counts,
            location,
            output.root,
            manifest["requests"],
            manifest["responses_429"],
        )
        outlet_events = context.get("outlet_events")
        if outlet_events is not None:
            extra = {"location_id": location, **{k: d["records"] for k, d in result["datasets"].items()}}
            outlet_events[AssetAlias(EXPORT_ASSET_ALIAS)].add(Asset(uri=str(output.root)), extra=extra)
        return manifest

    @staticmethod
    def _summary(output: ExportOutput, manifest: dict[str, Any]) -> dict[str, Any]:
        """The small XCom: where the manifest is and how many records each dataset got."""
        return {
            "manifest": str(output.root / MANIFEST),
            **{name: d["records"] for name, d in manifest["datasets"].items()},
            "files": sum(len(d["files"]) for d in manifest["datasets"].values()),
            "ghl_total": manifest["ghl_total"],
        }


class GHLExportContactsOperator(GHLBaseExportOperator):
    """Export every contact of a GHL location to object storage, streamed, published atomically, resumable.

    Reads ``POST /contacts/search`` with ``searchAfter`` cursors in ``dateAdded`` order (no 10,000-record cap;
    edits during the run cannot make a contact come twice) and writes pages as they arrive, in part files of
    ``records_per_file`` records that become visible only when complete. Each record is the contact as GHL
    returns it plus ``customFieldsByKey``. ``_manifest.json`` is written last and is the commit marker. The
    cursor is checkpointed beside the output at every part, so a retried task continues where the last one
    stopped and the result still holds every contact exactly once. When the output already has a manifest the
    export is complete and is not repeated.

    Returns a small summary (manifest path, counts) and attaches an Asset for the output directory to the
    ``ghl_contacts_export`` asset alias. Parameters: see :class:`GHLBaseExportOperator`.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        output, location = self._validate()
        if (done := self._already_done(output)) is not None:
            return self._summary(output, done)
        started, started_at = time.monotonic(), utcnow_iso()
        # Resolved once per run; an unknown location fails here, before anything is written.
        custom_fields = custom_field_keys(self.hook.get_custom_fields(location_id=location))
        result = export_contacts(
            lambda cursor: self.hook.iter_contact_pages(
                page_limit=self.page_limit, search_after=cursor, location_id=location
            ),
            output,
            custom_fields=custom_fields,
            records_per_file=self.records_per_file,
            progress_every=self.progress_every,
            label=f"GHL contacts of {location}",
            identity={"location_id": location},
        )
        if result["ghl_total"] is not None and result["records"] != result["ghl_total"]:
            # Contacts created or deleted during the run move GHL's total; say so rather than hide it.
            self.log.warning(
                "Exported %d contacts but GHL reported a total of %d for location %s.",
                result["records"],
                result["ghl_total"],
                location,
            )
        datasets = {"contacts": {"files": result["files"], "records": result["records"]}}
        manifest = self._publish(
            context,
            output,
            location,
            {**result, "datasets": datasets},
            files=result["files"],
            records=result["records"],
            started_at=started_at,
            duration_seconds=round(time.monotonic() - started, 3),
        )
        return self._summary(output, manifest)
