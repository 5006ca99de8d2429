"""Where a Marketplace app is installed: an agency install's walk over GHL's installed-locations listing.

v2 (``GET /oauth/installedLocations``) pages by ``skip``/``limit`` and answers ``{locations, count}``; v3
(``GET /oauth/installed-locations``) pages by an opaque ``pageToken`` and answers ``{items, pagination}``.
:class:`InstalledLocationsPager` speaks both; :class:`GHLInstallsMixin` walks it with the sync or the async
funnel, on the agency token and the company's rate budget (the endpoint row says ``agency``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, NamedTuple

from airflow_provider_ghl.checks import require_int
from airflow_provider_ghl.exceptions import GHLUnexpectedResponseError
from airflow_provider_ghl.hooks import operations as ops
from airflow_provider_ghl.hooks.request import Request, RequestRunner

#: GHL's largest page of the listing (both versions).
INSTALLS_MAX_PAGE = 100


def _problem(detail: str) -> GHLUnexpectedResponseError:
    return GHLUnexpectedResponseError(
        f"installed-locations listing: unexpected response shape: {detail}",
        ghl_message=f"unexpected response shape: {detail}",
    )


class InstalledLocationsPager:
    """The pages of the installed-locations listing of one company and app.

    :param company_id: the agency's company id.
    :param app_id: the Marketplace app's id.
    :param v3: page the v3 way (``pageSize``/``pageToken``, ``items``) rather than v2's (``skip``/``limit``,
        ``locations``).
    :param is_installed: only where the app is (True) or is not (False) installed; None: every location.
    :param page_size: records per request.
    """

    def __init__(self, company_id: str, app_id: str, *, v3: bool, is_installed: bool | None, page_size: int) -> None:
        self.company_id = company_id
        self.app_id = app_id
        self.v3 = v3
        self.is_installed = is_installed
        self.page_size = page_size
        self.skip = 0
        self.token: str | None = None
        self.seen_tokens: set[str] = set()
        self.done = False

    def next_call(self) -> Request[Any] | None:
        if self.done:
            return None
        if self.v3:
            return ops.get_installed_locations(
                self.company_id, self.app_id, is_installed=self.is_installed, page_size=self.page_size,
                page_token=self.token,
            )  # fmt: skip
        return ops.get_installed_locations(
            self.company_id, self.app_id, is_installed=self.is_installed, skip=self.skip, limit=self.page_size
        )

    def take(self, result: Any) -> list[dict[str, Any]]:
        # The funnel checked the answer's shape (the endpoint row's, per version): the list is a list.
        records = _records(result["items" if self.v3 else "locations"], "items" if self.v3 else "locations")
        if self.v3:
            pagination = result["pagination"]
            token = pagination.get("nextPageToken")
            if not pagination.get("hasNextPage") or not token:
                self.done = True
            elif not isinstance(token, str) or token in self.seen_tokens:
                # A repeated token would walk the same pages forever.
                raise _problem("a next page token that was already followed")
            else:
                self.seen_tokens.add(token)
                self.token = token
            return records
        self.skip += len(records)
        count = result.get("count")
        self.done = len(records) < self.page_size or (isinstance(count, int) and self.skip >= count)
        return records


def _records(value: list[Any], key: str) -> list[dict[str, Any]]:
    """The page's locations, each an object with a non-empty ``_id``."""
    for record in value:
        if not isinstance(record, Mapping) or not isinstance(record.get("_id"), str) or not record["_id"].strip():
            raise _problem(f"a location in {key!r} without an _id")
    return [dict(record) for record in value]


class AgencyApp(NamedTuple):
    """Whose installs a listing asks for, and in which API version.

    :param company_id: the agency's company id.
    :param app_id: the Marketplace app's id.
    :param v3: whether the connection speaks API v3.
    """

    company_id: str
    app_id: str
    v3: bool


class GHLInstallsMixin(RequestRunner):
    """The hook's walk over where the app is installed (an agency install's connection)."""

    def agency_app(self, company_id: str | None = None, app_id: str | None = None) -> AgencyApp:
        """The company and app a listing asks for (implemented by the hook: the connection's by default).

        :param company_id: instead of the connection's.
        :param app_id: instead of the connection's.
        """
        raise NotImplementedError

    def _installs_pager(
        self, company_id: str | None, app_id: str | None, is_installed: bool | None, page_size: int
    ) -> InstalledLocationsPager:
        require_int("page_size", page_size, minimum=1, maximum=INSTALLS_MAX_PAGE)
        agency = self.agency_app(company_id, app_id)
        return InstalledLocationsPager(
            agency.company_id, agency.app_id, v3=agency.v3, is_installed=is_installed, page_size=page_size
        )

    def iter_installed_locations(
        self,
        *,
        is_installed: bool | None = True,
        company_id: str | None = None,
        app_id: str | None = None,
        page_size: int = INSTALLS_MAX_PAGE,
    ) -> Iterator[dict[str, Any]]:
        """The company's locations where the app is installed, as GHL lists them (``_id``, ``name``,
        ``isInstalled``, ``installedAt``, ...), every page of v2's or v3's listing. Needs an agency install
        (``user_type=Company``) and the app's id (the connection's ``app_id`` extra).

        :param is_installed: True (default): where the app is installed; False: where it is not; None: all.
        :param company_id: default: the connection's ``company_id``, else the one of the agency's token set.
        :param app_id: default: the connection's ``app_id``.
        :param page_size: locations per request, at most 100.
        """
        pager = self._installs_pager(company_id, app_id, is_installed, page_size)
        while (call := pager.next_call()) is not None:
            yield from pager.take(self.run(call))

    async def aiter_installed_locations(
        self,
        *,
        is_installed: bool | None = True,
        company_id: str | None = None,
        app_id: str | None = None,
        page_size: int = INSTALLS_MAX_PAGE,
    ) -> AsyncIterator[dict[str, Any]]:
        """Async :meth:`iter_installed_locations`: the same pages, for the triggerer.

        Parameters as in :meth:`iter_installed_locations`.
        """
        pager = self._installs_pager(company_id, app_id, is_installed, page_size)
        while (call := pager.next_call()) is not None:
            for record in pager.take(await self.arun(call)):
                yield record
