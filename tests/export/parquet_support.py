"""pyarrow for the Parquet tests: skipped with a message naming the package locally, never in CI."""

from __future__ import annotations

import os

import pytest

if os.environ.get("CI"):
    import pyarrow as pa  # CI installs .[dev], which has it: a missing pyarrow there is a failure
    import pyarrow.parquet as pq
else:
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install 'airflow-provider-ghl[parquet]'")
    pq = pytest.importorskip("pyarrow.parquet")

__all__ = ["pa", "pq"]
