"""Bad arguments fail both exports like every other operator: GHLInputError naming the argument, before the first
request and before anything is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_ghl.exceptions import GHLInputError
from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.operators.export import GHLBaseExportOperator, GHLExportContactsOperator
from ghl_sandbox.testing import SandboxServer

WINDOW = {"updated_since": "2026-01-01T00:00:00Z", "updated_until": "2026-01-02T00:00:00Z"}

#: Arguments either export takes, each with a bad value and the argument the error must name.
SHARED: list[tuple[dict[str, Any], str]] = [
    ({"page_limit": 0}, "page_limit"),
    ({"page_limit": 501}, "page_limit"),
    ({"page_limit": "many"}, "page_limit"),
    ({"records_per_file": 0}, "records_per_file"),
    ({"progress_every": 0}, "progress_every"),
    ({"file_format": "xml"}, "file_format"),
    ({"compression": "zstd"}, "compression"),
    ({"output_path": "relative/dir"}, "output_path"),
    ({"output_path": "notaproto://bucket/x"}, "output_path"),
    ({"output_path": ""}, "output_path"),
    ({"location_id": "has space"}, "location_id"),
]
ENRICH_ONLY: list[tuple[dict[str, Any], str]] = [
    ({"include": ["tasks", "emails"]}, "include"),
    ({"include": "emails"}, "include"),
    ({"task_search": "sometimes"}, "task_search"),
    ({"max_workers": 0}, "max_workers"),
    ({"lookback": -5}, "lookback"),
    ({"lookback": "an hour"}, "lookback"),
    ({"updated_since": "not a date"}, "updated_since"),
    ({"updated_until": "2025-12-31T00:00:00Z"}, "updated_until"),
    ({"updated_since": None}, "updated_since"),  # and the run has no data interval
    ({"updated_until": ""}, "updated_until"),
]
CASES = [(GHLExportContactsOperator, kwargs, field) for kwargs, field in SHARED] + [
    (GHLEnrichContactsOperator, kwargs, field) for kwargs, field in [*SHARED, *ENRICH_ONLY]
]


@pytest.fixture
def conn_id(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    sandbox.reset()
    monkeypatch.setenv("AIRFLOW_CONN_GHL_EXPORT_INPUT", json.dumps(sandbox.airflow_connection(0)))
    return "ghl_export_input"


@pytest.mark.parametrize(
    ("operator_class", "kwargs", "field"),
    CASES,
    ids=[f"{cls.__name__}-{next(iter(kw))}={next(iter(kw.values()))!r}" for cls, kw, _ in CASES],
)
def test_bad_input_names_the_argument_before_any_request_or_write(
    sandbox: SandboxServer, conn_id: str, tmp_path: Path, operator_class: type[GHLBaseExportOperator],
    kwargs: dict[str, Any], field: str,
) -> None:  # fmt: skip
    out = tmp_path / "out"
    arguments = {"output_path": f"file://{out}", **(WINDOW if operator_class is GHLEnrichContactsOperator else {})}
    operator = operator_class(task_id="bad", ghl_conn_id=conn_id, **{**arguments, **kwargs})
    sandbox.clear_stats()
    with pytest.raises(GHLInputError) as failure:
        operator.execute(context={})
    assert failure.value.field == field and str(failure.value).startswith(f"{field}: "), failure.value
    assert isinstance(failure.value, AirflowFailException)  # no retry can fix an argument
    assert sandbox.stats()["requests_total"] == 0
    assert not out.exists()


def test_a_connection_without_a_location_needs_location_id(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn = sandbox.airflow_connection(0)
    conn["extra"] = {k: v for k, v in conn.get("extra", {}).items() if k != "location_id"}
    monkeypatch.setenv("AIRFLOW_CONN_GHL_NO_LOCATION", json.dumps(conn))
    sandbox.clear_stats()
    operator = GHLExportContactsOperator(task_id="x", ghl_conn_id="ghl_no_location", output_path=f"file://{tmp_path}")
    with pytest.raises(GHLInputError) as failure:
        operator.execute(context={})
    assert failure.value.field == "location_id"
    assert sandbox.stats()["requests_total"] == 0


@pytest.mark.parametrize("operator_class", [GHLExportContactsOperator, GHLEnrichContactsOperator])
def test_parquet_without_pyarrow_is_one_clear_error_before_any_request(
    sandbox: SandboxServer, conn_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    operator_class: type[GHLBaseExportOperator],
) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # what importlib sees when the package is not installed
    out = tmp_path / "out"
    arguments = {"output_path": f"file://{out}", **(WINDOW if operator_class is GHLEnrichContactsOperator else {})}
    operator = operator_class(task_id="parquet", ghl_conn_id=conn_id, file_format="parquet", **arguments)
    sandbox.clear_stats()
    with pytest.raises(GHLInputError) as failure:
        operator.execute(context={})
    assert failure.value.field == "file_format"
    assert "airflow-provider-ghl[parquet]" in str(failure.value)
    assert sandbox.stats()["requests_total"] == 0
    assert not out.exists()
