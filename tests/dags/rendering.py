"""Render an example DAG's task for a known run in this process, as Airflow renders it for a task instance."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pendulum


class _TaskInstance:
    """What rendering asks of a task instance: its map index, its template context, its upstream XComs."""

    def __init__(self, task: Any, map_index: int, xcoms: Mapping[str, Any]) -> None:
        self.task = task
        self.map_index = map_index
        self.xcoms = xcoms
        # Which map index of each upstream to read; the DAGs' upstreams (``locations``, ``changed_locations``,
        # ``wait_for_changes``) are not mapped.
        self._upstream_map_indexes: dict[str, int] = {}
        self.context: dict[str, Any] = {}

    def get_template_context(self) -> dict[str, Any]:
        return self.context

    def xcom_pull(self, task_ids: str, key: str = "return_value", **_: Any) -> Any:
        return self.xcoms[task_ids]


def render(
    task: Any,
    *,
    logical_date: datetime,
    data_interval: tuple[datetime, datetime],
    locations: Sequence[Mapping[str, str]],
    map_index: int = 0,
) -> Any:
    """The task as map index ``map_index`` of a run whose ``locations`` task returned ``locations``, rendered.

    A mapped task is unmapped first, a task of a mapped task group resolves its arguments from ``locations``;
    Variables come from the environment (``AIRFLOW_VAR_*``). The parsed DAG is left as it was.

    :param task: a task of a DAG from a ``DagBag``.
    :param logical_date: the run's logical date (``ds`` is its day).
    :param data_interval: the run's data interval.
    :param locations: the ``locations`` task's return value (and ``changed_locations``'s and
        ``wait_for_changes``').
    :param map_index: which location.
    """
    from airflow.sdk.execution_time.context import MacrosAccessor, VariableAccessor

    task = task if task.is_mapped else copy.deepcopy(task)  # rendering a plain task changes it in place
    # The DAGs map over ``locations``, or over what ``changed_locations`` or ``wait_for_changes`` kept of it (here:
    # every location).
    upstream = {name: list(locations) for name in ("locations", "changed_locations", "wait_for_changes")}
    ti = _TaskInstance(task, map_index, upstream)
    start, end = (pendulum.instance(moment) for moment in data_interval)
    ti.context.update(
        dag=task.dag,
        dag_run=SimpleNamespace(conf={}),
        task=task,
        ti=ti,
        task_instance=ti,
        params={},
        var={"value": VariableAccessor(deserialize_json=False), "json": VariableAccessor(deserialize_json=True)},
        macros=MacrosAccessor(),
        logical_date=pendulum.instance(logical_date),
        ds=logical_date.strftime("%Y-%m-%d"),
        data_interval_start=start,
        data_interval_end=end,
    )
    task.render_template_fields(ti.context)
    return ti.context["task"]  # a mapped task puts its unmapped, rendered self here
