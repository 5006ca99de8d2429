"""``make demo``: the example DAGs, run by Airflow itself against a local GHL sandbox, end to end over HTTP.

1. Starts ``ghl-sandbox``: 2 locations x 1,500 contacts, 80-200 ms latency per request and GHL's default
   budget of 100 requests / 10 s per location.
2. Builds a throw-away Airflow home in ``.demo/airflow-home`` (SQLite, the repo's ``dags/`` as DAGs folder,
   a fresh Fernet key, the ``ghl_default`` connection, an agency install of the app whose locations the DAGs
   discover, and the ``ghl_export_root`` Variable in the environment) and runs ``airflow db migrate``.
3. Runs ``airflow dags test`` for ``ghl_full_export``, then ``ghl_incremental_enrichment`` for the previous
   hour, changes contacts in the sandbox, and runs the enrichment for the current hour, which must pick
   them all up.
4. Starts ``ghl-webhooks serve`` (the demo's home, so its SQLite inbox is the DAG's) and subscribes it in the
   sandbox; writes a CSV per location into the write-back inbox and runs ``ghl_write_back`` (plan, then apply: its
   writes are webhook events); makes a few more changes (a delete, a note, a task), waits until the sandbox
   has delivered them all, and runs ``ghl_webhook_sync``, which applies each location's inbox into a batch
   (``scripts/demo_changes.py``). The receiver is stopped at the end, also when a step fails.
5. Prints per DAG run and location what was written (read back from each ``_manifest.json``), the requests
   and 429s (the hook's count from the manifest, and the sandbox's own count), the elapsed time and where
   everything is.

Only 127.0.0.1 is ever called. Every run starts from an empty ``.demo/``: the sandbox's tokens and data are
new each time, so an old token Variable or an old manifest would only get in the way.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

# The example DAGs' layout is the DAGs folder's own module; scripts/ is not a package: the write-back and webhook
# steps are the module beside this file.
sys.path[:0] = [str(Path(__file__).resolve().parent.parent / "dags"), str(Path(__file__).resolve().parent)]

# Neither imports Airflow: this process must not load Airflow before main() has set the demo's settings.
import demo_changes  # noqa: E402
from demo_changes import WEBHOOK_SYNC_DAG, WRITE_BACK_DAG  # noqa: E402

from ghl_sandbox.testing import SandboxServer  # noqa: E402

from ghl_layout import (  # noqa: E402
    ENRICHMENT,
    EXPORT_ROOT_VARIABLE,
    FULL_EXPORT,
    WEBHOOK_BATCHES,
    WRITEBACK_INBOX,
    WRITEBACK_PLAN,
    WRITEBACK_RESULTS,
    OutputLayout,
)

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags"
DEMO = ROOT / ".demo"
HOME = DEMO / "airflow-home"
OUTPUT = DEMO / "output"
RUN_LOGS = DEMO / "logs"
RECEIVER_LOG = RUN_LOGS / "ghl-webhooks-serve.log"

LOCATIONS = 2
CONTACTS_PER_LOCATION = 1500
#: Contacts changed per location between the two enrichment runs. With their notes and appointments that
#: is a little over 100 requests per location, so the 100 / 10 s budget is really met.
TOUCHED_PER_LOCATION = 60
#: GHL answers in roughly 100-300 ms; 80 ms + up to 120 ms jitter keeps the demo quick but not instant.
LATENCY_MS = 80
JITTER_MS = 120
#: GHL's default burst budget per app (or token) and location.
MAX_REQUESTS = 100
INTERVAL_MS = 10_000
SEED = 7
#: Wall-clock limit of one ``airflow`` command (a failing task waits out the DAG's retry delays first).
RUN_TIMEOUT = 600
#: The enrichment windows are the previous and the current hour, and contacts are changed between the two
#: runs. Were the hour to turn in between, the changes would fall outside the second window, so the demo
#: does not start the enrichment this close to the top of the hour: it waits for the hour to turn instead.
HOUR_GUARD = timedelta(seconds=60)

FULL_EXPORT_DAG = "ghl_full_export"
ENRICHMENT_DAG = "ghl_incremental_enrichment"
#: What each DAG writes: its ``output_path`` is the template of the same layout.
OUTPUTS: dict[str, OutputLayout] = {
    FULL_EXPORT_DAG: FULL_EXPORT,
    ENRICHMENT_DAG: ENRICHMENT,
    WRITE_BACK_DAG: WRITEBACK_RESULTS,  # and WRITEBACK_PLAN, its dry run
}
MANIFEST = "_manifest.json"
DATASETS = ("contacts", "tasks", "notes", "appointments")


# -- building blocks (tested in tests/dags/test_demo.py) ----------------------------------------------------
def hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def enrichment_windows(now: datetime) -> list[tuple[datetime, datetime]]:
    """The previous and the current hour: two consecutive runs of the hourly ``CronDataIntervalTimetable``.

    Contacts changed ``now`` land in the second window, whose end lies ahead: ``airflow dags test`` accepts
    that, and a deployment would run it at the top of the next hour.
    """
    current = hour_floor(now)
    return [(current - timedelta(hours=1), current), (current, current + timedelta(hours=1))]


def wait_before_enrichment(now: datetime, guard: timedelta = HOUR_GUARD) -> float:
    """Seconds to wait so the hour cannot turn between the two enrichment runs (0 when there is time)."""
    left = hour_floor(now) + timedelta(hours=1) - now
    return left.total_seconds() + 1 if left < guard else 0.0


def output_dir(dag_id: str, location: str, root: Path = OUTPUT, **run: date) -> Path:
    """Where a run of ``dag_id`` writes ``location``, from the layout the DAG's ``output_path`` renders.

    :param dag_id: one of :data:`OUTPUTS`.
    :param location: the location id.
    :param root: the ``ghl_export_root`` the DAG is given (as a ``file://`` URI).
    :param run: the run's values the layout names (``ds``, or ``data_interval_start`` and ``data_interval_end``).
    """
    return OUTPUTS[dag_id].path(root, location, **run)


def agency_connection(sandbox: SandboxServer) -> dict[str, Any]:
    """``ghl_default`` as an agency (Company) OAuth app installed on every location of the sandbox.

    The DAGs use one connection for every location where the app is installed, which they discover at run
    time (``ghl_location_ids`` is left unset; the connection names the app, ``app_id``). A Private Integration
    Token belongs to a single location; an agency token mints a token for each location
    (``POST /oauth/locationToken``), and each location keeps its own rate budget. The hook keeps the
    rotating token set in the Variable ``ghl_oauth_ghl_default``, in the demo's (Fernet-encrypted) SQLite DB.

    The connection's default location (where calls that name no location go) is the sandbox's first.

    :param sandbox: the running sandbox.
    """
    return sandbox.airflow_connection(0, agency=True)


def new_fernet_key() -> str:
    """A Fernet key (url-safe base64 of 32 random bytes), so the OAuth token Variable is encrypted at rest."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def airflow_settings(*, home: Path, fernet_key: str) -> dict[str, str]:
    """The Airflow configuration of the demo home (also written to ``.demo/airflow.env`` for inspection)."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": fernet_key,
    }


def clean_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without inherited ``AIRFLOW*`` settings: a user's own ``AIRFLOW_HOME`` or
    ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`` must never point the demo at a real deployment."""
    return {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("AIRFLOW")}


def airflow_env(
    sandbox: SandboxServer,
    *,
    home: Path,
    output: Path,
    fernet_key: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of an ``airflow`` command whose DAG run covers every location of ``sandbox``.

    The connection and the Variable the DAGs read: one agency connection whose locations the DAGs discover,
    ``output`` as the export root.
    """
    # Imported here, not at the top: the module imports Airflow, which must not load before main() has run.
    from ghl_locations import GHL_CONN_ID

    return {
        **clean_environ(base),
        **airflow_settings(home=home, fernet_key=fernet_key),
        f"AIRFLOW_CONN_{GHL_CONN_ID.upper()}": json.dumps(agency_connection(sandbox)),
        f"AIRFLOW_VAR_{EXPORT_ROOT_VARIABLE.upper()}": output.as_uri(),
    }


def read_manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MANIFEST).read_text())


def manifest_row(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Files, records per dataset, requests, 429s and seconds of one export, from its manifest."""
    datasets = manifest.get("datasets", {})
    return {
        "files": sum(len(d.get("files", [])) for d in datasets.values()),
        **{name: datasets[name]["records"] if name in datasets else None for name in DATASETS},
        "requests": manifest.get("requests"),
        "429s": manifest.get("responses_429"),
        "seconds": manifest.get("duration_seconds"),
    }


def contact_ids(directory: Path, manifest: Mapping[str, Any]) -> set[str]:
    """Ids in the ``contacts`` part files of an (uncompressed) enrichment output."""
    files = manifest["datasets"]["contacts"]["files"]
    return {json.loads(line)["id"] for f in files for line in (directory / f).read_text().splitlines() if line}


COLUMNS = (
    ("DAG run", "<", 28),
    ("location", "<", 20),
    ("files", ">", 5),
    ("contacts", ">", 8),
    ("tasks", ">", 5),
    ("notes", ">", 5),
    ("appts", ">", 5),
    ("requests", ">", 8),
    ("429s", ">", 4),
    ("seconds", ">", 7),
    ("where to look", "<", 0),
)


def _cell(value: Any, align: str, width: int) -> str:
    text = "-" if value is None else f"{value:.1f}" if isinstance(value, float) else str(value)
    return f"{text:{align}{width}}" if width else text


def format_table(rows: Sequence[Sequence[Any]], columns: Sequence[tuple[str, str, int]] = COLUMNS) -> str:
    """A fixed-width table with ``columns`` (name, alignment, width; default :data:`COLUMNS`); ``None`` is ``-``."""
    header = "  ".join(_cell(name, align, width) for name, align, width in columns)
    lines = [header, "-" * (len(header) + 10)]
    lines += ["  ".join(_cell(v, a, w) for v, (_, a, w) in zip(row, columns, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def relative(path: Path) -> str:
    """``path`` relative to the repository, a directory with a trailing ``/``."""
    try:
        return str(path.relative_to(ROOT)) + ("/" if path.is_dir() else "")
    except ValueError:
        return str(path)


# -- the demo ------------------------------------------------------------------------------------------------
class DemoFailed(RuntimeError):
    """A step failed; the message says which and shows the end of its output."""


def say(message: str, started: float) -> None:
    """One progress line, stamped with the seconds since the demo started."""
    print(f"[{time.monotonic() - started:5.1f} s] {message}", flush=True)


def tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


#: What ``airflow dags test`` logs when a task instance fails (a retry pending, or for good).
TASK_FAILED_MARKERS = ("new_state=up_for_retry", "new_state=failed")
#: The "exit code" of a command stopped because a task failed (never a real one: those are -255..255).
TASK_FAILED = -1000


def failure_excerpt(text: str, lines: int = 60) -> str:
    """The end of the first failed task's traceback in a ``dags test`` output, else the output's tail."""
    all_lines = text.splitlines()
    first = next((i for i, line in enumerate(all_lines) if "Task failed with exception" in line), None)
    if first is None:
        return "\n".join(all_lines[-lines:])
    end = next((i for i in range(first, len(all_lines)) if any(m in all_lines[i] for m in TASK_FAILED_MARKERS)), None)
    return "\n".join(all_lines[first : (len(all_lines) if end is None else end + 1)][-lines:])


def check_exit(args: Sequence[str], code: int | None, log: Path) -> None:
    """``DemoFailed`` with the failure's excerpt unless ``code`` is 0 (None: timed out)."""
    if code == 0:
        return
    what = {None: f"timed out after {RUN_TIMEOUT} s", TASK_FAILED: "stopped: a task failed"}.get(code, f"exited {code}")
    excerpt = failure_excerpt(log.read_text(errors="replace"))
    raise DemoFailed(f"`airflow {' '.join(args)}` {what}; from {relative(log)}:\n{excerpt}")


def run_airflow(args: Sequence[str], env: Mapping[str, str], log: Path) -> float:
    """Run ``airflow <args>`` with its output in ``log``; the seconds it took. ``DemoFailed`` if it fails.

    A failed task stops the command at once: the example DAGs retry after minutes, which a demo should not
    sit through (the excerpt shows why the task failed).
    """
    started = time.monotonic()
    with log.open("w") as fh, log.open() as reader:
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow", *args], env=dict(env), cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT
        )
        code: int | None = None
        pending = ""
        try:
            while (code := proc.poll()) is None:
                pending = pending[-200:] + reader.read()  # a marker may straddle two reads
                if any(marker in pending for marker in TASK_FAILED_MARKERS):
                    code = TASK_FAILED
                    break
                if time.monotonic() - started > RUN_TIMEOUT:
                    break
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    check_exit(args, code, log)
    return time.monotonic() - started


@dataclass
class RunResult:
    """One DAG run for a logical date: one ``airflow dags test``, or one per location group."""

    label: str
    dag_id: str
    seconds: float = 0.0
    requests: int = 0
    responses_429: int = 0
    #: Its ``airflow dags test`` output: a file, or a glob for one file per location group.
    logs: str = ""
    #: Output directory per location.
    outputs: dict[str, Path] = field(default_factory=dict)
    #: The run's values its output layout names (``ds``, ...).
    values: dict[str, date] = field(default_factory=dict)


class Demo:
    """The sandbox, the Airflow home and the DAG runs of one ``make demo``."""

    def __init__(
        self, sandbox: SandboxServer, fernet_key: str, started: float, receiver: demo_changes.WebhookReceiver
    ) -> None:
        self.sandbox = sandbox
        self.fernet_key = fernet_key
        self.started = started
        self.receiver = receiver
        self.locations: list[str] = sandbox.location_ids
        #: Per location: the ids of the exported contacts in its write-back CSV.
        self.written_back: dict[str, list[str]] = {}
        #: Per location: its failed write-back rows (row, why, the row as it came).
        self.dead_letters: dict[str, list[tuple[int, str, str]]] = {}
        self.receiver_url = ""
        self.receiver_stats: dict[str, Any] = {}

    def say(self, message: str) -> None:
        say(message, self.started)

    def dags_test(
        self,
        label: str,
        dag_id: str,
        logical_date: datetime,
        outputs: Callable[[str], Path | None] | None = None,
        **run: date,
    ) -> RunResult:
        """``airflow dags test dag_id logical_date`` over every location (one mapped task each).

        The sandbox's request and 429 counts are taken around the run, so they are this run's alone.

        :param outputs: where the run wrote a location, found after it (default: :func:`output_dir`).
        :param run: the run's values the DAG's output layout names (see :func:`output_dir`).
        """
        log = RUN_LOGS / f"{dag_id}__{logical_date:%Y%m%dT%H%M%S}.log"
        result = RunResult(label, dag_id, logs=relative(log), values=dict(run))
        before = self.sandbox.stats()
        env = airflow_env(self.sandbox, home=HOME, output=OUTPUT, fernet_key=self.fernet_key)
        self.say(f"airflow dags test {dag_id} {logical_date:%Y-%m-%dT%H:%M}Z ...")
        result.seconds += run_airflow(["dags", "test", dag_id, logical_date.isoformat()], env, log)
        for location in self.locations:
            directory = outputs(location) if outputs else output_dir(dag_id, location, OUTPUT, **run)
            if directory is None or not (directory / MANIFEST).exists():
                where = relative(directory) if directory else f"no output for {location}"
                raise DemoFailed(f"{dag_id} exited 0 but {where} has no manifest:\n{tail(log)}")
            result.outputs[location] = directory
        after = self.sandbox.stats()
        result.requests = after["requests_total"] - before["requests_total"]
        result.responses_429 = after["responses_429"] - before["responses_429"]
        return result

    def run(self, contacts: int, touch: int) -> tuple[list[RunResult], dict[str, list[str]]]:
        """The full export, the enrichment of the previous hour, contacts changed, the current hour's."""
        today = datetime.now(UTC).date()
        full = self.dags_test(
            f"full export {today}", FULL_EXPORT_DAG, datetime(today.year, today.month, today.day, tzinfo=UTC), ds=today
        )
        for location, directory in full.outputs.items():
            exported = read_manifest(directory)["datasets"]["contacts"]["records"]
            if exported != contacts:
                raise DemoFailed(f"the full export of {location} holds {exported} contacts, the sandbox {contacts}")

        wait = wait_before_enrichment(datetime.now(UTC))
        if wait:
            self.say(f"The hour turns in {wait:.0f} s: waiting for it, so both windows stay consecutive hours")
            time.sleep(wait)
        (start1, end1), (start2, end2) = enrichment_windows(datetime.now(UTC))
        # A manual run's logical date is the END of its data interval.
        first = self.dags_test(
            f"enrichment {start1:%H:%M}-{end1:%H:%M} UTC",
            ENRICHMENT_DAG,
            end1,
            data_interval_start=start1,
            data_interval_end=end1,
        )

        touched = {loc: self.sandbox.touch_contacts(loc, count=touch) for loc in self.locations}
        if hour_floor(datetime.now(UTC)) != start2:
            raise DemoFailed("the hour turned before the contacts were changed; run make demo again")
        self.say(f"Changed {touch} contacts per location in the sandbox (their dateUpdated is now)")

        second = self.dags_test(
            f"enrichment {start2:%H:%M}-{end2:%H:%M} UTC",
            ENRICHMENT_DAG,
            end2,
            data_interval_start=start2,
            data_interval_end=end2,
        )
        for location, directory in second.outputs.items():
            missing = set(touched[location]) - contact_ids(directory, read_manifest(directory))
            if missing:
                raise DemoFailed(f"{relative(directory)} misses {len(missing)} of the contacts changed in {location}")
        self.receiver_url = self.receiver.wait_ready()
        self.sandbox.set_webhooks([self.receiver_url])
        events_before = self.sandbox.webhook_stats()["events"]
        self.say(f"ghl-webhooks serve at {self.receiver_url}, subscribed in the sandbox")
        written = self.write_back(full, today)
        return [full, first, second, written, self.webhook_sync(events_before)], touched

    def write_back(self, full: RunResult, day: date) -> RunResult:
        """A CSV per location into its write-back inbox, ``ghl_write_back``; its plan and results must match the CSV."""
        expected, self.written_back = demo_changes.write_writeback_inputs(full.outputs, OUTPUT)
        changes = demo_changes
        self.say(
            f"Wrote {changes.WRITEBACK_ROWS}-row CSVs ({changes.WRITEBACK_CHANGED} contacts changed, "
            f"{changes.WRITEBACK_NEW} new, 1 bad row) to {WRITEBACK_INBOX.describe(relative(OUTPUT))}"
            f"{changes.WRITEBACK_INPUT}"
        )
        midnight = datetime.combine(day, datetime.min.time(), UTC)
        run = self.dags_test(f"write-back {day}", WRITE_BACK_DAG, midnight, ds=day)
        self.dead_letters = demo_changes.check_write_back(run.outputs, OUTPUT, expected, ds=day)
        return run

    def webhook_sync(self, events_before: int) -> RunResult:
        """More changes, every event delivered, ``ghl_webhook_sync``: each location's batch holds all of its events."""
        for location in self.locations:
            demo_changes.extra_changes(self.sandbox, location, self.written_back[location])
        made = demo_changes.deliver(self.sandbox, self.receiver, events_before)
        self.receiver_stats = self.receiver.stats()
        kinds = ", ".join(f"{n} x {kind}" for kind, n in sorted(Counter(e["type"] for e in made).items()))
        self.say(f"Made a delete, a note and a task per location; {len(made)} webhook events delivered ({kinds})")
        run = self.dags_test(
            "webhook sync",
            WEBHOOK_SYNC_DAG,
            datetime.now(UTC),
            outputs=lambda loc: demo_changes.latest_batch(OUTPUT, loc),
        )
        expected = Counter(event["locationId"] for event in made)
        for location, batch in run.outputs.items():
            if (events := read_manifest(batch)["events"]) != expected[location]:
                raise DemoFailed(f"{relative(batch)} holds {events} events, {location} made {expected[location]}")
        return run

    def report(self, runs: Sequence[RunResult], touched: Mapping[str, list[str]]) -> None:
        rows: list[list[Any]] = []
        for run in [r for r in runs if r.dag_id in (FULL_EXPORT_DAG, ENRICHMENT_DAG)]:
            for i, (location, directory) in enumerate(run.outputs.items()):
                r = manifest_row(read_manifest(directory))
                rows.append(
                    [
                        run.label if i == 0 else "",
                        location,
                        r["files"],
                        *(r[d] for d in DATASETS),
                        r["requests"],
                        r["429s"],
                        r["seconds"],
                        relative(directory),
                    ]
                )
            sandbox_row = ["", "  sandbox / dags test", None, None, None, None, None, run.requests]
            rows.append([*sandbox_row, run.responses_429, run.seconds, run.logs])
        stats = self.sandbox.stats()
        print()
        print(format_table(rows))
        print()
        print("Per location: the hook's requests and 429s and the export task's seconds, from _manifest.json.")
        print("Sandbox rows: what the sandbox served during that DAG run (OAuth token calls included), and the")
        print("wall time of `airflow dags test` (Airflow start-up, DAG parsing and every task).")
        changed = ", ".join(f"{len(ids)} in {loc}" for loc, ids in touched.items())
        print(f"Contacts changed between the enrichment runs: {changed}; the second window holds every one.")
        self.report_changes(runs)
        print(
            f"\nSandbox in total: {stats['requests_total']} requests, {stats['responses_429']} x 429, "
            f"peak concurrency {stats['peak_concurrency']}, {stats['tokens_refreshed']} OAuth refresh(es)."
        )
        print()
        print("Where to look:")
        print(f"  exports      {FULL_EXPORT.describe(relative(OUTPUT))}")
        print(f"               {ENRICHMENT.describe(relative(OUTPUT))}")
        print(f"  write-back   {WRITEBACK_INBOX.describe(relative(OUTPUT))}{demo_changes.WRITEBACK_INPUT} (the input)")
        plan, results = WRITEBACK_PLAN.describe(relative(OUTPUT)), WRITEBACK_RESULTS.describe(relative(OUTPUT))
        print(f"               {plan} and {results}")
        print(f"  webhooks     {WEBHOOK_BATCHES.describe(relative(OUTPUT))}")
        inbox = self.receiver.inbox  # sqlite:///<absolute path>, as the receiver's banner says
        print(f"               inbox {relative(Path(inbox.removeprefix('sqlite:///')))}, log {relative(RECEIVER_LOG)}")
        print(f"  task logs    {relative(RUN_LOGS)} (the output of each airflow dags test)")
        print(f"  Airflow      {relative(HOME)} (airflow.cfg, airflow.db)")
        env_file = relative(DEMO / "airflow.env")
        print(f"  inspect      source {env_file} && .venv/bin/airflow dags list-runs {ENRICHMENT_DAG}")
        print(f"\nmake demo finished in {time.monotonic() - self.started:.0f} s.")

    def report_changes(self, runs: Sequence[RunResult]) -> None:
        """The write-back's plan and results with its dead letters, and the webhook batches."""
        for dag_id, columns in (
            (WRITE_BACK_DAG, demo_changes.WRITEBACK_TABLE),
            (WEBHOOK_SYNC_DAG, demo_changes.WEBHOOK_TABLE),
        ):
            rows: list[list[Any]] = []
            for run in [r for r in runs if r.dag_id == dag_id]:
                rows += demo_changes.run_rows(run.label, dag_id, run.outputs, OUTPUT, relative, **run.values)
                counts = [*[None] * 7, run.requests, run.responses_429] if dag_id == WRITE_BACK_DAG else [None] * 7
                rows.append(["", "  sandbox / dags test", "", *counts, run.seconds, run.logs])
            print(f"\n{format_table(rows, columns)}")
            if dag_id == WRITE_BACK_DAG:
                print("\n".join(demo_changes.dead_letter_lines(self.dead_letters)))
        print(demo_changes.receiver_line(self.receiver_url, self.receiver_stats))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run the example DAGs with Airflow against a local GHL sandbox.")
    p.add_argument("--contacts", type=int, default=CONTACTS_PER_LOCATION, help="contacts per location")
    p.add_argument("--touch", type=int, default=TOUCHED_PER_LOCATION, help="contacts changed per location")
    p.add_argument("--latency-ms", type=float, default=LATENCY_MS, help="latency of every sandbox response")
    p.add_argument("--jitter-ms", type=float, default=JITTER_MS, help="random extra latency, up to this")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    shutil.rmtree(DEMO, ignore_errors=True)
    HOME.mkdir(parents=True)
    OUTPUT.mkdir()
    RUN_LOGS.mkdir()
    fernet_key = new_fernet_key()
    settings = airflow_settings(home=HOME, fernet_key=fernet_key)
    (DEMO / "airflow.env").write_text("".join(f"export {k}={v}\n" for k, v in settings.items()))
    # This process imports Airflow too (the operator probe): it gets the demo's settings and nothing else.
    for name in [k for k in os.environ if k.startswith("AIRFLOW")]:
        del os.environ[name]
    os.environ.update(settings)

    # The DB migration needs no sandbox: it runs while the sandbox generates its data.
    migrate_args = ["db", "migrate"]
    migrate_log = RUN_LOGS / "airflow-db-migrate.log"
    with migrate_log.open("w") as fh:
        migrate = subprocess.Popen(
            [sys.executable, "-m", "airflow", *migrate_args],
            env=dict(os.environ),
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    say(
        f"Starting the GHL sandbox ({LOCATIONS} locations x {args.contacts} contacts, "
        f"{args.latency_ms:.0f}-{args.latency_ms + args.jitter_ms:.0f} ms latency, {MAX_REQUESTS} requests / "
        f"{INTERVAL_MS // 1000} s per location) and migrating the Airflow DB in {relative(HOME)}",
        started,
    )
    sandbox = SandboxServer(
        contacts=args.contacts,
        locations=LOCATIONS,
        seed=SEED,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        max_requests=MAX_REQUESTS,
        interval_ms=INTERVAL_MS,
    )
    receiver: demo_changes.WebhookReceiver | None = None
    try:
        with sandbox:
            try:
                code: int | None = migrate.wait(RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                code = None
            check_exit(migrate_args, code, migrate_log)
            # Started now (after the migration wrote airflow.cfg), it loads while the exports run.
            env = demo_changes.receiver_env(
                {**clean_environ(), **settings}, sandbox.webhook_public_key, sandbox.location_ids
            )
            receiver = demo_changes.WebhookReceiver(env, RECEIVER_LOG, ROOT).launch()
            demo = Demo(sandbox, fernet_key, started, receiver)
            demo.say(f"Sandbox at {sandbox.base_url}, Airflow DB ready")
            runs, touched = demo.run(args.contacts, args.touch)
            demo.report(runs, touched)
    except (DemoFailed, demo_changes.StepFailed, TimeoutError) as exc:
        print(f"\nmake demo FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if receiver is not None:
            receiver.stop()
        if migrate.poll() is None:
            migrate.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
