"""Reading every page: the contact-search window and cursor rule, and one pager per GHL paging style.

A pager knows the request for its next page (:meth:`Pager.next_call`) and what an answer means for the walk
(:meth:`Pager.take`); it sends nothing. :class:`GHLPagingMixin` walks a pager with the sync funnel or the
async one, so the sync and async iterators follow the same rules by construction.

- :class:`SearchPager`: ``POST /contacts/search`` with ``searchAfter`` cursors (no 10,000-record ceiling).
- :class:`LegacyContactPager`: the deprecated ``GET /contacts/`` with ``startAfter`` / ``startAfterId``.
- :class:`SkipPager`: ``skip`` / ``limit`` lists (a business's contacts, the location-wide task search).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from airflow_provider_ghl.exceptions import GHLApiError, GHLUnexpectedResponseError
from airflow_provider_ghl.hooks import operations as ops
from airflow_provider_ghl.hooks.request import DateLike, Request, RequestRunner, iso_utc
from airflow_provider_ghl.hooks.search import SEARCH_MAX_PAGE_LIMIT

PageT = TypeVar("PageT", covariant=True)
DateField = Literal["dateUpdated", "dateAdded"]


class ContactPage(NamedTuple):
    """One page of :meth:`GHLPagingMixin.iter_contact_pages`.

    :param contacts: the contacts, each with its ``searchAfter`` cursor.
    :param total: how many contacts GHL says match (None if it did not say).
    """

    contacts: list[dict[str, Any]]
    total: int | None


def contact_window(
    since: DateLike | None, until: DateLike | None, date_field: str, filters: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Filters and sort of a contact walk: a half-open ``[since, until)`` window, in a stable order."""
    conditions = [dict(f) for f in filters]
    if since is None and until is None:
        # dateAdded never changes, so edits during the run cannot move a contact across the cursor.
        return conditions, [{"field": "dateAdded", "direction": "asc"}]
    # Freeze an open end now: contacts edited during the run belong to the next window, not this one twice.
    window = {"lt": iso_utc(until if until is not None else datetime.now(UTC))}
    if since is not None:
        window["gte"] = iso_utc(since)
    conditions.append({"field": date_field, "operator": "range", "value": window})
    return conditions, [{"field": date_field, "direction": "asc"}]


def next_search_cursor(
    contacts: Sequence[Mapping[str, Any]], page_limit: int, cursor: list[Any] | None
) -> list[Any] | None:
    """The ``searchAfter`` to ask the next search page with, or None after the last (short) page.

    A full page must end with a new cursor: a missing or repeated one would silently truncate the walk or
    loop on the same page forever, so it is an error instead.
    """
    if len(contacts) < page_limit:
        return None
    next_cursor = contacts[-1].get("searchAfter")
    if not next_cursor or next_cursor == cursor:
        raise GHLApiError(
            method="POST", path="/contacts/search", ghl_message="search page without a new searchAfter cursor"
        )
    return list(next_cursor)


class Pager(Protocol[PageT]):
    """A walk over pages: the request for the next page, and the page an answer gives."""

    def next_call(self) -> Request[Any] | None:
        """The request of the next page, or None when the walk is over."""
        ...

    def take(self, result: Any) -> PageT:
        """Record the answer to :meth:`next_call`'s request and return its page."""
        ...


class SearchPager:
    """``POST /contacts/search`` pages in a stable order, each request continuing after the previous page's
    last ``searchAfter``. The window is frozen when the pager is made (see :func:`contact_window`)."""

    def __init__(
        self,
        *,
        since: DateLike | None,
        until: DateLike | None,
        date_field: DateField,
        query: str | None,
        filters: Sequence[Mapping[str, Any]],
        page_limit: int,
        search_after: Sequence[Any] | None,
        location_id: str | None,
    ) -> None:
        self.conditions, self.sort = contact_window(since, until, date_field, filters)
        self.query = query
        self.page_limit = page_limit
        self.location_id = location_id
        self.cursor: list[Any] | None = list(search_after) if search_after else None
        self._last: list[dict[str, Any]] | None = None

    def next_call(self) -> Request[dict[str, Any]] | None:
        if self._last is not None:
            # Judged only when the next page is wanted: the caller has had the previous one first.
            self.cursor = next_search_cursor(self._last, self.page_limit, self.cursor)
            if self.cursor is None:
                return None
        return ops.search_contacts(
            query=self.query,
            filters=self.conditions or None,
            sort=self.sort,
            page_limit=self.page_limit,
            search_after=self.cursor,
            location_id=self.location_id,
        )

    def take(self, result: Any) -> ContactPage:
        # The funnel checked the shape: ``contacts`` is a list (missing or null is an error, never the end).
        self._last = result["contacts"]
        return ContactPage(self._last, _count(result, "total"))


class LegacyContactPager:
    """The deprecated ``GET /contacts/``: ``meta.startAfter`` / ``meta.startAfterId`` cursors."""

    def __init__(self, *, query: str | None, page_limit: int, location_id: str | None) -> None:
        self.query = query
        self.page_limit = page_limit
        self.location_id = location_id
        self.start_after: int | None = None
        self.start_after_id: str | None = None
        self.done = False

    def next_call(self) -> Request[dict[str, Any]] | None:
        if self.done:
            return None
        return ops.get_contacts(
            limit=self.page_limit,
            query=self.query,
            start_after=self.start_after,
            start_after_id=self.start_after_id,
            location_id=self.location_id,
        )

    def take(self, result: Any) -> list[dict[str, Any]]:
        contacts: list[dict[str, Any]] = result["contacts"]
        meta = result.get("meta") if isinstance(result.get("meta"), dict) else {}
        cursor = (meta.get("startAfter"), meta.get("startAfterId"))
        # A short page is the last; a cursor that does not move would loop forever.
        if len(contacts) < self.page_limit or not cursor[1] or cursor == (self.start_after, self.start_after_id):
            self.done = True
        else:
            self.start_after, self.start_after_id = cursor
        return contacts


class SkipPager:
    """``skip`` / ``limit`` lists: ends on a short page, or once ``skip`` reaches the total GHL reports.

    :param build: the request of the page starting at ``skip``.
    :param page_limit: records per request.
    :param records: the records of an answer.
    :param total: the total an answer reports, if it reports one.
    """

    def __init__(
        self,
        build: Callable[[int], Request[Any]],
        *,
        page_limit: int,
        records: Callable[[Any], list[dict[str, Any]]],
        total: Callable[[Any], int | None] = lambda result: None,
    ) -> None:
        self.build = build
        self.page_limit = page_limit
        self.records = records
        self.total = total
        self.skip = 0
        self.done = False

    def next_call(self) -> Request[Any] | None:
        return None if self.done else self.build(self.skip)

    def take(self, result: Any) -> list[dict[str, Any]]:
        records = self.records(result)
        self.skip += len(records)
        total = self.total(result)
        self.done = len(records) < self.page_limit or (total is not None and self.skip >= total)
        return records


class GHLPagingMixin(RequestRunner):
    """The hook's iterators: each walks one pager through the sync funnel, or the async one."""

    def walk(self, pager: Pager[PageT]) -> Iterator[PageT]:
        """The pages of ``pager``, each one request through :meth:`run`."""
        while (call := pager.next_call()) is not None:
            yield pager.take(self.run(call))

    async def awalk(self, pager: Pager[PageT]) -> AsyncIterator[PageT]:
        """The pages of ``pager``, each one request through :meth:`arun` (reads only)."""
        while (call := pager.next_call()) is not None:
            yield pager.take(await self.arun(call))

    def iter_contact_pages(
        self,
        *,
        since: DateLike | None = None,
        until: DateLike | None = None,
        date_field: DateField = "dateUpdated",
        query: str | None = None,
        filters: Sequence[Mapping[str, Any]] = (),
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        search_after: Sequence[Any] | None = None,
        location_id: str | None = None,
    ) -> Iterator[ContactPage]:
        """Pages of :meth:`iter_contacts`, each with GHL's ``total``; can start after a saved cursor.

        Every contact carries its ``searchAfter`` cursor, so a caller that saves the last one it processed can
        resume exactly there (pass it as ``search_after``) with the same window and filters.

        :param search_after: start after this contact cursor (a ``searchAfter`` value GHL returned).
        Other parameters as in :meth:`iter_contacts`.
        """
        # Made on the first next(), so an open window's end is the time of the first request.
        yield from self.walk(SearchPager(**_search_args(locals())))

    def iter_contacts(
        self,
        *,
        since: DateLike | None = None,
        until: DateLike | None = None,
        date_field: DateField = "dateUpdated",
        query: str | None = None,
        filters: Sequence[Mapping[str, Any]] = (),
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        location_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every contact of a location, or those whose ``date_field`` is in ``[since, until)``.

        Pages with ``searchAfter`` (never ``page``), so there is no 10,000-record ceiling. Without a window the
        order is ``dateAdded`` ascending, which edits cannot reorder: each contact comes exactly once even
        while contacts change. With a window the order is ``date_field`` ascending; an open ``until`` is frozen
        to the time of the first request, so contacts edited during the run fall into the next window instead
        of coming twice. GHL's search index lags by seconds: let incremental windows overlap a little.

        :param since: window start (inclusive); datetime or ISO string.
        :param until: window end (exclusive); default now.
        :param date_field: ``dateUpdated`` or ``dateAdded``.
        :param query: full-text query.
        :param filters: more GHL filters, AND-ed with the window.
        :param page_limit: contacts per request, at most 500.
        :param location_id: location; default: the hook's.
        """
        for page in self.walk(SearchPager(**_search_args(locals()))):
            yield from page.contacts

    async def aiter_contacts(
        self,
        *,
        since: DateLike | None = None,
        until: DateLike | None = None,
        date_field: DateField = "dateUpdated",
        query: str | None = None,
        filters: Sequence[Mapping[str, Any]] = (),
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        location_id: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`iter_contacts`: the same pages, window and ordering rules, for the triggerer.

        Parameters as in :meth:`iter_contacts`.
        """
        async for page in self.awalk(SearchPager(**_search_args(locals()))):
            for contact in page.contacts:
                yield contact

    def iter_contacts_legacy(
        self, *, query: str | None = None, page_limit: int = 100, location_id: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every contact through the deprecated ``GET /contacts/`` (``startAfter`` / ``startAfterId`` cursor).

        Prefer :meth:`iter_contacts`; this exists for accounts and tools that still rely on the old list.

        :param query: text filter.
        :param page_limit: contacts per request, at most 100.
        :param location_id: location; default: the hook's.
        """
        for page in self.walk(LegacyContactPager(query=query, page_limit=page_limit, location_id=location_id)):
            yield from page

    def iter_contacts_by_business(
        self,
        business_id: str,
        *,
        query: str | None = None,
        page_limit: int = 100,
        location_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every contact of a business (``GET /contacts/business/{businessId}``, ``skip``/``limit`` paging).

        :param business_id: the business id.
        :param query: text filter.
        :param page_limit: contacts per request.
        :param location_id: location; default: the hook's.
        """
        pager = SkipPager(
            lambda skip: ops.get_contacts_by_business(
                business_id, limit=page_limit, skip=skip, query=query, location_id=location_id
            ),
            page_limit=page_limit,
            records=lambda page: page["contacts"],
            total=lambda page: _count(page, "count"),
        )
        for page in self.walk(pager):
            yield from page

    def iter_location_tasks(
        self,
        *,
        contact_ids: Sequence[str] | None = None,
        completed: bool | None = None,
        assigned_to: Sequence[str] | None = None,
        query: str | None = None,
        page_limit: int = 100,
        location_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every task of a location matching the filters (:meth:`search_location_tasks`, paged by ``skip``).

        :param contact_ids: only tasks of these contacts.
        :param completed: only completed (True) or open (False) tasks.
        :param assigned_to: only tasks assigned to these users.
        :param query: text filter.
        :param page_limit: tasks per request.
        :param location_id: location; default: the hook's.
        """
        pager = SkipPager(
            lambda skip: ops.search_location_tasks(
                contact_ids=contact_ids,
                completed=completed,
                assigned_to=assigned_to,
                query=query,
                limit=page_limit,
                skip=skip,
                location_id=location_id,
            ),
            page_limit=page_limit,
            records=lambda tasks: list(tasks or []),
        )
        for page in self.walk(pager):
            yield from page


def _count(result: Mapping[str, Any], key: str) -> int | None:
    """A count GHL reports in a page (``total``, ``count``), or None when it is absent; a count that is not a
    whole number is an unexpected shape, not a crash."""
    value = result.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise GHLUnexpectedResponseError(
            f"unexpected response shape: {key!r} is {value!r:.40}, expected a whole number",
            ghl_message=f"unexpected response shape: {key!r} is not a whole number",
        )
    return int(value)


def _search_args(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`SearchPager` arguments among an iterator's ``locals()`` (an absent cursor is None)."""
    names = ("since", "until", "date_field", "query", "filters", "page_limit", "location_id")
    return {**{name: arguments[name] for name in names}, "search_after": arguments.get("search_after")}
