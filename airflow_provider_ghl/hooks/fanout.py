"""Concurrent fan-out: the tasks, notes and appointments of many contacts, fetched by a bounded thread pool.

Every request still goes through the hook's one funnel, so the pool runs at the token's shared rate budget
without 429s however many threads it has. :func:`lazily_fed` is the one bounded, lazily fed pool of the provider
(the write-back's rows run on it too).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, NamedTuple, TypeVar

from airflow_provider_ghl.checks import require_choices
from airflow_provider_ghl.exceptions import GHLError, GHLTaskStopped
from airflow_provider_ghl.hooks import operations as ops
from airflow_provider_ghl.hooks.request import Request, RequestRunner

T = TypeVar("T")
R = TypeVar("R")


def lazily_fed(
    work: Callable[[T], R],
    items: Iterable[T],
    workers: int,
    *,
    thread_name: str,
    feeding: Callable[[], bool] = lambda: True,
) -> Iterator[tuple[T, Future[R]]]:
    """Run ``work`` over ``items`` on ``workers`` threads; yield each ``(item, its finished future)`` as it finishes.

    ``items`` is consumed lazily, at most two per worker ahead of what the caller has taken, so a generator of
    millions costs no memory. When ``feeding()`` turns false no further item is taken: those in flight still
    finish and are yielded. Closing the iterator early cancels the items not started and waits for the running
    ones.

    :param work: what to do with one item (its exception is in the future, for the caller to judge).
    :param items: the items.
    :param workers: threads.
    :param thread_name: the threads' name prefix.
    :param feeding: whether to go on taking items (checked before each take).
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name)
    pending: dict[Future[R], T] = {}
    feed = iter(items)

    def submit(count: int) -> None:
        if feeding():
            for item in itertools.islice(feed, count):
                pending[pool.submit(work, item)] = item

    try:
        submit(workers * 2)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            finished = [(pending.pop(future), future) for future in done]
            yield from finished
            submit(len(finished))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


#: Builders of the child lists of one contact, by kind.
CHILD_LISTS: dict[str, Callable[[str], Request[list[dict[str, Any]]]]] = {
    "tasks": ops.get_tasks,
    "notes": ops.get_notes,
    "appointments": ops.get_appointments,
}
#: Child collections of a contact that :meth:`GHLFanoutMixin.fetch_contact_children` can fetch.
CHILD_KINDS = tuple(CHILD_LISTS)


class ContactChildren(NamedTuple):
    """One result of :meth:`GHLFanoutMixin.fetch_contact_children`.

    :param contact_id: the contact.
    :param kind: ``tasks``, ``notes`` or ``appointments``.
    :param items: the records (empty on error).
    :param error: the failure, when ``raise_on_error=False``.
    """

    contact_id: str
    kind: str
    items: list[dict[str, Any]]
    error: GHLError | None = None


class GHLFanoutMixin(RequestRunner):
    """The hook's concurrent fan-out over contacts."""

    #: Concurrency of the hook: its HTTP pool size, and so the most fan-out threads.
    max_workers: int

    def fetch_contact_children(
        self,
        contact_ids: Iterable[str],
        kinds: Sequence[str] = CHILD_KINDS,
        *,
        max_workers: int | None = None,
        raise_on_error: bool = True,
    ) -> Iterator[ContactChildren]:
        """Fetch tasks / notes / appointments of many contacts in parallel, yielding results as they complete.

        A bounded pool of threads shares the hook's session and the connection's shared rate budget, so the work
        runs at the token's budget without 429s. ``contact_ids`` is consumed lazily (it can be
        :meth:`iter_contacts` mapped to ids); at most two jobs per worker are queued at a time.

        :param contact_ids: contacts to fetch for.
        :param kinds: any of ``tasks``, ``notes``, ``appointments``.
        :param max_workers: threads; default and maximum: the hook's ``max_workers`` (its pool size).
        :param raise_on_error: raise the first error (default) or yield it in :attr:`ContactChildren.error`.
        """
        kinds = require_choices("kinds", kinds, CHILD_KINDS, allow_empty=False)
        workers = min(max_workers or self.max_workers, self.max_workers)
        jobs = ((contact_id, kind) for contact_id in contact_ids for kind in kinds)

        def fetch(job: tuple[str, str]) -> list[dict[str, Any]]:
            return self.run(CHILD_LISTS[job[1]](job[0]))

        for (contact_id, kind), future in lazily_fed(fetch, jobs, workers, thread_name="ghl-fanout"):
            error = future.exception()
            if error is None:
                yield ContactChildren(contact_id, kind, future.result() or [])
            elif raise_on_error or not isinstance(error, GHLError) or isinstance(error, GHLTaskStopped):
                raise error
            else:
                yield ContactChildren(contact_id, kind, [], error)
