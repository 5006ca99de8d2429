"""Which GHL locations a DAG works on, and through which connection, read at run time from Airflow configuration."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Variable

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.hooks.ghl import GHLHook

LOCATIONS_VARIABLE = "ghl_location_ids"


def _nonempty_strings(*values: Any) -> bool:
    return all(isinstance(v, str) and v.strip() for v in values)


def configured_locations(
    ghl_conn_id: str = GHLHook.default_conn_name, variable: str = LOCATIONS_VARIABLE
) -> list[dict[str, str]]:
    """One ``{"location_id", "ghl_conn_id"}`` per location, ready for ``.expand_kwargs()``.

    The Variable ``variable`` is either a JSON list of location ids, all reached through ``ghl_conn_id`` (an
    OAuth or agency token that covers them), or a JSON object mapping each location id to its own connection
    id (e.g. one Private Integration Token per location). Unset, it is the ``location_id`` of ``ghl_conn_id``.
    Call it inside a task (never at DAG parse time): no API call is made. Duplicates are dropped, order kept.

    :param ghl_conn_id: the connection for locations listed without one, and whose ``location_id`` is the
        fallback.
    :param variable: the Airflow Variable holding the list or mapping.
    """
    value: Any = Variable.get(variable, default=None, deserialize_json=True)
    if value is None:
        fallback = GHLHook(ghl_conn_id=ghl_conn_id).config.location_id
        if not fallback:
            raise GHLConfigError(
                f"Set the Variable {variable} (a JSON list, or an object of location id -> connection id) "
                f"or a location_id on connection {ghl_conn_id!r}"
            )
        return [{"location_id": fallback, "ghl_conn_id": ghl_conn_id}]
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and value and all(_nonempty_strings(v) for v in value):
        pairs = {v.strip(): ghl_conn_id for v in value}
    elif isinstance(value, dict) and value and all(_nonempty_strings(k, v) for k, v in value.items()):
        pairs = {k.strip(): v.strip() for k, v in value.items()}
    else:
        raise GHLConfigError(
            f"Variable {variable} must be a JSON list of location ids or an object mapping location ids to "
            f"connection ids, got {value!r}"
        )
    return [{"location_id": loc, "ghl_conn_id": conn} for loc, conn in pairs.items()]


def configured_location_ids(
    ghl_conn_id: str = GHLHook.default_conn_name, variable: str = LOCATIONS_VARIABLE
) -> list[str]:
    """The location ids of :func:`configured_locations`.

    :param ghl_conn_id: see :func:`configured_locations`.
    :param variable: see :func:`configured_locations`.
    """
    return [entry["location_id"] for entry in configured_locations(ghl_conn_id, variable)]
