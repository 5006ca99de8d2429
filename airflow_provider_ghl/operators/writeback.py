"""Write records back to GHL: a file of contacts applied in bulk, idempotently (the write-back engine's operator)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ghl.checks import (
    input_location,
    location_or_default,
    optional_output_location,
    output_location,
    require_bool,
    require_choice,
    require_choices,
    require_int,
    require_ratio,
    require_timedelta,
)
from airflow_provider_ghl.exceptions import GHLInputError, GHLWriteBackRowsFailed
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.scopes import ScopeDegradations
from airflow_provider_ghl.operators.outputs import GHLOutputOperator
from airflow_provider_ghl.outputs.directory import MANIFEST
from airflow_provider_ghl.outputs.lineage import DatasetName, ghl_dataset_name, storage_dataset_name
from airflow_provider_ghl.outputs.runs import RunClock, committed_manifest, read_committed
from airflow_provider_ghl.writeback.diff import TAGS_MODES, CustomFieldRefs
from airflow_provider_ghl.writeback.engine import RowApplier, WriteBackSettings
from airflow_provider_ghl.writeback.matching import MATCH_KEYS
from airflow_provider_ghl.writeback.results import WriteBackResults
from airflow_provider_ghl.writeback.rows import InputFile, input_file_format
from airflow_provider_ghl.writeback.run import custom_field_definitions, write_back_rows

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Asset alias each run announces its results directory on (the plan of a dry run, the results of a real one).
#: The name predates the operator's; deployments schedule on it, so it stays.
WRITEBACK_ASSET_ALIAS = "ghl_contacts_sync"


class GHLWriteBackContactsOperator(GHLOutputOperator):
    """Apply a file of contact records to a GHL location: create the new, update only what changed, skip the rest.

    Each record (JSON Lines or CSV, ``.gz`` allowed; see :mod:`airflow_provider_ghl.writeback.rows`) holds GHL
    contact fields, ``tags``, ``customFields`` (by id or by key, e.g. ``{"contact.plan": "pro"}``), optionally the
    contact's ``id`` and ``tasks`` / ``notes`` lists to create once. A record is matched to a contact by
    ``match_on`` (its id, or GHL's duplicate lookup by e-mail / phone, never a guess); a match is compared with
    the record and gets one PUT of the changed fields (none when nothing changed), tags through the tag
    endpoints; no match is created (a duplicate refusal from GHL updates the contact it names). A row that
    cannot be applied is rejected on its own, the others go on.

    Under ``results_path``: a results file per ``rows_per_file`` rows (row, action, contact id, changed fields,
    error), the failed rows as they came in ``dead_letter-*`` files (fix and feed them again), and
    ``_manifest.json`` last. A retried or killed task resumes after the last committed row; rows after it are
    compared with GHL again, so nothing is written twice. When ``results_path`` already has a manifest the run
    is complete and is not repeated. Writes are never repeated blindly (see
    :mod:`~airflow_provider_ghl.writeback.engine`).

    Needs ``contacts.write`` (and ``contacts.readonly``). Without ``locations/customFields.readonly`` custom
    fields named by key are written as given, uncompared (warned once, recorded in the manifest's ``degraded``).

    Returns the counts (see :meth:`perform`) and announces ``results_path`` on the ``ghl_contacts_sync`` asset
    alias (the plan of a dry run or the results of a real one, ``dry_run`` in the event's extra).

    :param input_path: the input file: an Airflow object-storage URI or absolute path. (templated)
    :param results_path: directory for results, dead letters, checkpoint and manifest. (templated)
    :param match_on: keys to find an existing contact by, in order: ``id``, ``email``, ``phone``. (templated)
    :param tags_mode: ``add`` (default) adds the record's tags; ``replace`` also removes the contact's other tags.
        (templated)
    :param dry_run: only plan: read GHL, write the plan (per row: create / update with the changed fields / skip /
        reject) as the results, send no write. (templated)
    :param plan_path: the ``results_path`` of the dry run this apply carries out: the apply runs only if that plan
        is finished and was made of this very input (its SHA-256), location, ``match_on`` and ``tags_mode``;
        otherwise it fails before any request (plan again). None: an apply bound to no plan. (templated)
    :param max_failed_ratio: failed (rejected or refused) share of the rows above which the task fails, after
        writing the results (default 0: any failed row fails it). At or below it the task succeeds and logs how
        many rows failed.
    :param rows_per_file: rows per results file; also how many rows a killed task compares again.
    :param max_workers: rows in flight at once (also the hook's pool size, unless ``hook_params`` say otherwise).
    :param retry_backoff: scale in seconds of the wait before GHL is read again after a failed write.
    """

    template_fields: Sequence[str] = (
        *GHLOutputOperator.template_fields,
        "input_path",
        "results_path",
        "match_on",
        "tags_mode",
        "dry_run",
        "plan_path",
    )
    output_asset_alias: ClassVar[str | None] = WRITEBACK_ASSET_ALIAS
    #: The manifest's ``dataset``.
    dataset = "writeback"
    # An attribute, as a template field must be. It shadows BaseOperator.dry_run(), a helper that only renders the
    # templates (nothing in Airflow calls it).
    dry_run: bool | str  # type: ignore[assignment]

    def __init__(
        self,
        *,
        input_path: str,
        results_path: str,
        match_on: Sequence[str] = MATCH_KEYS,
        tags_mode: str = "add",
        dry_run: bool = False,
        plan_path: str | None = None,
        max_failed_ratio: float = 0.0,
        rows_per_file: int = 1000,
        max_workers: int = 8,
        retry_backoff: float = 0.5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_path = input_path
        self.results_path = results_path
        self.match_on = match_on
        self.tags_mode = tags_mode
        self.dry_run = dry_run
        self.plan_path = plan_path
        self.max_failed_ratio = max_failed_ratio
        self.rows_per_file = rows_per_file
        self.max_workers = max_workers
        self.retry_backoff = retry_backoff

    def _hook_kwargs(self) -> dict[str, Any]:
        # Rows in flight are capped at the hook's pool size: size the pool for max_workers (hook_params still win).
        return {"max_workers": self.max_workers, **super()._hook_kwargs()}

    def validate(self, context: Context) -> dict[str, Any]:
        # First: max_workers sizes the hook, which the shared checks build to read the connection.
        max_workers = require_int("max_workers", self.max_workers, minimum=1)
        args = super().validate(context)
        input_path = input_location("input_path", self.input_path)
        fmt, gzipped = input_file_format("input_path", input_path)
        input_file = InputFile(input_path, fmt, gzipped)
        input_file.check_header("input_path")
        args.update(
            input_file=input_file,
            results_root=output_location("results_path", self.results_path),
            match_on=require_choices("match_on", self.match_on, MATCH_KEYS, allow_empty=False),
            tags_mode=require_choice("tags_mode", self.tags_mode, TAGS_MODES),
            dry_run=require_bool("dry_run", self.dry_run),
            max_failed_ratio=require_ratio("max_failed_ratio", self.max_failed_ratio),
            rows_per_file=require_int("rows_per_file", self.rows_per_file, minimum=1),
            retry_backoff=require_timedelta("retry_backoff", self.retry_backoff).total_seconds(),
            workers=min(max_workers, self.hook.max_workers),
        )
        args["location_id"] = location_or_default("location_id", args["location_id"], self.hook.config.location_id)
        args["input_sha256"] = input_file.sha256()
        self._check_plan(args)
        return args

    def _check_plan(self, args: dict[str, Any]) -> None:
        """An apply bound to a plan runs only what was planned: the finished dry run of this input, unchanged."""
        path = optional_output_location("plan_path", self.plan_path)
        if path is None:
            return
        if args["dry_run"]:
            raise GHLInputError("plan_path", "a dry run makes a plan; plan_path is for the apply that carries it out")
        plan = read_committed(path)
        if plan is None:
            raise GHLInputError("plan_path", f"{str(path)!r} holds no finished plan (no manifest): plan first")
        wanted = {**self._identity(args), "dry_run": True}
        found = {key: plan.manifest.get(key) for key in wanted}
        if found != wanted:
            differs = sorted(key for key in wanted if found[key] != wanted[key])
            what = "the input changed since it was planned" if differs == ["input_sha256"] else "it is another run"
            raise GHLInputError(
                "plan_path",
                f"{str(path)!r} is not the plan of this apply ({what}: {', '.join(differs)} differ): plan it again",
            )

    @staticmethod
    def _identity(args: dict[str, Any]) -> dict[str, Any]:
        """What a run applies, as its checkpoint and manifest record it (the input by path and by content)."""
        return {
            "input_path": str(args["input_file"].path),
            "input_sha256": args["input_sha256"],
            "location_id": args["location_id"],
            "match_on": args["match_on"],
            "tags_mode": args["tags_mode"],
            "dry_run": args["dry_run"],
        }

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Apply the rows (unless ``results_path`` already holds this run), announce the results, judge them.

        :return: the counts: ``rows``, ``create``, ``update``, ``skip``, ``reject``, ``error``, ``failed`` (reject
            plus error), ``writes``, and ``dry_run`` and ``manifest`` (its path).
        """
        input_file: InputFile = args["input_file"]
        location = args["location_id"]
        self.record_lineage([storage_dataset_name(str(input_file.path))], [ghl_dataset_name(location, "contacts")])
        identity = self._identity(args)
        output = WriteBackResults(
            args["results_root"], input_file, rows_per_file=args["rows_per_file"], identity=identity
        )
        manifest = committed_manifest(output.output, identity, field="results_path")
        if manifest is not None:
            self.log.info("%s already holds this run (manifest found); nothing to do.", output.root)
        else:
            manifest = self._run(hook, args, output, identity)
        extra = {"dataset": self.dataset, "dry_run": args["dry_run"], **manifest["counts"]}
        self.announce_output(context, location, output.root, extra)
        return self._judge(output, manifest, args["max_failed_ratio"])

    def _run(
        self, hook: GHLHook, args: dict[str, Any], output: WriteBackResults, identity: dict[str, Any]
    ) -> dict[str, Any]:
        clock = RunClock()
        output.resume()  # an unfinished run of something else is refused before any request
        degradations = ScopeDegradations(self.log)
        definitions = custom_field_definitions(hook, args["location_id"], degradations)
        settings = WriteBackSettings(
            location_id=args["location_id"],
            match_on=tuple(args["match_on"]),
            tags_mode=args["tags_mode"],
            dry_run=args["dry_run"],
            max_attempts=hook.config.max_retries + 1,
            retry_backoff=args["retry_backoff"],
        )
        applier = RowApplier(hook, settings, CustomFieldRefs(definitions))
        write_back_rows(args["input_file"], output, applier, match_on=settings.match_on, workers=args["workers"])
        stats = hook.request_stats.as_dict()
        facts = clock.facts(
            requests=stats["requests"], responses_429=stats["responses_429"], api_version=hook.config.api_version
        )
        return output.publish({"dataset": self.dataset, **identity, "degraded": degradations.as_manifest(), **facts})

    def _judge(self, output: WriteBackResults, manifest: dict[str, Any], allowed: float) -> dict[str, Any]:
        """Log the outcome; fail when too many rows failed; return the counts (the XCom)."""
        counts = manifest["counts"]
        ratio = manifest["failed_ratio"]
        verb = "would be" if manifest["dry_run"] else "were"
        self.log.info(
            "%d rows: %d created, %d updated, %d unchanged, %d rejected, %d failed; %d writes %s made. Results: %s",
            counts["rows"],
            counts["create"],
            counts["update"],
            counts["skip"],
            counts["reject"],
            counts["error"],
            counts["writes"],
            verb,
            output.root,
        )
        if ratio > allowed:
            raise GHLWriteBackRowsFailed(
                f"{counts['failed']} of {counts['rows']} rows failed ({ratio:.2%}, more than max_failed_ratio "
                f"{allowed:.2%}); they are in the dead_letter files under {output.root}.",
                counts=counts,
                ratio=ratio,
                allowed=allowed,
            )
        if counts["failed"]:
            self.log.warning(
                "%d rows failed (%.2f%%, within max_failed_ratio); they are in the %d dead_letter files under %s.",
                counts["failed"],
                100 * ratio,
                len(manifest["dead_letter"]),
                output.root,
            )
        return {**counts, "dry_run": manifest["dry_run"], "manifest": str(output.root / MANIFEST)}

    def planned_lineage(self) -> tuple[list[DatasetName], list[DatasetName]]:
        location = self.location_id or self.hook.config.location_id or ""
        return [storage_dataset_name(str(self.input_path))], [ghl_dataset_name(location, "contacts")]
