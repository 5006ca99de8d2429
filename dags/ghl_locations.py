"""Which GHL locations the example DAGs work on, and through which connection, read at run time from Airflow
configuration or, for an agency install of a Marketplace app, discovered from GHL; and the configuration
table of their documentation.

A helper of the example DAGs, not of the provider: copy it beside them (the DAGs folder is on ``sys.path``).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Variable, task

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.hooks.ghl import GHLHook

from ghl_layout import DEFAULT_EXPORT_ROOT, EXPORT_ROOT_VARIABLE

#: The connection of every location the ``ghl_location_ids`` Variable does not give its own.
GHL_CONN_ID = GHLHook.default_conn_name
#: Airflow Variable with the locations: a JSON list of ids, or an object of location id -> connection id.
LOCATIONS_VARIABLE = "ghl_location_ids"
#: Airflow Variables (or DAG params of the same names) narrowing the locations: only these / never these.
INCLUDE_VARIABLE = "ghl_locations_include"
EXCLUDE_VARIABLE = "ghl_locations_exclude"


def _nonempty_strings(*values: Any) -> bool:
    return all(isinstance(v, str) and v.strip() for v in values)


def configured_locations(ghl_conn_id: str = GHL_CONN_ID, variable: str = LOCATIONS_VARIABLE) -> list[dict[str, str]]:
    """One ``{"location_id", "ghl_conn_id"}`` per location, ready for ``.expand_kwargs()``.

    The Variable ``variable`` is either a JSON list of location ids, all reached through ``ghl_conn_id`` (an
    OAuth or agency token that covers them), or a JSON object mapping each location id to its own connection
    id (e.g. one Private Integration Token per location). Unset, they are discovered at every call (an install
    is in the next run, an uninstall out of it): when ``ghl_conn_id`` is an agency install of a Marketplace app
    (``user_type=Company`` and ``app_id``), the locations where GHL says the app is installed, else the
    connection's ``location_id``; and for an OAuth app, every location that installed it through the install
    flow with a token set of its own. Call it inside a task (never at DAG parse time). Duplicates are dropped,
    order kept.

    :param ghl_conn_id: the connection for locations listed without one, and whose ``location_id`` is the
        fallback.
    :param variable: the Airflow Variable holding the list or mapping.
    """
    value: Any = Variable.get(variable, default=None, deserialize_json=True)
    if value is None:
        hook = GHLHook(ghl_conn_id=ghl_conn_id)
        config = hook.config
        if config.is_agency and config.app_id:
            found = [record["_id"] for record in hook.iter_installed_locations()]
        else:
            found = [config.location_id] if config.location_id else []
        found += hook.location_installations()
        if not found:
            raise GHLConfigError(
                f"Set the Variable {variable} (a JSON list, or an object of location id -> connection id), "
                f"a location_id on connection {ghl_conn_id!r}, make it an agency install (user_type=Company "
                "with app_id) to discover the locations where the app is installed, or install the app in a "
                "location through the install flow"
            )
        return [{"location_id": loc, "ghl_conn_id": ghl_conn_id} for loc in dict.fromkeys(found)]
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


def _id_list(name: str, value: Any) -> set[str] | None:
    """An include or exclude list: None when unset, else a set of ids (a JSON list of them, or one id)."""
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(_nonempty_strings(v) for v in value):
        raise GHLConfigError(f"{name} must be a JSON list of location ids, got {value!r}")
    return {v.strip() for v in value}


def narrowed(pairs: list[dict[str, str]], include: Any = None, exclude: Any = None) -> list[dict[str, str]]:
    """``pairs`` with only the ``include``d locations (when given) and none of the ``exclude``d ones.

    :param pairs: ``{"location_id", "ghl_conn_id"}`` per location.
    :param include: a list of location ids to keep (None or empty: all).
    :param exclude: a list of location ids to drop.
    """
    only = _id_list(INCLUDE_VARIABLE, include)
    never = _id_list(EXCLUDE_VARIABLE, exclude) or set()
    return [p for p in pairs if (only is None or p["location_id"] in only) and p["location_id"] not in never]


@task
def locations(ghl_conn_id: str = GHL_CONN_ID, params: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """The DAG's locations, read when it runs: map over them with ``.expand_kwargs(locations())``.

    ``{"location_id", "ghl_conn_id"}`` per location, from the ``ghl_location_ids`` Variable (a JSON list, or an
    object of location id -> connection id), else discovered from an agency install, else the connection's
    location (see :func:`configured_locations`); then narrowed by ``ghl_locations_include`` and
    ``ghl_locations_exclude`` (JSON lists of ids), each a DAG param of the run or else a Variable.

    :param ghl_conn_id: the connection for locations the Variable lists without one.
    :param params: the run's DAG params (Airflow passes them in a task).
    """

    def setting(name: str) -> Any:
        if params and params.get(name) not in (None, "", []):
            return params[name]
        return Variable.get(name, default=None, deserialize_json=True)

    return narrowed(configured_locations(ghl_conn_id), setting(INCLUDE_VARIABLE), setting(EXCLUDE_VARIABLE))


def configuration_doc(*rows: tuple[str, str, str]) -> str:
    """The Markdown configuration table of a DAG that maps over :func:`locations` and writes under the root.

    For the DAG's ``doc_md``: the connection, the ``ghl_export_root`` and ``ghl_location_ids`` Variables, then
    ``rows``, and how ``ghl_location_ids`` is written.

    :param rows: more settings of the DAG, each ``(kind, name, default)``, e.g.
        ``("Variable", "ghl_sensor_poke_interval", "`60`: seconds between the trigger's checks")``.
    """
    table = [
        ("Connection", GHL_CONN_ID, "required: the `ghl` connection (token, and `location_id` extra)"),
        ("Variable", EXPORT_ROOT_VARIABLE, f"`{DEFAULT_EXPORT_ROOT}` (any object-storage URI, e.g. `s3://bucket/ghl`)"),
        (
            "Variable",
            LOCATIONS_VARIABLE,
            "unset: discovered (agency install), else the connection's `location_id`; plus the app's location installs",
        ),
        ("Variable or param", INCLUDE_VARIABLE, "unset: every location; else a JSON list: only these"),
        ("Variable or param", EXCLUDE_VARIABLE, "unset: none; else a JSON list: never these"),
        *rows,
    ]
    lines = "\n".join(f"| {kind} | `{name}` | {default} |" for kind, name, default in table)
    return f"""Configuration (Airflow Connections and Variables only, nothing is read when the file is parsed):

| what | name | default |
|---|---|---|
{lines}

`{LOCATIONS_VARIABLE}` is a list of locations that `{GHL_CONN_ID}` reaches (an OAuth or agency token), e.g.
`["loc1", "loc2"]`, or an object giving each location its own connection (a Private Integration Token is
per location), e.g. `{{"loc1": "ghl_loc1", "loc2": "ghl_loc2"}}`. Left unset with an agency install of a
Marketplace app (`user_type` Company, `company_id`, `app_id`), every run asks GHL where the app is installed:
a new install is exported by the next run, an uninstalled location is left out. Locations that installed the
app themselves through the install flow (`/ghl/oauth/start`) are added, each with its own token set.
"""
