"""What the benchmarks share: CPU and memory readings from /proc, and an isolated Airflow home for children."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def status_kib(field: str, pid: int | str = "self") -> int:
    """A ``kB`` line of ``/proc/<pid>/status`` (``VmRSS``: now, ``VmHWM``: peak)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine from ``/proc/stat``, summed over cores."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return (total - idle) / CLK_TCK, total / CLK_TCK


def isolated_airflow_home(prefix: str) -> tuple[Path, dict[str, str]]:
    """A temp work dir with its own AIRFLOW_HOME, set in this process too; returns it and the children's env.

    Benchmark children never touch ~/airflow and never load Airflow's example DAGs.
    """
    work = Path(tempfile.mkdtemp(prefix=prefix))
    home = work / "airflow-home"
    home.mkdir()
    settings = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    os.environ.update(settings)
    return work, {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}


def print_rows(title: str, rows: list[tuple[str, str]]) -> None:
    """Print ``title`` and one aligned ``name  value`` line per row."""
    width = max(len(name) for name, _ in rows)
    print(title)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def child_command(script: str, sandbox: Any, *child: str) -> list[str]:
    """The command that runs ``script`` as its own measured child against location 0 of ``sandbox``.

    :param script: the benchmark's ``__file__``.
    :param child: what follows ``--child`` (a kind, for the benchmarks that have several).
    """
    location = sandbox.info["locations"][0]
    return [
        sys.executable,
        str(Path(script).resolve()),
        "--child",
        *child,
        "--base-url",
        sandbox.base_url,
        "--token",
        location["private_token"],
        "--location",
        location["id"],
    ]


def use_bench_connection(base_url: str, token: str, location_id: str, **extra: Any) -> str:
    """Define the ``ghl`` connection a benchmark's hook or operator uses (``AIRFLOW_CONN_GHL_BENCH``, a
    Private Integration Token for ``location_id``) and return its id.

    :param extra: more connection extras (``budget_backend``, ...).
    """
    conn = {"conn_type": "ghl", "host": base_url, "password": token, "extra": {"location_id": location_id, **extra}}
    os.environ["AIRFLOW_CONN_GHL_BENCH"] = json.dumps(conn)
    return "ghl_bench"
