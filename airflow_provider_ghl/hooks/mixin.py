"""The connection arguments of every GHL operator and sensor, and the one rule that turns them into a hook."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from functools import cached_property
from typing import Any

# The operators' metaclass: it is what lets Airflow see the mixin's arguments (see GHLHookMixin).
from airflow.sdk.bases.operator import BaseOperatorMeta

from airflow_provider_ghl.hooks.ghl import GHLHook

#: The colour of every GHL operator and sensor in the Airflow UI.
GHL_UI_COLOR = "#d6eaff"


def hook_kwargs(location_id: str | None, hook_params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of :class:`~airflow_provider_ghl.hooks.ghl.GHLHook` for a task (or trigger).

    The task's ``location_id`` becomes the hook's default location, so requests that name no location (a
    contact's notes, tasks, appointments) use that location's token and rate budget rather than the
    connection's. ``hook_params`` win over it and over anything else derived from the task's arguments: a
    ``location_id`` in ``hook_params`` is the hook's default, while requests that name a location still use the
    task's ``location_id``.
    """
    return {"location_id": location_id or None, **hook_params}


class GHLHookMixin(metaclass=BaseOperatorMeta):
    """Connection arguments and the hook of a GHL operator or sensor; list it before ``BaseOperator``.

    Its ``__init__`` goes through Airflow's operator metaclass like an operator's own, so ``default_args``,
    ``partial()`` and ``expand_kwargs()`` know ``ghl_conn_id``, ``location_id`` and ``hook_params``.
    The hook's keyword arguments come from :meth:`_hook_kwargs` (see :func:`hook_kwargs` for the rule);
    subclasses extend it, e.g. to size the hook's pool.

    :param ghl_conn_id: the ``ghl`` connection. (templated)
    :param location_id: location (sub-account); default: the connection's ``location_id``. (templated)
    :param hook_params: extra keyword arguments for :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`; they win
        over what the task derives, ``location_id`` included.
    """

    # Collection, as on BaseOperator: a mixin attribute must have the very type of the one it meets there.
    template_fields: Collection[str] = ("ghl_conn_id", "location_id")
    ui_color: str = GHL_UI_COLOR

    def __init__(
        self,
        *,
        ghl_conn_id: str = GHLHook.default_conn_name,
        location_id: str | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ghl_conn_id = ghl_conn_id
        self.location_id = location_id
        self.hook_params = hook_params or {}

    @cached_property
    def hook(self) -> GHLHook:
        """The task's hook (built on first use; building it sends nothing)."""
        return GHLHook(ghl_conn_id=self.ghl_conn_id, **self._hook_kwargs())

    def _hook_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the hook: :func:`hook_kwargs` of the task's location and ``hook_params``."""
        return hook_kwargs(self.location_id, self.hook_params)
