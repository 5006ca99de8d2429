"""The operator that applies the GHL webhook events waiting in the inbox (see ``webhooks/apply.py``)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import Asset, AssetAlias, BaseOperatorLink, ObjectStoragePath

from airflow_provider_ghl.checks import location_or_default, one_output_of, require_choice, require_int
from airflow_provider_ghl.export.lineage import ghl_dataset_name, storage_dataset_name
from airflow_provider_ghl.export.output import COMPRESSIONS, FORMATS, file_format
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.layout import WEBHOOK_BATCHES
from airflow_provider_ghl.operators.base import GHLBaseOperator
from airflow_provider_ghl.webhooks.apply import BatchResult, HookRecordSource, drain
from airflow_provider_ghl.webhooks.inbox import inbox_url
from airflow_provider_ghl.webhooks.records import DATASETS, KINDS

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Asset alias the operator attaches each location's webhooks folder to (schedule DAGs on it).
WEBHOOKS_ASSET_ALIAS = "ghl_webhooks"
#: Most batch ids and paths the XCom summary lists.
MAX_XCOM_BATCHES = 100
#: The most events one batch may hold (and the default).
MAX_BATCH_EVENTS = 10_000


class GHLApplyWebhookEventsOperator(GHLBaseOperator):
    """Apply the GHL webhook events of one location waiting in the inbox, exactly once, as batch folders.

    The asset event that starts the run is a doorbell: the task drains the inbox itself, claiming batches of up
    to ``max_events`` until the location's high-water mark at its start is applied, so asset events that Airflow
    merged or delayed (or that never came while the DAG was paused) lose nothing. Each batch becomes
    ``<webhooks folder>/<first_seq>-<last_seq>/`` with the final state of every record it changed (last writer
    wins by event ``timestamp``, also against the batches applied before), tombstones for deletions, and
    ``_manifest.json`` last, then is acknowledged in the inbox (see :mod:`airflow_provider_ghl.webhooks.apply`).
    A task killed in between re-runs to the same output. The API is called only for what a payload lacks (a
    tag update without the contact, a task without its contact), through the connection's shared budget.

    Returns a small summary (batches, events, stale and duplicate counts, records per dataset, paths, API
    requests) and, when it applied anything, attaches an Asset for the location's webhooks folder to the
    ``ghl_webhooks`` asset alias.

    :param location_id: the location whose events to apply; default: the connection's (templated).
    :param output_root: the output root (``{ghl_export_root}``): batches go to
        ``<output_root>/<location_id>/webhooks/`` (templated). Give this or ``output_path``.
    :param output_path: the location's folder of batches itself (templated).
    :param inbox: the inbox URL (``sqlite:///<path>`` or ``redis://<conn_id>``); default: the ``[ghl_webhooks]
        inbox`` setting (templated).
    :param file_format: ``jsonl`` (default), ``csv`` or ``parquet`` (the ``[parquet]`` extra).
    :param compression: None or ``gzip`` (Parquet: the codec inside each file).
    :param max_events: the most events per batch, 1 to 10,000.
    :param ghl_conn_id: the ``ghl`` connection, for what payloads lack (templated).
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "output_root", "output_path", "inbox")
    output_asset_alias: ClassVar[str | None] = WEBHOOKS_ASSET_ALIAS
    # A batch touches many contacts: no "GHL contact" link.
    operator_extra_links: Collection[BaseOperatorLink] = ()

    def __init__(
        self,
        *,
        output_root: str | None = None,
        output_path: str | None = None,
        inbox: str | None = None,
        file_format: str = "jsonl",
        compression: str | None = None,
        max_events: int = MAX_BATCH_EVENTS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.output_root = output_root
        self.output_path = output_path
        self.inbox = inbox
        self.file_format = file_format
        self.compression = compression
        self.max_events = max_events

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        fmt = file_format("file_format", self.file_format, FORMATS)
        args.update(
            fmt=fmt,
            compression=require_choice("compression", self.compression, COMPRESSIONS),
            max_events=require_int("max_events", self.max_events, minimum=1, maximum=MAX_BATCH_EVENTS),
            inbox=inbox_url("inbox", self.inbox if self.inbox is not None else configured_inbox()),
        )
        which, where = one_output_of({"output_root": self.output_root, "output_path": self.output_path})
        args["location_id"] = location_or_default("location_id", args["location_id"], self.hook.config.location_id)
        args["folder"] = WEBHOOK_BATCHES.path(where, args["location_id"]) if which == "output_root" else where
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        from airflow_provider_ghl.webhooks.inbox import open_inbox

        location, folder = args["location_id"], args["folder"]
        self._lineage_target: tuple[str, ObjectStoragePath | str, list[ObjectStoragePath]] = (location, folder, [])
        inbox = open_inbox(args["inbox"])
        try:
            results = drain(
                inbox,
                location,
                folder,
                max_events=args["max_events"],
                fmt=args["fmt"],
                compression=args["compression"],
                source=HookRecordSource(hook, location),
                requests=lambda: hook.request_stats.requests,
            )
        finally:
            inbox.close()
        self._lineage_target = (location, folder, [r.folder for r in results])
        summary = self._summary(location, folder, results)
        outlet_events = context.get("outlet_events")
        if results and outlet_events is not None:
            extra = {k: summary[k] for k in ("location_id", "batches", "events", "first_seq", "last_seq")}
            outlet_events[AssetAlias(WEBHOOKS_ASSET_ALIAS)].add(Asset(uri=str(folder)), extra=extra)
        return summary

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

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the location's GHL records in, each batch folder written out (the folder if none)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        target = getattr(self, "_lineage_target", None)
        if target is None:  # not executed: the arguments as given
            location = self.location_id or self.hook.config.location_id or ""
            target = (location, self.output_path or self.output_root or "", [])
        location, folder, written = target
        inputs = [Dataset(*ghl_dataset_name(location, kind)) for kind in KINDS]
        outputs = [Dataset(*storage_dataset_name(str(p))) for p in (written or [folder])]
        return OperatorLineage(inputs=inputs, outputs=outputs)


def configured_inbox() -> str:
    """The ``[ghl_webhooks] inbox`` setting, with its default; reads no network.

    Only this option: a mistake in the receiver's keys must not stop the DAG file from parsing or the apply task
    from draining what was already stored (the receiver's :class:`~airflow_provider_ghl.webhooks.config.
    WebhookSettings` validates them all).
    """
    from airflow.configuration import conf

    from airflow_provider_ghl.webhooks.options import DEFAULT_INBOX, SECTION

    return str(conf.get(SECTION, "inbox", fallback=DEFAULT_INBOX)).strip()
