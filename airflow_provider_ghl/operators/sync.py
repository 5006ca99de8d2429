"""Deprecated: the write-back operator lives in :mod:`airflow_provider_ghl.operators.writeback` (one release)."""

from __future__ import annotations

from airflow_provider_ghl.deprecation import moved_names

__getattr__ = moved_names(
    __name__,
    {
        "GHLSyncContactsOperator": "airflow_provider_ghl.operators.writeback:GHLWriteBackContactsOperator",
        "SYNC_ASSET_ALIAS": "airflow_provider_ghl.operators.writeback:WRITEBACK_ASSET_ALIAS",
    },
)
