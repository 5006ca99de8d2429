"""Run a test DAG file's ``dag.test()`` in a fresh interpreter, with a GHL connection and an output root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def run_dag_file(
    dag_file: Path, conn_id: str, conn: dict[str, Any], output_uri: str, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``dag_file`` (its ``__main__`` calls ``dag.test()`` and prints ``DAGRUN_STATE``); assert success.

    :param dag_file: the DAG file, in the DAGs folder it is run from.
    :param conn_id: the connection id the DAG reads (``GHL_TEST_CONN``).
    :param conn: the connection (``AIRFLOW_CONN_<ID>``).
    :param output_uri: the output root (``GHL_TEST_OUTPUT``).
    :param args: the file's arguments (e.g. a logical date).
    :param env: further environment variables (e.g. Airflow configuration).
    """
    run = subprocess.run(
        [sys.executable, str(dag_file), *args],
        env={
            **os.environ,
            f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dag_file.parent),
            "GHL_TEST_CONN": conn_id,
            "GHL_TEST_OUTPUT": output_uri,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "DAGRUN_STATE success" in output, output[-4000:]
    return run


def announced_outputs(airflow_db: Path) -> dict[str, str]:
    """``output_path`` -> asset name of every output the runs in ``airflow_db`` announced (the asset events of the
    GHL operators' outputs: one asset per location and task, the committed directory in the event's extra)."""
    import sqlite3

    with sqlite3.connect(airflow_db) as con:
        rows = con.execute("select a.name, e.extra from asset_event e join asset a on a.id = e.asset_id").fetchall()
    announced = {}
    for name, extra in rows:
        path = json.loads(extra or "{}").get("output_path")
        if path:
            announced[path] = name
    return announced


def exported_records(output: Path) -> list[dict[str, Any]]:
    """Every record of a committed gzip JSON Lines export directory, in its manifest's file order."""
    import gzip

    manifest = json.loads((output / "_manifest.json").read_text())
    return [
        json.loads(line) for f in manifest["files"] for line in gzip.decompress((output / f).read_bytes()).splitlines()
    ]


#: The example DAGs.
EXAMPLE_DAGS = Path(__file__).resolve().parents[1] / "dags"


def dags_test(
    sandbox: Any,
    tmp_path: Path,
    dag_id: str,
    logical_date: datetime,
    conn: dict[str, Any] | None = None,
    *,
    fails: bool = False,
    **more_env: str | None,
) -> str:
    """Run ``airflow dags test`` of the example DAG ``dag_id`` against ``sandbox`` (location 0, output under
    ``tmp_path``); ``more_env`` adds to its environment (None: leave that one out). Returns its output.

    :param sandbox: the :class:`~ghl_sandbox.testing.SandboxServer`.
    :param tmp_path: the output root.
    :param dag_id: the example DAG.
    :param logical_date: the run's logical date.
    :param conn: the ``ghl_default`` connection; default location 0's Private Integration Token.
    :param fails: the run is expected to fail (else to succeed).
    """
    env: dict[str, str | None] = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(conn or sandbox.airflow_connection(0)),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{tmp_path}",
        # Only location 0's token is in the connection.
        "AIRFLOW_VAR_GHL_LOCATION_IDS": json.dumps([sandbox.location_ids[0]]),
        **more_env,
    }
    run = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date.isoformat()],
        env={k: v for k, v in env.items() if v is not None},
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = run.stdout + run.stderr
    if fails:
        assert run.returncode != 0 and "DagRun failed" in output, output[-4000:]
    else:
        assert run.returncode == 0, output[-4000:]
    return output
