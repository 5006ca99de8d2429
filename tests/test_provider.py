"""The package registers with Airflow as a provider, with a declarative ``ghl`` connection form."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import airflow
import jsonschema

import airflow_provider_ghl
from airflow_provider_ghl import DISTRIBUTION_NAME, __version__, get_provider_info


def test_provider_info_matches_airflow_schema_and_distribution() -> None:
    info = get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    dist = distribution(DISTRIBUTION_NAME)
    # Airflow refuses a provider whose package-name differs from its distribution name.
    assert info["package-name"] == dist.metadata["Name"]
    assert dist.version == __version__
    entry_points = [ep for ep in dist.entry_points if ep.group == "apache_airflow_provider"]
    assert [ep.value for ep in entry_points] == ["airflow_provider_ghl:get_provider_info"]


def test_connection_form_is_declarative_and_secrets_are_masked() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = {k: v for k, v in manager.connection_form_widgets.items() if k.startswith("extra__ghl__")}
    expected = {
        "auth_type", "location_id", "company_id", "app_id", "user_type", "api_version", "refresh_token",
        "token_variable", "max_requests", "interval_ms", "daily_reserve", "connect_timeout", "timeout", "max_retries",
        "app_url", "budget_backend", "budget_dir", "budget_redis_conn_id", "marketplace_url", "scopes",
    }  # fmt: skip
    assert {k.removeprefix("extra__ghl__") for k in widgets} == expected
    assert [k for k, w in widgets.items() if w.is_sensitive] == ["extra__ghl__refresh_token"]
    behaviour = manager.field_behaviours["ghl"]
    assert set(behaviour["hidden_fields"]) == {"schema", "port"}
    assert "Private Integration Token" in behaviour["relabeling"]["password"]


#: Modules of operators/ that hold no operator of their own: the bases, and the old path kept for one release.
NOT_OPERATOR_MODULES = ("__init__", "base", "outputs", "sync")


def _modules_under(package: str) -> set[str]:
    root = Path(airflow_provider_ghl.__file__).parent / package.split(".")[-1]
    if not root.is_dir():
        return set()
    return {f"{package}.{p.stem}" for p in root.glob("*.py") if p.stem not in NOT_OPERATOR_MODULES}


def test_provider_info_lists_every_operator_sensor_trigger_and_link() -> None:
    """Each public operator/sensor/trigger module of the package is registered, and each imports."""
    info = get_provider_info()
    for kind, package in (
        ("operators", "airflow_provider_ghl.operators"),
        ("sensors", "airflow_provider_ghl.sensors"),
        ("triggers", "airflow_provider_ghl.triggers"),
    ):
        listed = {m for entry in info.get(kind, []) for m in entry["python-modules"]}
        assert listed == _modules_under(package), kind
        for module in listed:
            importlib.import_module(module)
    operators = {
        name
        for entry in info["operators"]
        for module in entry["python-modules"]
        for name, obj in vars(importlib.import_module(module)).items()
        if name.startswith("GHL") and name.endswith("Operator") and obj.__module__ == module
    }
    assert len(operators) >= 31 + 3  # every contact operation, both exports, the token refresh

    from airflow.providers_manager import ProvidersManager

    assert info["extra-links"] == ["airflow_provider_ghl.links.GHLContactLink"]
    assert "airflow_provider_ghl.links.GHLContactLink" in ProvidersManager().extra_links_class_names


def test_airflow_providers_list_shows_the_provider(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path)}
    airflow_cli = Path(sys.executable).with_name("airflow")
    out = subprocess.run(
        [str(airflow_cli), "providers", "list", "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    listed = {p["package_name"]: p for p in json.loads(out[out.index("[") :])}
    assert listed[DISTRIBUTION_NAME]["version"] == __version__
