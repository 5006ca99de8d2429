"""The example DAGs' output layout (dags/ghl_layout.py): directories as templates and as paths, one definition per
kind; and the provider's old import paths of it, kept for one release."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ghl_layout import DEFAULT_EXPORT_ROOT, ENRICHMENT, EXPORT_ROOT, FULL_EXPORT, LOCATION


def test_full_export_goes_under_contacts_full_and_the_logical_date() -> None:
    day = date(2026, 11, 22)
    assert FULL_EXPORT.path(Path("/o"), "loc", ds=day) == Path("/o/loc/contacts/full/2026-11-22")
    assert FULL_EXPORT.path("file:///o/", "loc", ds=day) == "file:///o/loc/contacts/full/2026-11-22"
    assert FULL_EXPORT.template() == (
        "{{ var.value.get('ghl_export_root', '" + DEFAULT_EXPORT_ROOT + "') }}/" + LOCATION + "/contacts/full/{{ ds }}"
    )
    assert FULL_EXPORT.describe() == "{ghl_export_root}/<location_id>/contacts/full/<ds>/"


def test_an_enrichment_window_goes_under_its_ts_nodash_bounds() -> None:
    start = datetime(2026, 11, 23, 19, tzinfo=UTC)
    out = ENRICHMENT.path(Path("/o"), "loc", data_interval_start=start, data_interval_end=start + timedelta(hours=1))
    assert out == Path("/o/loc/enrichment/20261123T190000__20261123T200000")
    assert ENRICHMENT.template(root="s3://b/ghl", location="{{ params.location }}") == (
        "s3://b/ghl/{{ params.location }}/enrichment/"
        "{{ data_interval_start | ts_nodash }}__{{ data_interval_end | ts_nodash }}"
    )
    assert ENRICHMENT.describe(".demo/output/") == (
        ".demo/output/<location_id>/enrichment/<data_interval_start>__<data_interval_end>/"
    )


def test_run_values_are_taken_in_utc_as_airflow_renders_them() -> None:
    plus_two = timezone(timedelta(hours=2))
    start = datetime(2026, 11, 24, 1, tzinfo=plus_two)  # 2026-11-23 23:00 UTC
    out = ENRICHMENT.path("r", "loc", data_interval_start=start, data_interval_end=start + timedelta(hours=1))
    assert out == "r/loc/enrichment/20261123T230000__20261124T000000"
    assert FULL_EXPORT.path("r", "loc", ds=start) == "r/loc/contacts/full/2026-11-23"


def test_a_path_needs_exactly_the_layouts_run_values() -> None:
    with pytest.raises(TypeError, match="data_interval_end"):
        ENRICHMENT.path("r", "loc", data_interval_start=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(TypeError, match="ds"):
        FULL_EXPORT.path("r", "loc", ds=date(2026, 1, 1), run_id="x")
    with pytest.raises(TypeError, match="datetime"):
        ENRICHMENT.path("r", "loc", data_interval_start=date(2026, 1, 1), data_interval_end=date(2026, 1, 2))


def test_the_root_is_the_variable_with_its_default() -> None:
    assert EXPORT_ROOT == "{{ var.value.get('ghl_export_root', '" + DEFAULT_EXPORT_ROOT + "') }}"
    # Under AIRFLOW_HOME, not a shared, world-writable directory (#21 item 5).
    assert (Path(os.environ["AIRFLOW_HOME"]) / "ghl-exports").as_uri() == DEFAULT_EXPORT_ROOT


def test_webhook_batches_go_under_the_locations_webhooks_folder_by_batch_id(tmp_path: Path) -> None:
    from ghl_layout import WEBHOOK_BATCHES

    assert WEBHOOK_BATCHES.template() == (
        "{{ var.value.get('ghl_export_root', '" + DEFAULT_EXPORT_ROOT + "') }}/" + LOCATION + "/webhooks"
    )
    assert WEBHOOK_BATCHES.path("s3://b/ghl/", "loc") == "s3://b/ghl/loc/webhooks"
    batch = WEBHOOK_BATCHES.path(tmp_path, "loc", "000000000001-000000000200")
    assert batch == tmp_path / "loc" / "webhooks" / "000000000001-000000000200"
    assert WEBHOOK_BATCHES.describe() == "{ghl_export_root}/<location_id>/webhooks/<batch_id>/"
    folder = WEBHOOK_BATCHES.path(tmp_path, "loc")
    assert WEBHOOK_BATCHES.batches(folder) == []
    for name in ("000000000201-000000000300", "000000000001-000000000200", "scratch", ".000000000301-x"):
        (folder / name).mkdir(parents=True)
    assert [p.name for p in WEBHOOK_BATCHES.batches(folder)] == [
        "000000000001-000000000200",
        "000000000201-000000000300",
    ]


def test_the_write_back_directories_are_named_for_the_write_back() -> None:
    from ghl_layout import WRITEBACK_INBOX, WRITEBACK_PLAN, WRITEBACK_RESULTS

    day = date(2026, 11, 22)
    assert WRITEBACK_INBOX.path("r", "loc") == "r/loc/writeback/inbox"
    assert WRITEBACK_PLAN.path("r", "loc", ds=day) == "r/loc/writeback/plan/2026-11-22"
    assert WRITEBACK_RESULTS.path("r", "loc", ds=day) == "r/loc/writeback/results/2026-11-22"


def test_the_provider_depends_on_no_layout_and_its_old_modules_warn() -> None:
    """No module of the package imports the old layout or locations; importing them still works, with a warning."""
    import subprocess
    import sys

    script = """
import importlib, pkgutil, sys, warnings
import airflow_provider_ghl
old = {"airflow_provider_ghl.layout", "airflow_provider_ghl.locations", "airflow_provider_ghl.operators.sync"}
for m in pkgutil.walk_packages(airflow_provider_ghl.__path__, "airflow_provider_ghl."):
    if m.name not in old:
        importlib.import_module(m.name)
assert not old & set(sys.modules), old & set(sys.modules)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from airflow_provider_ghl.layout import FULL_EXPORT
    from airflow_provider_ghl.locations import configured_locations, locations
    from airflow_provider_ghl.operators.sync import GHLSyncContactsOperator
from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator
assert GHLSyncContactsOperator is GHLWriteBackContactsOperator
assert FULL_EXPORT.pattern == "contacts/full/{ds}"
print(sorted({str(w.message).split(" is deprecated")[0] for w in caught if "deprecated" in str(w.message)}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == str(
        [
            "airflow_provider_ghl.layout",
            "airflow_provider_ghl.locations",
            "airflow_provider_ghl.operators.sync.GHLSyncContactsOperator",
        ]
    )
