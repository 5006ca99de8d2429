"""What every operator that writes outputs shares: announcing each committed output, finding the previous one, and
the lineage of its runs.

An output is announced as an asset event: the operator's asset alias (``output_asset_alias``, which DAGs schedule
on) gets an event of the asset of the task's outputs for one location (:meth:`GHLOutputOperator.output_asset`),
with the committed directory in its extra (``output_path``). That event is also the record of where the task's
last committed output of the location is: the next run reads it back (:meth:`GHLOutputOperator.find_previous_output`)
whatever the ``output_path`` of either run, so nothing depends on how output directories are named.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseOperatorLink, ObjectStoragePath

from airflow_provider_ghl.checks import trusted_location
from airflow_provider_ghl.operators.base import GHLBaseOperator
from airflow_provider_ghl.outputs.lineage import DatasetName, lineage
from airflow_provider_ghl.outputs.runs import CommittedOutput, read_committed

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

#: The asset events looked at, newest first, for the previous committed output (a re-run of the same output
#: directory, or an output since deleted, is passed over).
PREVIOUS_EVENTS = 20


def output_asset(location_id: str, dag_id: str, task_id: str) -> Asset:
    """The asset of one task's outputs for one location: ``ghl/<location_id>/<dag_id>.<task_id>``.

    One asset per location and task, not per run: each committed output is an event of it.

    :param location_id: the location.
    :param dag_id: the task's DAG.
    :param task_id: the task.
    """
    return Asset(name=f"ghl/{location_id}/{dag_id}.{task_id}", uri=f"ghl://{location_id}/{dag_id}.{task_id}")


def committed_output_events(asset: Asset, limit: int = PREVIOUS_EVENTS) -> list[Any]:
    """The latest asset events of ``asset``, newest first, read from Airflow while a task runs.

    :param asset: the asset (by name and URI, so an asset only ever emitted through an alias is found too).
    :param limit: the most events to read.
    :return: Airflow's ``AssetEventResult`` objects; none when there are none or the run is not Airflow's.
    """
    # The Task SDK's reader of asset events (what ``inlet_events`` returns), for an asset the task does not
    # declare as an inlet: its outputs' asset exists only once the first event made it.
    from airflow.sdk.execution_time.context import InletEventsAccessor

    try:
        return list(InletEventsAccessor(asset_name=asset.name, asset_uri=asset.uri).ascending(False).limit(limit))
    except Exception as err:  # no supervisor (not run by Airflow's task runner), or the API refused
        log.warning("Could not read the asset events of %s (%s): no previous output is known.", asset.name, err)
        return []


class GHLOutputOperator(GHLBaseOperator):
    """Base of the GHL operators whose runs commit outputs (exports, write-back, webhook batches).

    Each committed output is announced (:meth:`announce_output`) as an event of the asset of the task's outputs
    for the location, through the operator's asset alias; :meth:`find_previous_output` reads the last one back. The
    lineage a run recorded (:meth:`record_lineage`) is what ``get_openlineage_facets_on_complete`` reports;
    before a run, :meth:`planned_lineage` (the arguments as given).
    """

    # An output touches many contacts: no "GHL contact" link.
    operator_extra_links: Collection[BaseOperatorLink] = ()

    def announce_output(
        self, context: Context, location_id: str, root: ObjectStoragePath, extra: Mapping[str, Any]
    ) -> None:
        """Add the asset event of a committed output (registered by Airflow when the task succeeds).

        :param context: the task's context (its ``outlet_events`` and ``ti``; outside Airflow nothing happens).
        :param location_id: the output's location.
        :param root: the committed directory (``output_path`` in the event's extra).
        :param extra: more of the event's extra (record counts...).
        """
        outlet_events, ti = context.get("outlet_events"), context.get("ti")
        if outlet_events is None or ti is None or self.output_asset_alias is None:
            return
        asset = output_asset(location_id, ti.dag_id, ti.task_id)
        event = {"location_id": location_id, "output_path": str(root), **extra}
        outlet_events[AssetAlias(self.output_asset_alias)].add(asset, extra=event)

    def find_previous_output(
        self, context: Context, location_id: str, dataset: str, current: ObjectStoragePath
    ) -> CommittedOutput | None:
        """This task's latest committed output of ``location_id`` before this run, whatever its directory.

        Read from the asset events of :func:`output_asset`, newest first: the first one whose directory is not
        ``current`` and still holds a committed output of ``dataset`` and the location.

        :param context: the task's context (outside Airflow's task runner there is no previous output).
        :param location_id: the location.
        :param dataset: the manifest's ``dataset`` the previous output must have.
        :param current: this run's directory (a re-run of it is not its own predecessor).
        """
        ti = context.get("ti")
        if ti is None:
            return None
        for event in committed_output_events(output_asset(location_id, ti.dag_id, ti.task_id)):
            path = (event.extra or {}).get("output_path")
            if not path or path == str(current):
                continue
            try:
                found = read_committed(trusted_location("previous output", ObjectStoragePath(path)))
            except Exception as err:  # the storage of an old output may be gone, unreadable or not ours
                log.warning("The previous output %s cannot be read (%s); looking further back.", path, err)
                continue
            if found is not None and (found.dataset, found.location_id) == (dataset, location_id):
                return found
            log.warning(
                "The previous output %s holds no committed %s of %s; looking further back.", path, dataset, location_id
            )
        return None

    def record_lineage(self, inputs: Sequence[DatasetName], outputs: Sequence[DatasetName]) -> None:
        """What this run read and wrote, for OpenLineage (called once the run knows its location and paths).

        :param inputs: the datasets read.
        :param outputs: the datasets written.
        """
        self._lineage = (list(inputs), list(outputs))

    def planned_lineage(self) -> tuple[list[DatasetName], list[DatasetName]]:
        """The lineage from the arguments as given, for a run that never resolved its own."""
        raise NotImplementedError

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (when the openlineage provider is installed): what the run recorded it read and wrote.

        :param task_instance: the finished task instance (unused: the run recorded its own lineage).
        :return: an ``OperatorLineage``.
        """
        recorded: tuple[list[DatasetName], list[DatasetName]] | None = getattr(self, "_lineage", None)
        return lineage(*(recorded or self.planned_lineage()))
