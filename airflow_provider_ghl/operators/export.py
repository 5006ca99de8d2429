"""Operators that export GHL data to object storage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ghl.checks import (
    location_or_default,
    optional_output_location,
    output_location,
    require_bool,
    require_choice,
    require_int,
)
from airflow_provider_ghl.exceptions import GHLInputError, GHLScopeError
from airflow_provider_ghl.export.contacts import custom_field_keys, export_contacts
from airflow_provider_ghl.export.schema import custom_field_types, schema_drift
from airflow_provider_ghl.export.tombstones import DELETED, vanished_ids, write_tombstones
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.scopes import ScopeDegradations
from airflow_provider_ghl.hooks.search import SEARCH_MAX_PAGE_LIMIT
from airflow_provider_ghl.operators.outputs import GHLOutputOperator
from airflow_provider_ghl.outputs.directory import COMPRESSIONS, FORMATS, MANIFEST, OutputDirectory, file_format
from airflow_provider_ghl.outputs.lineage import DatasetName, ghl_dataset_name, storage_dataset_name
from airflow_provider_ghl.outputs.runs import CommittedOutput, RunClock, committed_manifest, read_committed

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Asset alias the export operators announce each committed output on (schedule DAGs on it).
EXPORT_ASSET_ALIAS = "ghl_contacts_export"


class GHLBaseExportOperator(GHLOutputOperator):
    """What the export operators share: the output, validation before any request or write, the manifest, the
    announced output, the summary.

    ``execute`` is the one of every GHL operator: :meth:`validate` checks every argument (sending nothing,
    writing nothing), then :meth:`perform` returns at once when the output already holds this export (its
    manifest), or runs :meth:`export` and commits its manifest; either way the committed output is announced on
    the ``ghl_contacts_export`` asset alias (``output_path`` and the record counts in the event's extra).

    :param ghl_conn_id: the ``ghl`` connection (templated).
    :param location_id: the location; default: the connection's (templated).
    :param hook_params: extra keyword arguments for :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`; they win
        over what the operator derives (see :func:`~airflow_provider_ghl.hooks.mixin.hook_kwargs`).
    :param output_path: output directory, an Airflow object-storage URI such as ``file:///data/ghl/...`` or
        ``s3://bucket/ghl/...`` (templated).
    :param file_format: ``jsonl`` (default), ``csv`` (flattened, named columns) or ``parquet`` (typed columns;
        needs the ``[parquet]`` extra, pyarrow) (templated).
    :param compression: None or ``gzip`` (Parquet: the codec inside each file; default snappy) (templated).
    :param neutralise_csv_formulas: CSV only: a text cell that would start a spreadsheet formula (``=``, ``+``,
        ``-``, ``@``, tab, CR; a plain number such as ``+15550000000`` excepted) gets a leading ``'`` (default);
        False writes cells as they are, for machine consumers.
    :param page_limit: contacts per search request, 1 to 500 (templated).
    :param records_per_file: records per part file; also how much work a retry can lose.
    :param progress_every: log progress every this many pages (at least 1).
    """

    template_fields: Sequence[str] = (
        *GHLOutputOperator.template_fields,
        "output_path",
        "file_format",
        "compression",
        "page_limit",
    )
    output_asset_alias: ClassVar[str | None] = EXPORT_ASSET_ALIAS
    #: The manifest's ``dataset``: what the export writes.
    dataset = "contacts"

    def __init__(
        self,
        *,
        output_path: str,
        file_format: str = "jsonl",
        compression: str | None = None,
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        records_per_file: int = 10_000,
        progress_every: int = 10,
        neutralise_csv_formulas: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.neutralise_csv_formulas = neutralise_csv_formulas
        self.output_path = output_path
        self.file_format = file_format
        self.compression = compression
        self.page_limit = page_limit
        self.records_per_file = records_per_file
        self.progress_every = progress_every

    def validate(self, context: Context) -> dict[str, Any]:
        """The shared arguments, then the location (reading the connection; nothing is sent or written)."""
        args = super().validate(context)
        args.update(
            page_limit=require_int("page_limit", self.page_limit, minimum=1, maximum=SEARCH_MAX_PAGE_LIMIT),
            records_per_file=require_int("records_per_file", self.records_per_file, minimum=1),
            progress_every=require_int("progress_every", self.progress_every, minimum=1),
            output=OutputDirectory(
                output_location("output_path", self.output_path),
                fmt=file_format("file_format", self.file_format, FORMATS),
                compression=require_choice("compression", self.compression or None, COMPRESSIONS),
                neutralise_formulas=require_bool("neutralise_csv_formulas", self.neutralise_csv_formulas),
            ),
        )
        args["location_id"] = location_or_default("location_id", args["location_id"], self.hook.config.location_id)
        return args

    def identity(self, args: dict[str, Any]) -> dict[str, Any]:
        """What this run writes, as its manifest records it: a finished output of anything else is refused."""
        return {"dataset": self.dataset, "location_id": args["location_id"], "format": args["output"].fmt}

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Export (unless the output already holds this export), then announce the committed output.

        :return: the summary: ``manifest`` (its path), the records of each dataset by name, ``files`` (how many
            part files) and ``ghl_total`` (GHL's own count, when it gave one).
        """
        output: OutputDirectory = args["output"]
        location = args["location_id"]
        self.record_lineage(
            [ghl_dataset_name(location, r) for r in self.lineage_resources(args)],
            [storage_dataset_name(str(output.root))],
        )
        manifest = committed_manifest(output, self.identity(args), field="output_path")
        if manifest is not None:
            self.log.info("%s already holds this export (manifest found); nothing to do.", output.root)
        else:
            clock = RunClock()
            # The optional reads this run goes without for lack of a scope (each warned about once).
            degradations = ScopeDegradations(self.log)
            result, facts = self.export(
                hook, {**args, "started_at": clock.started_at, "degradations": degradations}, context
            )
            manifest = self._commit(output, location, result, {**facts, "degraded": degradations.as_manifest()}, clock)
        counts = {name: d["records"] for name, d in manifest["datasets"].items()}
        extra: dict[str, Any] = {"dataset": self.dataset, **counts}
        drift = manifest.get("schema_drift")
        if isinstance(drift, dict) and any(drift.get(k) for k in ("added", "removed", "retyped")):
            # For the health check's schema-drift alert: what changed, without the previous export's path.
            extra["schema_drift"] = {k: drift[k] for k in ("added", "removed", "retyped")}
        self.announce_output(context, location, output.root, extra)
        return self._summary(output, manifest)

    def lineage_resources(self, args: dict[str, Any]) -> list[str]:
        """The GHL resources the export reads (the inputs of its lineage)."""
        return ["contacts"]

    def planned_lineage(self) -> tuple[list[DatasetName], list[DatasetName]]:
        location = self.location_id or self.hook.config.location_id or ""
        return [ghl_dataset_name(location, "contacts")], [storage_dataset_name(str(self.output_path))]

    def export(self, hook: GHLHook, args: dict[str, Any], context: Context) -> tuple[dict[str, Any], dict[str, Any]]:
        """Write the data with the validated ``args`` (and ``started_at``, the run's start in ISO 8601 UTC);
        return the run's result and the manifest's own facts."""
        raise NotImplementedError

    def custom_field_definitions(
        self, hook: GHLHook, args: dict[str, Any], *, required: bool = False
    ) -> list[dict[str, Any]] | None:
        """The location's custom-field definitions, or None when the token lacks their scope (an optional read:
        warned once and recorded in the manifest's ``degraded``), unless ``required``.

        :param hook: the task's hook.
        :param args: the validated arguments (location, the run's degradations).
        :param required: raise the :class:`~airflow_provider_ghl.exceptions.GHLScopeError` instead.
        """
        try:
            definitions: list[dict[str, Any]] = hook.get_custom_fields(location_id=args["location_id"])
        except GHLScopeError as err:
            if required:
                raise
            args["degradations"].without("get_custom_fields", err)
            return None
        return definitions

    def _commit(
        self, output: OutputDirectory, location: str, result: dict[str, Any], facts: dict[str, Any], clock: RunClock
    ) -> dict[str, Any]:
        """Write the manifest (the commit marker) and log; return the manifest."""
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
            **clock.facts(
                requests=stats["requests"],
                responses_429=stats["responses_429"],
                api_version=self.hook.config.api_version,
            ),
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
        return manifest

    @staticmethod
    def _summary(output: OutputDirectory, manifest: dict[str, Any]) -> dict[str, Any]:
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

    It needs only the ``contacts.readonly`` scope. Without ``locations/customFields.readonly`` it warns once and
    goes on with the raw ``customFields`` (by field id) and no ``customFieldsByKey`` (in CSV, one
    ``customFields`` column); the manifest's ``degraded`` says so.

    Deleted contacts: GHL's search never returns them, so the ids of the previous committed full export of the
    location that this one lacks are written as the ``deleted`` dataset (``id``, ``locationId``,
    ``detectedAt``: this export's start), before the manifest. The previous export is ``previous_output`` when
    given, else this task's latest committed output of the location, as its asset event recorded it (see
    :mod:`~airflow_provider_ghl.operators.outputs`), whatever either run's ``output_path``. The manifest's
    ``tombstones`` says which export was compared, ``schema_drift`` how the custom fields changed since it; the
    first export of a location has neither.

    Returns a small summary (manifest path, counts) and announces the output on the ``ghl_contacts_export``
    asset alias.

    :param require_custom_field_names: fail (before writing anything) instead of going on without custom-field
        names when the token lacks ``locations/customFields.readonly``.
    :param tombstones: compare with the previous full export and write the ``deleted`` dataset (default).
    :param previous_output: the committed full export (its directory) to compare with, e.g. in a backfill;
        default: this task's latest committed output of the location (templated).

    Other parameters: see :class:`GHLBaseExportOperator`.
    """

    template_fields: Sequence[str] = (*GHLBaseExportOperator.template_fields, "previous_output")

    def __init__(
        self,
        *,
        require_custom_field_names: bool = False,
        tombstones: bool = True,
        previous_output: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.require_custom_field_names = require_custom_field_names
        self.tombstones = tombstones
        self.previous_output = previous_output

    def validate(self, context: Context) -> dict[str, Any]:
        args = {
            **super().validate(context),
            "require_custom_field_names": require_bool("require_custom_field_names", self.require_custom_field_names),
            "tombstones": require_bool("tombstones", self.tombstones),
        }
        args["previous"] = self._named_previous(args["location_id"])
        return args

    def _named_previous(self, location: str) -> CommittedOutput | None:
        """The committed full export ``previous_output`` names, checked (read only; nothing is written)."""
        path = optional_output_location("previous_output", self.previous_output)
        if path is None:
            return None
        previous = read_committed(path)
        if previous is None:
            raise GHLInputError("previous_output", f"{str(path)!r} holds no committed export (no manifest)")
        if (previous.dataset, previous.location_id) != (self.dataset, location):
            raise GHLInputError(
                "previous_output",
                f"{str(path)!r} is a {previous.dataset!r} output of {previous.location_id!r}, not a full export of "
                f"{location!r}",
            )
        return previous

    def export(self, hook: GHLHook, args: dict[str, Any], context: Context) -> tuple[dict[str, Any], dict[str, Any]]:
        location, output = args["location_id"], args["output"]
        # Read once per run, before anything is written (an unknown location fails here too).
        definitions = self.custom_field_definitions(hook, args, required=args["require_custom_field_names"])
        custom_fields = custom_field_keys(definitions) if definitions is not None else None
        page_limit = args["page_limit"]
        result = export_contacts(
            lambda cursor: hook.iter_contact_pages(page_limit=page_limit, search_after=cursor, location_id=location),
            output,
            custom_fields=custom_fields,
            definitions=definitions or [],
            records_per_file=args["records_per_file"],
            progress_every=args["progress_every"],
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
        datasets = {"contacts": {k: v for k, v in result.items() if k in ("files", "records", "type_mismatches")}}
        facts: dict[str, Any] = {"files": result["files"], "records": result["records"]}
        previous = args["previous"] or self._previous(context, location, output)
        # Without the definitions (no scope) there is no schema to record or compare.
        facts["custom_fields"] = custom_field_types(definitions) if definitions is not None else None
        facts["schema_drift"] = schema_drift(previous, facts["custom_fields"]) if definitions is not None else None
        facts["tombstones"] = None
        if previous is not None and args["tombstones"]:
            ids = vanished_ids(previous, output, result["files"])
            parts = write_tombstones(
                output,
                ids,
                location_id=location,
                detected_at=args["started_at"],
                records_per_file=args["records_per_file"],
            )
            datasets[DELETED] = {"files": [p.name for p in parts], "records": len(ids)}
            if output.fmt == "parquet":
                datasets[DELETED]["type_mismatches"] = {}
            facts["tombstones"] = {
                "previous_export": str(previous.root),
                "previous_records": previous.records("contacts"),
            }
        return {**result, "datasets": datasets}, facts

    def _previous(self, context: Context, location: str, output: OutputDirectory) -> CommittedOutput | None:
        """This task's previous committed export of ``location`` (logged, so a run says what it compared with)."""
        previous = self.find_previous_output(context, location, self.dataset, output.root)
        if previous is None:
            self.log.info("No earlier committed export of %s by this task: no tombstones this time.", location)
        else:
            self.log.info("Comparing with the previous export of %s at %s.", location, previous.root)
        return previous
