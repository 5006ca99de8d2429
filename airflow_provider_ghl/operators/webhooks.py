"""The operator that applies the GHL webhook events waiting in the inbox (see ``webhooks/apply.py``)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk import ObjectStoragePath

from airflow_provider_ghl.checks import location_or_default, one_output_of, require_bool, require_choice, require_int
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.operators.outputs import GHLOutputOperator
from airflow_provider_ghl.outputs.directory import COMPRESSIONS, FORMATS, file_format
from airflow_provider_ghl.outputs.lineage import DatasetName, ghl_dataset_name, storage_dataset_name
from airflow_provider_ghl.webhooks.apply import BatchResult, HookRecordSource, drain
from airflow_provider_ghl.webhooks.changes import DATASETS, KINDS
from airflow_provider_ghl.webhooks.inbox import event_instant, inbox_url

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Asset alias the operator attaches each location's webhooks folder to (schedule DAGs on it).
WEBHOOKS_ASSET_ALIAS = "ghl_webhooks"
#: Most batch ids and paths the XCom summary lists.
MAX_XCOM_BATCHES = 100
#: The most events one batch may hold (and the default).
MAX_BATCH_EVENTS = 10_000


class GHLApplyWebhookEventsOperator(GHLOutputOperator):
    """Apply the GHL webhook events of one location waiting in the inbox, exactly once, as batch folders.

    The asset event that starts the run is a doorbell: the task drains the inbox itself, claiming batches of up
    to ``max_events`` until the location's high-water mark at its start is applied, so asset events that Airflow
    merged or delayed (or that never came while the DAG was paused) lose nothing. Each batch becomes
    ``<output_path>/<first_seq>-<last_seq>/`` with the final state of every record it changed (last writer
    wins by event ``timestamp``, also against the batches applied before), tombstones for deletions, and
    ``_manifest.json`` last, then is acknowledged in the inbox (see :mod:`airflow_provider_ghl.webhooks.apply`).
    A task killed in between re-runs to the same output. The API is called only for what a payload lacks (a
    tag update without the contact, a task without its contact), through the connection's shared budget.

    Returns a small summary (see :meth:`perform`) and, when it applied anything, announces the location's folder
    of batches on the ``ghl_webhooks`` asset alias.

    :param location_id: the location whose events to apply; default: the connection's (templated).
    :param output_path: the location's folder of batches (templated).
    :param output_root: deprecated: the output root, the batches going to ``<output_root>/<location_id>/webhooks``;
        give ``output_path`` instead (templated).
    :param inbox: the inbox URL (``sqlite:///<path>`` or ``redis://<conn_id>``); default: the ``[ghl_webhooks]
        inbox`` setting (templated).
    :param file_format: ``jsonl`` (default), ``csv`` or ``parquet`` (the ``[parquet]`` extra) (templated).
    :param compression: None or ``gzip`` (Parquet: the codec inside each file) (templated).
    :param max_events: the most events per batch, 1 to 10,000 (templated).
    :param neutralise_csv_formulas: CSV only: a text cell that would start a spreadsheet formula gets a leading
        ``'`` (default; see :class:`~airflow_provider_ghl.operators.export.GHLBaseExportOperator`).
    :param ghl_conn_id: the ``ghl`` connection, for what payloads lack (templated).
    """

    template_fields: Sequence[str] = (
        *GHLOutputOperator.template_fields,
        "output_path",
        "output_root",
        "inbox",
        "file_format",
        "compression",
        "max_events",
    )
    output_asset_alias: ClassVar[str | None] = WEBHOOKS_ASSET_ALIAS
    #: The manifest's ``dataset`` (each batch's).
    dataset = "webhooks"

    def __init__(
        self,
        *,
        output_path: str | None = None,
        output_root: str | None = None,
        inbox: str | None = None,
        file_format: str = "jsonl",
        compression: str | None = None,
        max_events: int = MAX_BATCH_EVENTS,
        neutralise_csv_formulas: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.neutralise_csv_formulas = neutralise_csv_formulas
        if output_root is not None:
            warnings.warn(
                "output_root of GHLApplyWebhookEventsOperator is deprecated: pass output_path, the location's "
                "folder of batches (e.g. <root>/<location_id>/webhooks).",
                AirflowProviderDeprecationWarning,
                stacklevel=2,
            )
        self.output_path = output_path
        self.output_root = output_root
        self.inbox = inbox
        self.file_format = file_format
        self.compression = compression
        self.max_events = max_events

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        fmt = file_format("file_format", self.file_format, FORMATS)
        args.update(
            fmt=fmt,
            compression=require_choice("compression", self.compression or None, COMPRESSIONS),
            max_events=require_int("max_events", self.max_events, minimum=1, maximum=MAX_BATCH_EVENTS),
            neutralise_formulas=require_bool("neutralise_csv_formulas", self.neutralise_csv_formulas),
            inbox=inbox_url("inbox", self.inbox if self.inbox is not None else configured_inbox()),
        )
        which, where = one_output_of({"output_path": self.output_path, "output_root": self.output_root})
        args["location_id"] = location_or_default("location_id", args["location_id"], self.hook.config.location_id)
        # The deprecated root: the folder the example DAG used to compute from it.
        args["folder"] = where / args["location_id"] / "webhooks" if which == "output_root" else where
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Drain the location's inbox into batch folders; announce the folder when anything was applied.

        :return: ``location_id``, ``folder``, ``batches`` (applied now), ``already_written`` (of them, committed by
            an earlier attempt and only acknowledged), ``first_seq`` / ``last_seq``, the event counts ``events``,
            ``stale``, ``duplicates`` and ``ignored``, ``records`` per dataset, ``requests`` (API lookups) and
            ``paths`` (the first 100 batch folders).
        """
        from airflow_provider_ghl.webhooks.inbox import open_inbox

        location, folder = args["location_id"], args["folder"]
        inputs = [ghl_dataset_name(location, kind) for kind in KINDS]
        self.record_lineage(inputs, [storage_dataset_name(str(folder))])
        inbox = open_inbox(args["inbox"])
        try:
            results = drain(
                inbox,
                location,
                folder,
                max_events=args["max_events"],
                fmt=args["fmt"],
                compression=args["compression"],
                neutralise_formulas=args["neutralise_formulas"],
                source=HookRecordSource(hook, location),
                requests=lambda: hook.request_stats.requests,
                stopped=hook.is_stopped,
            )
        finally:
            inbox.close()
        if results:
            self.record_lineage(inputs, [storage_dataset_name(str(r.folder)) for r in results])
        uninstalled_at = _uninstalled_at(results)
        if uninstalled_at is not None:
            # The app left the location: its minted token (an agency install's) and its own installation's
            # token set are of no use to anyone (a re-install's newer set is kept).
            hook.forget_location_token(location, uninstalled_at)
            self.log.warning("Location %s uninstalled the app: its tokens are dropped.", location)
        summary = self._summary(location, folder, results)
        if results:
            extra = {k: summary[k] for k in ("batches", "events", "first_seq", "last_seq")}
            self.announce_output(context, location, folder, {"dataset": self.dataset, **extra})
        return summary

    def planned_lineage(self) -> tuple[list[DatasetName], list[DatasetName]]:
        location = self.location_id or self.hook.config.location_id or ""
        where = self.output_path or self.output_root or ""
        return [ghl_dataset_name(location, kind) for kind in KINDS], [storage_dataset_name(str(where))]

    @staticmethod
    def _summary(location: str, folder: ObjectStoragePath, results: Sequence[BatchResult]) -> dict[str, Any]:
        """The small XCom: how many batches and events, their counts, where they are."""
        manifests = [r.manifest for r in results]
        counts = {k: sum(int(m.get(k, 0)) for m in manifests) for k in ("events", "stale", "duplicates", "ignored")}
        return {
            "location_id": location,
            "folder": str(folder),
            "batches": len(results),
            "already_written": sum(r.already for r in results),
            "first_seq": results[0].batch.first_seq if results else None,
            "last_seq": results[-1].batch.last_seq if results else None,
            **counts,
            "records": {d: sum(m["datasets"][d]["records"] for m in manifests) for d in DATASETS},
            "requests": sum(r.requests for r in results),
            "paths": [str(r.folder) for r in results[:MAX_XCOM_BATCHES]],
        }


def configured_inbox() -> str:
    """The ``[ghl_webhooks] inbox`` setting, with its default; reads no network.

    Only this option: a mistake in the receiver's keys must not stop the DAG file from parsing or the apply task
    from draining what was already stored (the receiver's :class:`~airflow_provider_ghl.webhooks.settings.
    WebhookSettings` validates them all).
    """
    from airflow.configuration import conf

    from airflow_provider_ghl.webhooks.options import DEFAULT_INBOX, SECTION

    return str(conf.get(SECTION, "inbox", fallback=DEFAULT_INBOX)).strip()


def _uninstalled_at(results: Sequence[BatchResult]) -> float | None:
    """POSIX time of the uninstall when the last batch with a lifecycle event ends with one, else None."""
    for result in reversed(results):
        types = result.manifest.get("event_types") or {}
        if types.get("INSTALL") or types.get("UNINSTALL"):
            stamp = result.manifest.get("uninstalled_at")
            return event_instant(stamp).timestamp() if stamp else None
    return None
