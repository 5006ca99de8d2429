"""The write-back and webhook parts of ``make demo`` (``scripts/demo.py`` runs them after the exports).

- **Write-back** (``ghl_write_back``): a CSV per location in the write-back inbox (:func:`write_back_csv`: a few
  exported contacts changed, a few new ones, the rest as exported, one bad row), planned by a dry run, then applied.
- **Webhooks** (``ghl_webhook_sync``): ``ghl-webhooks serve`` as a child process (:class:`WebhookReceiver`)
  with the demo's Airflow home, so its SQLite inbox is the one the DAG drains; the sandbox delivers every
  change to it (the write-back's writes, then :func:`extra_changes`), and the DAG applies each location's
  inbox into a batch folder (:func:`batch_row`).

Imports no Airflow (nor ``scripts/demo.py``): the demo loads it before it has configured Airflow.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from ghl_sandbox.testing import SandboxServer, stop_child

from ghl_layout import WEBHOOK_BATCHES, WRITEBACK_INBOX, WRITEBACK_PLAN

WRITE_BACK_DAG = "ghl_write_back"
WEBHOOK_SYNC_DAG = "ghl_webhook_sync"
#: The file ``ghl_write_back`` applies, in each location's write-back inbox (the DAG's ``INPUT_FILE``).
WRITEBACK_INPUT = "contacts.csv"
#: Rows of each location's CSV. The DAG tolerates 2% failed rows (``MAX_FAILED_RATIO``): the one bad row
#: needs 50 rows around it, or the plan fails and nothing is applied.
WRITEBACK_ROWS = 50
#: Exported contacts changed in it, and new ones.
WRITEBACK_CHANGED = 8
WRITEBACK_NEW = 4
#: Exported contacts in each CSV: all rows but the new ones and the bad one.
WRITEBACK_EXISTING = WRITEBACK_ROWS - WRITEBACK_NEW - 1
WRITEBACK_TAG = "demo-writeback"
WRITEBACK_COLUMNS = ("id", "email", "firstName", "lastName", "tags")
#: The bad row: an e-mail that is not one, and no id: the row is rejected on its own.
BAD_EMAIL = "not-an-email"
#: Longest wait for the receiver to answer, and for the sandbox to deliver everything.
RECEIVER_TIMEOUT = 60
DELIVERY_TIMEOUT = 60
BATCH_DATASETS = ("contacts", "tombstones", "notes", "tasks")


class StepFailed(RuntimeError):
    """A write-back or webhook step did not do what it should; the message says what and where."""


# -- write-back ----------------------------------------------------------------------------------------------
def exported_contacts(directory: Path, manifest: Mapping[str, Any], limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` contacts with a first name from a full export's (gzipped) ``contacts`` part files."""
    found: list[dict[str, Any]] = []
    for name in manifest["datasets"]["contacts"]["files"]:
        with gzip.open(directory / name, "rt") as fh:
            for line in fh:
                contact = json.loads(line)
                if contact.get("firstName"):
                    found.append(contact)
                    if len(found) == limit:
                        return found
    return found


def write_back_csv(location: str, contacts: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, int]]:
    """The CSV a location's write-back applies, and the counts its plan must come to.

    Of ``contacts`` (:data:`WRITEBACK_EXISTING` exported ones): the first :data:`WRITEBACK_CHANGED`
    get a new last name and the :data:`WRITEBACK_TAG` tag (one PUT and one tag write each), the others are given
    as exported (a skip, no write). Then :data:`WRITEBACK_NEW` new contacts by e-mail, and the bad row last.

    :param location: the location (its new e-mail addresses are its own).
    :param contacts: exported contacts, each with ``id`` and ``firstName``.
    """
    if len(contacts) < WRITEBACK_EXISTING:
        have = len(contacts)
        raise StepFailed(
            f"{location}: the CSV needs {WRITEBACK_EXISTING} exported contacts with a first name, has {have}"
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(WRITEBACK_COLUMNS)
    for i, contact in enumerate(contacts[:WRITEBACK_EXISTING]):
        if i < WRITEBACK_CHANGED:
            writer.writerow([contact["id"], "", contact["firstName"], f"Synced {i + 1}", WRITEBACK_TAG])
        else:
            writer.writerow([contact["id"], "", contact["firstName"], "", ""])
    for i in range(WRITEBACK_NEW):
        email = f"demo.writeback.{i + 1}.{location.lower()}@example.com"
        writer.writerow(["", email, "New", f"Contact {i + 1}", WRITEBACK_TAG])
    writer.writerow(["", BAD_EMAIL, "Bad", "Row", ""])
    expected = {
        "rows": WRITEBACK_ROWS,
        "create": WRITEBACK_NEW,
        "update": WRITEBACK_CHANGED,
        "skip": WRITEBACK_EXISTING - WRITEBACK_CHANGED,
    }
    return out.getvalue(), {**expected, "reject": 1}


def write_writeback_input(root: Path, location: str, text: str) -> Path:
    """Put ``text`` where ``ghl_write_back`` reads the location's file; its path."""
    path: Path = WRITEBACK_INBOX.path(root, location) / WRITEBACK_INPUT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_writeback_inputs(
    exports: Mapping[str, Path], root: Path
) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
    """Each location's CSV (:func:`write_back_csv`, from its full export) into its write-back inbox under ``root``.

    :param exports: the full export's directory per location.
    :returns: per location, the counts its plan must come to and the ids of the exported contacts in its CSV.
    """
    expected: dict[str, dict[str, int]] = {}
    written_back: dict[str, list[str]] = {}
    for location, directory in exports.items():
        exported = exported_contacts(directory, _manifest(directory), WRITEBACK_EXISTING)
        text, expected[location] = write_back_csv(location, exported)
        written_back[location] = [c["id"] for c in exported]
        write_writeback_input(root, location, text)
    return expected, written_back


def check_write_back(
    results: Mapping[str, Path], root: Path, expected: Mapping[str, Mapping[str, int]], *, ds: date
) -> dict[str, list[tuple[int, str, str]]]:
    """Each location's plan and results come to the ``expected`` counts (:class:`StepFailed` if not); the
    dead letters per location (:func:`dead_letters`).

    :param results: the results directory per location.
    :param root: the export root (where the plan is).
    :param ds: the run's day (the plan's and the results' directory).
    """
    failed = {}
    for location, directory in results.items():
        plan_dir = WRITEBACK_PLAN.path(root, location, ds=ds)
        plan, manifest = _manifest(plan_dir), _manifest(directory)
        got = {key: manifest["counts"][key] for key in expected[location]}
        if got != expected[location] or plan["counts"] != manifest["counts"]:
            raise StepFailed(
                f"write-back of {location}: expected {dict(expected[location])}, plan {plan['counts']}, "
                f"results {manifest['counts']} ({directory})"
            )
        failed[location] = dead_letters(directory, manifest)
    return failed


def write_back_row(manifest: Mapping[str, Any]) -> list[Any]:
    """Rows, create, update, skip, reject, error, writes, requests, 429s and seconds of one write-back run."""
    counts = manifest["counts"]
    return [
        *(counts[k] for k in ("rows", "create", "update", "skip", "reject", "error", "writes")),
        manifest.get("requests"),
        manifest.get("responses_429"),
        manifest.get("duration_seconds"),
    ]


WRITEBACK_TABLE = (
    ("DAG run", "<", 22),
    ("location", "<", 20),
    ("step", "<", 7),
    ("rows", ">", 4),
    ("create", ">", 6),
    ("update", ">", 6),
    ("skip", ">", 4),
    ("reject", ">", 6),
    ("error", ">", 5),
    ("writes", ">", 6),
    ("requests", ">", 8),
    ("429s", ">", 4),
    ("seconds", ">", 7),
    ("where to look", "<", 0),
)


def dead_letters(directory: Path, manifest: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    """The failed rows of a write-back run: (row number, why, the row as it came), from its results and dead letters."""
    errors = {}
    for name in manifest["results"]:
        for line in (directory / name).read_text().splitlines():
            result = json.loads(line)
            if result["action"] in ("reject", "error"):
                errors[result["row"]] = result.get("error") or result["action"]
    raw: list[str] = []
    for name in manifest["dead_letter"]:
        raw += (directory / name).read_text().splitlines()[1:]  # each file starts with the CSV header
    if len(raw) != len(errors):
        raise ValueError(f"{directory}: {len(errors)} failed rows in the results, {len(raw)} dead letters")
    return [(row, errors[row], text) for row, text in zip(sorted(errors), raw, strict=True)]


# -- webhooks ------------------------------------------------------------------------------------------------
def receiver_env(base: Mapping[str, str], public_key: str, locations: Sequence[str]) -> dict[str, str]:
    """The receiver's environment: the demo's Airflow settings (``base``: its ``AIRFLOW_HOME`` decides where the
    default SQLite inbox is), the sandbox's key instead of GHL's, and the locations it serves."""
    return {
        **base,
        "AIRFLOW__GHL_WEBHOOKS__PUBLIC_KEY": public_key,
        "AIRFLOW__GHL_WEBHOOKS__LOCATIONS": ",".join(locations),
    }


class WebhookReceiver:
    """``ghl-webhooks serve --port 0`` (a free loopback port) as a child process, its output in ``log``.

    :param env: its environment (:func:`receiver_env`).
    :param log: the file its output goes to.
    :param cwd: its working directory.
    """

    def __init__(self, env: Mapping[str, str], log: Path, cwd: Path) -> None:
        self.env = dict(env)
        self.log = log
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.base_url = ""
        #: The inbox it stores into, as its banner says (the ``[ghl_webhooks] inbox`` setting it read).
        self.inbox = ""

    def launch(self) -> WebhookReceiver:
        """Start the process and return at once (it loads while the demo goes on); :meth:`wait_ready` waits."""
        # ``python -m`` of the ``ghl-webhooks`` console script's module: the same interpreter as the demo.
        cmd = [sys.executable, "-m", "airflow_provider_ghl.webhooks.cli", "serve", "--port", "0", "--stats"]
        with self.log.open("wb") as fh:
            self.process = subprocess.Popen(cmd, env=self.env, cwd=self.cwd, stdout=fh, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = RECEIVER_TIMEOUT) -> str:
        """Wait for the banner with the address, then for ``/ghl/health``; the URL to subscribe in GHL."""
        deadline = time.monotonic() + timeout
        while not self.base_url:
            banner = next((ln for ln in self._output().splitlines() if ln.startswith("ghl-webhooks: POST ")), "")
            if banner:
                # "ghl-webhooks: POST http://127.0.0.1:<port>/ghl/webhooks -> inbox sqlite:///..."
                self.base_url = banner.split()[2].removesuffix("/webhooks")
                self.inbox = banner.partition(" -> inbox ")[2].strip()
            else:
                self._check(deadline)
        while True:
            try:
                if httpx.get(f"{self.base_url}/health", timeout=5).status_code == 200:
                    return f"{self.base_url}/webhooks"
            except httpx.TransportError:
                pass
            self._check(deadline)

    def _check(self, deadline: float) -> None:
        if self.process is None or self.process.poll() is not None or time.monotonic() > deadline:
            state = "exited" if self.process is not None and self.process.poll() is not None else "did not answer"
            raise StepFailed(f"ghl-webhooks serve {state}; its output ({self.log}):\n{self._output()[-3000:]}")
        time.sleep(0.05)

    def _output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stats(self) -> dict[str, Any]:
        """``GET /ghl/stats``: what it stored, took as a duplicate, refused."""
        return dict(httpx.get(f"{self.base_url}/stats", timeout=10).json())

    def stop(self) -> None:
        stop_child(self.process)


def extra_changes(sandbox: SandboxServer, location: str, keep: Sequence[str]) -> list[dict[str, Any]]:
    """A few changes made in GHL itself, each with its webhook: a contact deleted, a note, a task made and done.

    :param keep: contact ids not to delete (the write-back's); the first one gets the note and the task.
    :returns: the sandbox's results (op, id, contactId) per change.
    """
    kept = set(keep)
    doomed = next(cid for cid in sandbox.contact_ids(location) if cid not in kept)
    owner = keep[0]
    return sandbox.changes(
        location,
        [
            {"op": "contact.delete", "id": doomed},
            {
                "op": "note.create",
                "contactId": owner,
                "fields": {"body": "Called back after the write-back (make demo)"},
            },
            {
                "op": "task.create",
                "contactId": owner,
                "fields": {"title": "Send the contract", "dueDate": "2026-12-31T09:00:00Z", "completed": False},
            },
            {"op": "task.complete", "contactId": owner, "id": "$2"},
        ],
    )


def deliver(sandbox: SandboxServer, receiver: WebhookReceiver, events_before: int) -> list[dict[str, str]]:
    """Wait until the sandbox has delivered every event made since ``events_before`` (its ``events`` count when
    the receiver was subscribed) and the receiver stored each once; those events (webhookId, type, locationId)."""
    stats = sandbox.wait_webhooks_delivered(timeout=DELIVERY_TIMEOUT)
    made = sandbox.webhook_events(limit=stats["events"] - events_before) if stats["events"] > events_before else []
    stored = receiver.stats()
    if stats["given_up"] or stored["stored"] != len(made):
        raise StepFailed(f"{len(made)} webhook events made; sandbox {stats}, receiver {stored}")
    return made


def latest_batch(root: Path, location: str) -> Path | None:
    """The last batch folder of ``location``'s webhooks (None when there is none)."""
    batches = WEBHOOK_BATCHES.batches(WEBHOOK_BATCHES.path(root, location))
    return batches[-1] if batches else None


def batch_row(manifest: Mapping[str, Any]) -> list[Any]:
    """Events, records per dataset (:data:`BATCH_DATASETS`), stale + duplicate events, requests and seconds."""
    datasets = manifest.get("datasets", {})
    return [
        manifest["events"],
        *(datasets[name]["records"] if name in datasets else 0 for name in BATCH_DATASETS),
        manifest["stale"] + manifest["duplicates"],
        manifest["requests"],
        manifest.get("duration_seconds"),
    ]


WEBHOOK_TABLE = (
    ("DAG run", "<", 22),
    ("location", "<", 20),
    ("batch", "<", 25),
    ("events", ">", 6),
    ("contacts", ">", 8),
    ("tombstones", ">", 10),
    ("notes", ">", 5),
    ("tasks", ">", 5),
    ("stale/dup", ">", 9),
    ("requests", ">", 8),
    ("seconds", ">", 7),
    ("where to look", "<", 0),
)


# -- the summary ---------------------------------------------------------------------------------------------
def run_rows(
    label: str, dag_id: str, outputs: Mapping[str, Path], root: Path, where: Callable[[Path], str], **run: date
) -> list[list[Any]]:
    """The summary rows of one run of ``dag_id`` (:data:`WRITEBACK_TABLE` or :data:`WEBHOOK_TABLE`), from its manifests.

    :param outputs: the run's directory per location: the write-back results, or the webhook batch.
    :param root: the export root (where the write-back plan is).
    :param where: how a directory is shown.
    :param run: the run's values its layouts name (``ds`` of a write-back run).
    """
    rows: list[list[Any]] = []
    for i, (location, directory) in enumerate(outputs.items()):
        first = label if i == 0 else ""
        if dag_id == WRITE_BACK_DAG:
            plan = WRITEBACK_PLAN.path(root, location, **run)
            rows.append([first, location, "plan", *write_back_row(_manifest(plan)), where(plan)])
            rows.append(["", location, "apply", *write_back_row(_manifest(directory)), where(directory)])
        else:
            rows.append([first, location, directory.name, *batch_row(_manifest(directory)), where(directory)])
    return rows


def _manifest(directory: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((directory / "_manifest.json").read_text())
    return manifest


def dead_letter_lines(failed: Mapping[str, Sequence[tuple[int, str, str]]]) -> list[str]:
    """What follows the write-back table: the plan is a dry run, and each dead letter with its reason."""
    lines = ["The plan is the dry run (no write); apply writes only what changed. Dead letters, as the rows came:"]
    lines += [f"  {loc} row {row}: {text!r} -> {why}" for loc, rows in failed.items() for row, why, text in rows]
    return lines


def receiver_line(url: str, stats: Mapping[str, Any]) -> str:
    return (
        f"Receiver ghl-webhooks serve ({url}): stored {stats.get('stored')}, duplicates {stats.get('duplicates')}, "
        f"refused {stats.get('refused')}. Requests: what a batch had to ask GHL for (payloads carry the rest)."
    )
