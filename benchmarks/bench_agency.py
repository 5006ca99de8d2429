"""An agency's hourly enrichment under the real scheduler: probe every location in one task, then map over the
changed ones, against one mapped task per location.

One agency install of the Marketplace app reaches ``--locations`` (300) locations of a sandbox; the app is
installed in all of them; ``--changed-pct`` (5 %) of them get ``--touched`` (5) contacts changed in the hour.
Each variant runs once, in its own throwaway Airflow deployment (scheduler, dag-processor, triggerer and
api-server, LocalExecutor on SQLite, parallelism 4: ``tests/scheduler/harness.py``), from one manual run of:

* ``probe``: the shipped ``ghl_incremental_enrichment``: ``locations`` (discovery), ``changed_locations`` (one
  ``pageLimit`` 1 search per location, concurrently, in that one task), then ``enrich`` mapped over the changed
  locations only;
* ``per_location``: the DAG as it was before: ``enrich`` mapped over every location;
* ``wait``: the shipped ``ghl_enrichment_on_change``: one deferred ``wait_for_changes`` (one trigger asks the
  quiet locations) then ``enrich`` mapped over the changed ones;
* ``sensor_per_location``: that DAG as it was before: a mapped group per location, a deferrable
  ``GHLContactChangedSensor`` (a worker start, then a trigger, each) and its ``enrich``.

The two waiting variants run for a window ending ``WAIT_S`` seconds after the trigger, and their index lag is
cut to ``INDEX_LAG_S`` (the shipped 10 minutes would make the benchmark wait that long): both ask the quiet
locations every ``POLL_S`` seconds until then.

Measured per variant, from the trigger to the run's end: task instances started, total CPU seconds of every
Airflow process (every process this benchmark started except the sandbox, and everything they started: this
process is a child subreaper, so nothing escapes to init; live processes are read from ``/proc``, reaped ones
from ``getrusage(RUSAGE_CHILDREN)``), wall time, requests to the sandbox and the floor.

The floor of ``probe``: the discovery pages, the agency's one token refresh, one location-token mint and one
probe per location, plus what the enrichments of the changed locations report in their manifests. Of
``per_location``: discovery, refresh and mints, plus every location's enrichment.

Targets: ``probe`` requests == its floor; ``per_location`` CPU >= 5 x ``probe`` CPU, and
``sensor_per_location`` CPU >= 5 x ``wait`` CPU (each pair when both run). Exit 0 when they hold.
Writes ``benchmarks/results/agency.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _measure import print_rows  # noqa: E402

from ghl_sandbox.testing import SandboxServer  # noqa: E402
from tests.scheduler.harness import AirflowDeployment  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DAG_ID = {
    "probe": "ghl_incremental_enrichment",
    "per_location": "ghl_enrichment_per_location",
    "wait": "ghl_enrichment_on_change",
    "sensor_per_location": "ghl_enrichment_sensor_per_location",
}
#: The waiting variants: their window ends this long after the trigger, their index lag is this, and they look
#: at the quiet locations this often.
WAIT_S, INDEX_LAG_S, POLL_S = 30, 10, 5
PR_SET_CHILD_SUBREAPER = 36

#: The hourly enrichment as it was before the probe: one mapped task per location, changed or not.
PER_LOCATION_DAG = """
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator

from ghl_layout import ENRICHMENT, LOCATION, LOOKBACK
from ghl_locations import locations

with DAG(
    dag_id="ghl_enrichment_per_location",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
) as dag:
    GHLEnrichContactsOperator.partial(
        task_id="enrich",
        output_path=ENRICHMENT.template(),
        lookback=LOOKBACK,
        include=["tasks", "notes", "appointments"],
        map_index_template=LOCATION,
    ).expand_kwargs(locations())
"""


#: ``ghl_enrichment_on_change`` as it was before one task waited for every location: a sensor per location.
SENSOR_PER_LOCATION_DAG = f"""
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable, Variable, task_group

from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from airflow_provider_ghl.sensors.ghl import GHLContactChangedSensor

from ghl_layout import ENRICHMENT, LOCATION, LOOKBACK
from ghl_locations import locations


def fit_sensor_to_run(context):
    sensor = context["task"]
    remaining = (context["data_interval_end"] - pendulum.now("UTC")).total_seconds()
    sensor.timeout = max(remaining, 0.0) + {INDEX_LAG_S}
    sensor.poke_interval = float(Variable.get("ghl_sensor_poke_interval", default=60))


with DAG(
    dag_id="ghl_enrichment_sensor_per_location",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={{"retries": 2, "retry_delay": timedelta(minutes=2)}},
) as dag:
    @task_group
    def per_location(location_id, ghl_conn_id):
        wait = GHLContactChangedSensor(
            task_id="wait_for_changes", ghl_conn_id=ghl_conn_id, location_id=location_id,
            until="{{{{ data_interval_end }}}}", deferrable=True, poke_interval=60, pre_execute=fit_sensor_to_run,
            skip_on_timeout=True, map_index_template=LOCATION,
        )
        enrich = GHLEnrichContactsOperator(
            task_id="enrich", ghl_conn_id=ghl_conn_id, location_id=location_id, output_path=ENRICHMENT.template(),
            lookback=LOOKBACK, include=["tasks", "notes", "appointments"], map_index_template=LOCATION,
        )
        wait >> enrich

    per_location.expand_kwargs(locations())
"""


# -- CPU of every process this benchmark started (but the sandbox) ----------------------------------------------
class Reaper:
    """Make this process the subreaper of everything it starts, and reap the orphans re-parented to it (their
    CPU then counts in this process's ``RUSAGE_CHILDREN``); children it waits for itself are left alone."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
        self.own: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.reap()

    def reap(self) -> None:
        for proc in psutil.Process().children():
            if proc.pid in self.own:
                continue
            with contextlib.suppress(ChildProcessError, psutil.Error):
                if proc.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(proc.pid, 0)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def airflow_cpu_seconds(excluded: set[int]) -> float:
    """CPU seconds of every process started from here so far, alive or reaped, but the ``excluded`` trees."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = usage.ru_utime + usage.ru_stime
    skip: set[int] = set()
    for pid in excluded:
        with contextlib.suppress(psutil.Error):
            skip |= {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
    for proc in psutil.Process().children(recursive=True):
        if proc.pid in skip:
            continue
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            # Its own CPU and its reaped children's (a live process's live children are counted on their own).
            total += t.user + t.system + t.children_user + t.children_system
    return total


# -- one variant ------------------------------------------------------------------------------------------------
def dags_folder(work: Path, variant: str) -> Path:
    folder = work / f"dags-{variant}"
    folder.mkdir()
    for helper in ("ghl_layout.py", "ghl_locations.py", "ghl_alerts.py"):
        shutil.copy(ROOT / "dags" / helper, folder / helper)
    if variant == "probe":
        shutil.copy(ROOT / "dags" / "ghl_incremental_enrichment.py", folder / "ghl_incremental_enrichment.py")
    elif variant == "wait":
        shipped = (ROOT / "dags" / "ghl_enrichment_on_change.py").read_text()
        lag = "INDEX_LAG = timedelta(minutes=10)"
        assert lag in shipped, "the shipped DAG's index lag moved: update the benchmark"
        (folder / "ghl_enrichment_on_change.py").write_text(
            shipped.replace(lag, f"INDEX_LAG = timedelta(seconds={INDEX_LAG_S})")
        )
    elif variant == "sensor_per_location":
        (folder / "ghl_enrichment_sensor_per_location.py").write_text(SENSOR_PER_LOCATION_DAG)
    else:
        (folder / "ghl_enrichment_per_location.py").write_text(PER_LOCATION_DAG)
    return folder


def task_instances(airflow: AirflowDeployment, path: str) -> list[dict[str, Any]]:
    """Every task instance of a run (the API answers at most 100 a page)."""
    found: list[dict[str, Any]] = []
    while True:
        page = airflow.api("GET", f"{path}?limit=100&offset={len(found)}")
        found += page["task_instances"]
        if not page["task_instances"] or len(found) >= page["total_entries"]:
            return found


def run_variant(variant: str, sandbox: SandboxServer, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    # The seeded data ends three days ago: the run's hour holds only the contacts changed here.
    sandbox.reset(anchor=(datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0).isoformat())
    changed = sandbox.location_ids[:: round(100 / args.changed_pct)][
        : math.ceil(len(sandbox.location_ids) * args.changed_pct / 100)
    ]
    home = work / f"home-{variant}"
    conn = sandbox.airflow_connection(0, agency=True, budget_dir=str(home / "ghl-budgets"))
    del conn["extra"]["location_id"]
    out = work / f"out-{variant}"
    env = {
        "AIRFLOW_CONN_GHL_DEFAULT": json.dumps(conn),
        "AIRFLOW_VAR_GHL_EXPORT_ROOT": f"file://{out}",
        "AIRFLOW_VAR_GHL_SENSOR_POKE_INTERVAL": str(POLL_S),
    }
    waits = variant in ("wait", "sensor_per_location")
    dag_id = DAG_ID[variant]
    with AirflowDeployment(home, dags_folder(work, variant), env) as airflow, airflow.logs_on_failure():
        reaper.own |= {proc.pid for proc in airflow.processes.values()}
        airflow.unpause_when_parsed(dag_id, 180)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        for location in changed:
            sandbox.touch_contacts(location, count=args.touched)
        sandbox.clear_stats()
        excluded = {sandbox.process.pid} if sandbox.process else set()
        cpu0, wall0 = airflow_cpu_seconds(excluded), time.perf_counter()
        run_id = f"bench_{variant}"
        if waits:  # a window that ends soon after the touches: the quiet locations are asked until then
            now = datetime.now(UTC)
            interval = (now - timedelta(minutes=10), now + timedelta(seconds=WAIT_S))
        else:
            interval = (now - timedelta(minutes=10), now + timedelta(minutes=50))
        airflow.trigger_run(dag_id, run_id, now, interval)
        state = airflow.wait_for_run(dag_id, run_id, args.timeout, interval=1.0)["state"]
        run_path = f"dags/{dag_id}/dagRuns/{run_id}"
        wall = time.perf_counter() - wall0
        reaper.reap()
        cpu = airflow_cpu_seconds(excluded) - cpu0
        tis = task_instances(airflow, f"{run_path}/taskInstances")
    stats = sandbox.stats()
    manifests = [json.loads(p.read_text()) for p in out.glob("*/enrichment/*/_manifest.json")]
    routes = stats["requests_by_route"]
    listing = routes.get("GET /oauth/installedLocations", 0)
    base = listing + 1 + len(sandbox.location_ids) + sum(m["requests"] for m in manifests)
    # The probe adds one search per location; the waiting variants ask the quiet ones until the deadline: no
    # fixed floor.
    floor = None if waits else base + (len(sandbox.location_ids) if variant == "probe" else 0)
    enriched = sorted(m["location_id"] for m in manifests if m["datasets"]["contacts"]["records"])
    return {
        "variant": variant,
        "state": state,
        "task_instances": len(tis),
        "started": sum(1 for ti in tis if ti.get("start_date")),
        "by_state": {s: sum(1 for ti in tis if ti["state"] == s) for s in sorted({ti["state"] for ti in tis})},
        "cpu_seconds": round(cpu, 1),
        "wall_seconds": round(wall, 1),
        "requests": stats["requests_total"],
        "floor": floor,
        "responses_429": stats["responses_429"],
        "locations_with_changes": enriched == sorted(changed),
        "changed": len(changed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--locations", type=int, default=300)
    parser.add_argument("--contacts", type=int, default=50, help="contacts per location")
    parser.add_argument("--changed-pct", type=float, default=5.0)
    parser.add_argument("--touched", type=int, default=5, help="contacts changed in each changed location")
    parser.add_argument("--target", type=float, default=5.0, help="least CPU ratio per_location / probe")
    parser.add_argument("--timeout", type=float, default=3000, help="seconds a run may take")
    parser.add_argument("--variants", nargs="+", default=["probe", "per_location"], choices=sorted(DAG_ID))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ghl-bench-agency-"))
    results = []
    try:
        with SandboxServer(
            contacts=args.contacts, locations=args.locations, seed=7, max_requests=10**6, interval_ms=1000
        ) as sandbox:
            if sandbox.process is not None:
                reaper.own.add(sandbox.process.pid)
            for variant in args.variants:
                print(f"running {variant} ...", flush=True)
                results.append(run_variant(variant, sandbox, args, work))
    finally:
        reaper.stop()
        shutil.rmtree(work, ignore_errors=True)

    by = {r["variant"]: r for r in results}
    for r in results:
        print_rows(
            f"{r['variant']}: {args.locations} locations, {r['changed']} changed ({args.changed_pct:g} %)",
            [
                ("run state", r["state"]),
                ("task instances (started)", f"{r['task_instances']} ({r['started']})"),
                ("by state", json.dumps(r["by_state"])),
                ("CPU s, every Airflow process", f"{r['cpu_seconds']:.1f}"),
                ("wall s", f"{r['wall_seconds']:.1f}"),
                ("requests / floor", f"{r['requests']} / {r['floor'] if r['floor'] is not None else '-'}"),
                ("429 responses", str(r["responses_429"])),
                ("changed locations enriched, no other", str(r["locations_with_changes"])),
            ],
        )
    ok = all(r["state"] == "success" and r["locations_with_changes"] for r in results)
    if "probe" in by:
        ok = ok and by["probe"]["requests"] == by["probe"]["floor"]
    for many, one in (("per_location", "probe"), ("sensor_per_location", "wait")):
        if {many, one} <= set(by):
            ratio = by[many]["cpu_seconds"] / max(by[one]["cpu_seconds"], 0.1)
            wall_ratio = by[many]["wall_seconds"] / max(by[one]["wall_seconds"], 0.1)
            print(f"\nCPU {many} / {one}: {ratio:.1f} x (target >= {args.target:g} x); wall: {wall_ratio:.1f} x")
            ok = ok and ratio >= args.target
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "agency.json").write_text(
        json.dumps(
            {"machine": platform.platform(), "cpus": os.cpu_count(), "args": vars(args), "results": results}, indent=2
        )
    )
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


reaper = Reaper()

if __name__ == "__main__":
    sys.exit(main())
