"""Children of changed contacts (tasks, notes, appointments), fetched at the request floor."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from airflow_provider_ghl.exceptions import GHLScopeError
from airflow_provider_ghl.hooks.ghl import CHILD_KINDS, GHLHook
from airflow_provider_ghl.hooks.scopes import ScopeDegradations

#: The location-wide task search pages at most this many tasks per request.
TASK_SEARCH_LIMIT = 100
TASK_SEARCH_MODES = ("auto", "always", "never")
#: The hook operation of the location-wide task search (an optional read: see ScopeDegradations).
TASK_SEARCH = "search_location_tasks"


def use_task_search(mode: str, contacts: int) -> bool:
    """Whether one location-wide task search beats one ``GET .../tasks`` per contact for this many contacts.

    A search answers up to :data:`TASK_SEARCH_LIMIT` tasks per request, so for more than one contact it costs
    fewer requests unless the contacts average 100 tasks or more.
    """
    return mode == "always" or (mode == "auto" and contacts > 1)


def child_records(
    hook: GHLHook,
    contacts: Sequence[Mapping[str, Any]],
    include: Sequence[str],
    *,
    task_search: str = "auto",
    max_workers: int | None = None,
    location_id: str | None = None,
    degradations: ScopeDegradations | None = None,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(kind, record)`` for every child of ``contacts``; each record carries its ``contactId``.

    :param degradations: where a missing ``locations/tasks.readonly`` scope is recorded: with ``task_search``
        ``auto`` the tasks are then read per contact, for this page and every later one. With ``always`` the
        refusal is raised.
    """
    ids = [c["id"] for c in contacts]
    if not ids:
        return
    kinds = [k for k in include if k in CHILD_KINDS]
    searchable = degradations is None or not degradations.lacks(TASK_SEARCH)
    if "tasks" in kinds and searchable and use_task_search(task_search, len(ids)):
        try:
            # One page of contacts holds few enough tasks to gather before yielding any (the refusal, if
            # any, comes on the first request, and nothing of this page has been written then).
            tasks = list(
                hook.iter_location_tasks(contact_ids=ids, page_limit=TASK_SEARCH_LIMIT, location_id=location_id)
            )
        except GHLScopeError as err:
            if task_search == "always" or degradations is None:
                raise
            degradations.without(TASK_SEARCH, err)
        else:
            kinds.remove("tasks")
            for task in tasks:
                yield "tasks", {**task, "contactId": task.get("contactId")}
    if kinds:
        for result in hook.fetch_contact_children(ids, kinds=kinds, max_workers=max_workers):
            for item in result.items:
                yield result.kind, {**item, "contactId": result.contact_id}
