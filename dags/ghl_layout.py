"""Where the example DAGs write: one definition per kind of output, as an Airflow template and as a path.

A helper of the example DAGs, not of the provider: copy it beside them (the DAGs folder is on ``sys.path``).
The provider's operators write wherever their ``output_path`` says and depend on no layout.

Every output directory is ``<root>/<location_id>/<kind's own part>/``::

    <root>/<location_id>/contacts/full/<ds>/                                           FULL_EXPORT
    <root>/<location_id>/enrichment/<data_interval_start>__<data_interval_end>/        ENRICHMENT
    <root>/<location_id>/webhooks/<first_seq>-<last_seq>/                              WEBHOOK_BATCHES
    <root>/<location_id>/writeback/inbox/, writeback/plan/<ds>/, writeback/results/<ds>/   WRITEBACK_*

(``ts_nodash`` timestamps for the window.) A DAG passes ``FULL_EXPORT.template()`` as ``output_path``; the demo,
or a consumer downstream, computes the same directory with ``FULL_EXPORT.path(root, location_id, ds=day)``.
Both come from the one :class:`OutputLayout`, so a change here moves the DAGs and their readers together.

A webhook batch is named by the events it holds, not by the DAG run (a batch is the same whichever run applies
it): :class:`BatchLayout` gives the location's folder of batches as a template (``WEBHOOK_BATCHES.template()``)
and each batch as a path.

Imports nothing from Airflow, so a script can use it before it has configured Airflow (``scripts/demo.py``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol, Self, TypeVar, overload

#: Airflow Variable with the output root URI (any Airflow object-storage URI, e.g. ``s3://bucket/ghl``).
EXPORT_ROOT_VARIABLE = "ghl_export_root"
#: The root when the Variable is unset.
#: Under AIRFLOW_HOME (as Airflow resolves it: the variable, else ``~/airflow``), never a shared, world-writable
#: place such as /tmp, where another local user could make the directory first and plant inputs or manifests.
DEFAULT_EXPORT_ROOT = Path(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "ghl-exports").as_uri()
#: The root, for templates: the Variable, read when the task renders (never when the DAG file is parsed).
EXPORT_ROOT = f"{{{{ var.value.get('{EXPORT_ROOT_VARIABLE}', '{DEFAULT_EXPORT_ROOT}') }}}}"

#: The task's own ``location_id``, for its other templates; the same in a mapped task, a task in a mapped
#: task group, and an unmapped task. Airflow renders template fields one by one, in the operator's
#: ``template_fields`` order. In a mapped task group ``location_id`` is a stand-in (``MappedArgument``) until
#: its own field renders, which for the export operators is after ``output_path``, so ``{{ task.location_id }}``
#: would print the stand-in there. ``task.render_template`` resolves the stand-in (and renders a plain value
#: or template as usual) in the task's own template context. The alternative, pulling the ``locations``
#: XCom at ``ti.map_index``, ties the template to one upstream task id and picks the last location in an
#: unmapped task (map index -1).
LOCATION = "{{ task.render_template(task.location_id, ti.get_template_context()) }}"

#: The enrichment windows' overlap: GHL's search index lags a little behind writes, so the enrichment of
#: ``[start, end)`` asks for contacts changed since ``start - LOOKBACK`` (its directory keeps the window's name).
LOOKBACK = timedelta(minutes=5)


def _utc(moment: date) -> date:
    # Airflow renders the run's dates in UTC; an aware datetime given in another zone must name the same day.
    return moment.astimezone(UTC) if isinstance(moment, datetime) and moment.tzinfo else moment


def _ds(day: date) -> str:
    return _utc(day).strftime("%Y-%m-%d")


def _ts_nodash(moment: date) -> str:
    if not isinstance(moment, datetime):
        raise TypeError(f"a window bound must be a datetime, got {moment!r}")
    return _utc(moment).strftime("%Y%m%dT%H%M%S")


@dataclass(frozen=True)
class RunValue:
    """A part of an output path that depends on the DAG run.

    :param name: the Airflow template-context name, also the keyword :meth:`OutputLayout.path` takes it by.
    :param template: how Airflow renders it.
    :param format: the same text from a Python ``date`` / ``datetime``.
    :param regex: what that text looks like (a regular expression); its text sorts in time order.
    """

    name: str
    template: str
    format: Callable[[date], str]
    regex: str


DS = RunValue("ds", "{{ ds }}", _ds, r"\d{4}-\d{2}-\d{2}")
DATA_INTERVAL_START = RunValue(
    "data_interval_start", "{{ data_interval_start | ts_nodash }}", _ts_nodash, r"\d{8}T\d{6}"
)
DATA_INTERVAL_END = RunValue("data_interval_end", "{{ data_interval_end | ts_nodash }}", _ts_nodash, r"\d{8}T\d{6}")


class _Joinable(Protocol):
    """A path that joins with ``/``: ``pathlib.Path``, ``ObjectStoragePath``, ``UPath``."""

    def __truediv__(self, key: str, /) -> Self: ...


_P = TypeVar("_P", bound=_Joinable)


class _Listable(Protocol):
    """A directory path that knows its name and parent and lists its children (``Path``, ``ObjectStoragePath``)."""

    @property
    def name(self) -> str: ...
    @property
    def parent(self) -> Self: ...
    def iterdir(self) -> Iterable[Self]: ...


_L = TypeVar("_L", bound=_Listable)


@dataclass(frozen=True)
class OutputLayout:
    """One kind of output: the directory ``<root>/<location_id>/<pattern>``.

    :param pattern: the kind's part of the path, ``/``-separated, with ``{name}`` for each of ``values``.
    :param values: the run values the pattern names.
    """

    pattern: str
    values: tuple[RunValue, ...]

    def template(self, root: str = EXPORT_ROOT, location: str = LOCATION) -> str:
        """The Airflow template of the directory, for an operator's ``output_path``.

        :param root: the root URI or its template; default: the ``ghl_export_root`` Variable.
        :param location: the location or its template; default: the task's own ``location_id``.
        """
        return f"{root}/{location}/" + self.pattern.format(**{v.name: v.template for v in self.values})

    @overload
    def path(self, root: str, location_id: str, **run: date) -> str: ...
    @overload
    def path(self, root: _P, location_id: str, **run: date) -> _P: ...
    def path(self, root: str | _P, location_id: str, **run: date) -> str | _P:
        """The directory :meth:`template` renders to for ``location_id`` and the run's values.

        :param root: the root: a URI string (the Variable's value) gives a string, a path object (``Path``,
            ``ObjectStoragePath``) a path object of the same kind.
        :param location_id: the location.
        :param run: each of :attr:`values` by name, e.g. ``ds=date(2026, 11, 22)`` or
            ``data_interval_start=..., data_interval_end=...`` (aware datetimes are taken in UTC, as Airflow does).
        """
        names = {v.name for v in self.values}
        if set(run) != names:
            raise TypeError(f"{self.pattern!r} takes {sorted(names)}, got {sorted(run)}")
        parts = [location_id, *self.pattern.format(**{v.name: v.format(run[v.name]) for v in self.values}).split("/")]
        if isinstance(root, str):
            return "/".join([root.rstrip("/"), *parts])
        for part in parts:
            root = root / part
        return root

    def describe(self, root: str = f"{{{EXPORT_ROOT_VARIABLE}}}") -> str:
        """The layout for people: ``{ghl_export_root}/<location_id>/contacts/full/<ds>/``.

        :param root: what to show for the root.
        """
        kind = self.pattern.format(**{v.name: f"<{v.name}>" for v in self.values})
        return f"{root.rstrip('/')}/<location_id>/{kind}/"


#: A full export of a location's contacts, one directory per logical date.
FULL_EXPORT = OutputLayout("contacts/full/{ds}", (DS,))
#: The first full export of a location new to the DAGs (an install), one directory per logical date.
FIRST_EXPORT = OutputLayout("contacts/first/{ds}", (DS,))
#: An enrichment of the contacts changed in the run's data interval, one directory per window.
ENRICHMENT = OutputLayout(
    "enrichment/{data_interval_start}__{data_interval_end}", (DATA_INTERVAL_START, DATA_INTERVAL_END)
)
#: A write-back's input: the file of records a DAG applies to the location (``contacts.csv`` in it).
WRITEBACK_INBOX = OutputLayout("writeback/inbox", ())
#: A write-back's dry-run plan, and the results of applying it, one directory each per logical date.
WRITEBACK_PLAN = OutputLayout("writeback/plan/{ds}", (DS,))
WRITEBACK_RESULTS = OutputLayout("writeback/results/{ds}", (DS,))


@dataclass(frozen=True)
class BatchLayout:
    """A kind of output written in batches named by their content: ``<root>/<location_id>/<folder>/<batch_id>/``.

    :param folder: the kind's folder under the location.
    :param batch_regex: what a batch id looks like (a regular expression); its text sorts in apply order.
    """

    folder: str
    batch_regex: str

    def template(self, root: str = EXPORT_ROOT, location: str = LOCATION) -> str:
        """The Airflow template of the location's folder of batches (an operator's ``output_path``).

        :param root: the root URI or its template; default: the ``ghl_export_root`` Variable.
        :param location: the location or its template; default: the task's own ``location_id``.
        """
        return f"{root}/{location}/{self.folder}"

    @overload
    def path(self, root: str, location_id: str, batch_id: str | None = None) -> str: ...
    @overload
    def path(self, root: _P, location_id: str, batch_id: str | None = None) -> _P: ...
    def path(self, root: str | _P, location_id: str, batch_id: str | None = None) -> str | _P:
        """The location's folder of batches, or the folder of batch ``batch_id`` in it.

        :param root: the root: a URI string gives a string, a path object a path object of the same kind.
        :param location_id: the location.
        :param batch_id: the batch (e.g. ``000000000001-000000000200``); None: the folder of all batches.
        """
        parts = [location_id, self.folder, *([batch_id] if batch_id is not None else [])]
        if isinstance(root, str):
            return "/".join([root.rstrip("/"), *parts])
        for part in parts:
            root = root / part
        return root

    def batches(self, folder: _L) -> list[_L]:
        """The batch folders in the location's ``folder`` of batches, in apply order (empty when it does not exist).

        Whether a batch is committed is for its manifest to say; this only lists.
        """
        name = re.compile(self.batch_regex)
        try:
            return sorted((p for p in folder.iterdir() if name.fullmatch(p.name)), key=lambda p: p.name)
        except FileNotFoundError:
            return []

    def describe(self, root: str = f"{{{EXPORT_ROOT_VARIABLE}}}") -> str:
        """The layout for people: ``{ghl_export_root}/<location_id>/webhooks/<batch_id>/``."""
        return f"{root.rstrip('/')}/<location_id>/{self.folder}/<batch_id>/"


#: Webhook events applied per location, one folder per inbox batch ``<first_seq>-<last_seq>`` (12 digits each).
WEBHOOK_BATCHES = BatchLayout("webhooks", r"\d{12}-\d{12}")
