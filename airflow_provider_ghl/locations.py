"""Which GHL locations a DAG works on, read at run time from Airflow configuration."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Variable

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.hooks.ghl import GHLHook

LOCATIONS_VARIABLE = "ghl_location_ids"


def configured_location_ids(
    ghl_conn_id: str = GHLHook.default_conn_name, variable: str = LOCATIONS_VARIABLE
) -> list[str]:
    """The Variable ``variable`` (a JSON list of location ids), else the connection's ``location_id``.

    Call it inside a task (never at DAG parse time). Duplicates are dropped, order is kept; no API call is made.

    :param ghl_conn_id: the ``ghl`` connection whose ``location_id`` is the fallback.
    :param variable: the Airflow Variable holding the list.
    """
    ids: Any = Variable.get(variable, default=None, deserialize_json=True)
    if ids is None:
        fallback = GHLHook(ghl_conn_id=ghl_conn_id).config.location_id
        if not fallback:
            raise GHLConfigError(
                f"Set the Variable {variable} (a JSON list) or a location_id on connection {ghl_conn_id!r}"
            )
        return [fallback]
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
        raise GHLConfigError(f"Variable {variable} must be a JSON list of location ids, got {ids!r}")
    return list(dict.fromkeys(ids))
