"""Building blocks of ``make demo`` (scripts/demo.py); the DAG runs themselves are tested in test_example_dags."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from airflow_provider_ghl.hooks.auth import TokenSet
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer
from tests.dags.rendering import render

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


@pytest.fixture(scope="module")
def demo() -> Iterator[ModuleType]:
    # scripts/ is not a package: load the file by path. Dataclasses look their module up in sys.modules.
    spec = importlib.util.spec_from_file_location("ghl_demo_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_enrichment_windows_are_consecutive_hours_and_the_second_holds_now(demo: ModuleType) -> None:
    now = datetime(2026, 11, 23, 20, 41, 7, tzinfo=UTC)
    (start1, end1), (start2, end2) = demo.enrichment_windows(now)
    assert (start1, end1) == (datetime(2026, 11, 23, 19, tzinfo=UTC), datetime(2026, 11, 23, 20, tzinfo=UTC))
    assert end1 == start2 and end2 - start2 == timedelta(hours=1)
    assert start2 <= now < end2
    # The output directory the DAG's template gives that window (ts_nodash of the interval).
    out = demo.output_dir(demo.ENRICHMENT_DAG, "loc", Path("/o"), data_interval_start=start1, data_interval_end=end1)
    assert out == Path("/o/loc/enrichment/20261123T190000__20261123T200000")


def test_the_demo_waits_only_close_to_the_top_of_the_hour(demo: ModuleType) -> None:
    assert demo.wait_before_enrichment(datetime(2026, 11, 23, 20, 30, tzinfo=UTC)) == 0
    late = datetime(2026, 11, 23, 20, 59, 30, tzinfo=UTC)
    wait = demo.wait_before_enrichment(late)
    assert 30 <= wait <= 32
    # After waiting, both windows (and the changes between them) sit in the new hour.
    assert demo.enrichment_windows(late + timedelta(seconds=wait))[1][0] == datetime(2026, 11, 23, 21, tzinfo=UTC)


def test_airflow_env_isolates_the_demo_and_configures_the_dags(demo: ModuleType, sandbox: SandboxServer) -> None:
    base = {"PATH": "/usr/bin", "AIRFLOW_HOME": "/prod", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://prod"}
    env = demo.airflow_env(sandbox, home=Path("/d/home"), output=Path("/d/out"), fernet_key="k", base=base)
    assert env["PATH"] == "/usr/bin"
    assert env["AIRFLOW_HOME"] == "/d/home"
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in env  # never the user's real deployment
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(demo.DAGS)
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW_VAR_GHL_EXPORT_ROOT"] == "file:///d/out"
    assert "AIRFLOW_VAR_GHL_LOCATION_IDS" not in env  # the DAGs discover the agency's locations
    conn = json.loads(env["AIRFLOW_CONN_GHL_DEFAULT"])
    assert conn["host"].startswith("http://127.0.0.1:")
    assert conn["extra"]["location_id"] == sandbox.location_ids[0]


class _MemoryStore:
    """The OAuth token set in memory: the demo keeps it in a Variable, which needs a task context or a DB."""

    def __init__(self) -> None:
        self.name = f"memory-{uuid.uuid4().hex}"  # the hook shares token state per store name
        self.tokens: TokenSet | None = None

    def load(self) -> TokenSet | None:
        return self.tokens

    def save(self, tokens: TokenSet) -> None:
        self.tokens = tokens


def test_one_agency_connection_reaches_every_location(
    demo: ModuleType, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = demo.agency_connection(clean_sandbox)
    # The agency app (Company) with its own refresh token, its default location the first.
    assert conn["login"] == clean_sandbox.info["oauth"]["client_id"]
    assert conn["password"] == clean_sandbox.info["oauth"]["client_secret"]
    assert conn["extra"] == {
        "auth_type": "oauth",
        "user_type": "Company",
        "company_id": clean_sandbox.info["company_id"],
        "location_id": clean_sandbox.location_ids[0],
        "refresh_token": clean_sandbox.info["oauth"]["company_refresh_token"],
        "app_id": clean_sandbox.info["oauth"]["app_id"],
    }
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", json.dumps(conn))
    store = _MemoryStore()
    for location in clean_sandbox.location_ids:
        hook = GHLHook(location_id=location, token_store=store)
        contact = next(hook.iter_contact_pages(page_limit=1)).contacts[0]
        assert contact["locationId"] == location
        # Contact-scoped calls name no location: the hook's location decides which token they carry.
        assert isinstance(hook.get_notes(contact["id"]), list)
        hook.close()
    assert clean_sandbox.stats()["tokens_refreshed"] == 1  # one agency token set, a location token each


@pytest.mark.parametrize(
    ("dag_id", "task_id", "run"),
    [
        ("ghl_full_export", "full_export", {"ds": date(2026, 11, 22)}),
        (
            "ghl_incremental_enrichment",
            "enrich",
            {
                "data_interval_start": datetime(2026, 11, 23, 19, tzinfo=UTC),
                "data_interval_end": datetime(2026, 11, 23, 20, tzinfo=UTC),
            },
        ),
    ],
)
def test_the_demo_reads_where_the_dags_write(
    demo: ModuleType, dag_id: str, task_id: str, run: dict[str, date], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's directories are the DAGs' rendered ``output_path``: both come from the layout module."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(demo.DAGS / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    root = Path("/d/out")
    monkeypatch.setenv("AIRFLOW_VAR_GHL_EXPORT_ROOT", root.as_uri())  # as the demo's airflow_env sets it
    start = run.get("data_interval_start", datetime(2026, 11, 15, tzinfo=UTC))
    end = run.get("data_interval_end", datetime(2026, 11, 22, tzinfo=UTC))
    logical_date = end if "ds" not in run else datetime.combine(run["ds"], time(), UTC)
    locations = [{"location_id": f"loc-{i}", "ghl_conn_id": "ghl_default"} for i in range(2)]

    for i, location in enumerate(locations):
        task = render(
            bag.dags[dag_id].get_task(task_id),
            logical_date=logical_date,
            data_interval=(start, end),
            locations=locations,
            map_index=i,
        )
        assert task.location_id == location["location_id"]
        assert task.output_path == demo.output_dir(dag_id, location["location_id"], root, **run).as_uri()
    assert demo.output_dir("ghl_full_export", "loc-0", root, ds=date(2026, 11, 22)) == Path(
        "/d/out/loc-0/contacts/full/2026-11-22"
    )


def test_summary_rows_come_from_the_manifests(demo: ModuleType) -> None:
    manifest = {
        "datasets": {
            "contacts": {"files": ["contacts-00001.jsonl"], "records": 62},
            "tasks": {"files": ["tasks-00001.jsonl"], "records": 82},
            "notes": {"files": [], "records": 0},
        },
        "requests": 126,
        "responses_429": 1,
        "duration_seconds": 11.3,
    }
    row = demo.manifest_row(manifest)
    assert row == {
        "files": 2,
        "contacts": 62,
        "tasks": 82,
        "notes": 0,
        "appointments": None,
        "requests": 126,
        "429s": 1,
        "seconds": 11.3,
    }
    table = demo.format_table([["run", "loc", row["files"], 62, 82, 0, None, 126, 1, 11.3, ".demo/output/loc/"]])
    header, rule, line = table.splitlines()
    assert header.split()[:3] == ["DAG", "run", "location"] and set(rule) == {"-"}
    assert line.split() == ["run", "loc", "2", "62", "82", "0", "-", "126", "1", "11.3", ".demo/output/loc/"]


def test_a_failed_task_is_shown_by_its_traceback(demo: ModuleType) -> None:
    log = "\n".join(
        [
            "start",
            "[error    ] Task failed with exception [task]",
            "Traceback (most recent call last):",
            "GHLAuthError: POST /oauth/token failed with HTTP 401",
            "[info     ] Task instance state updated new_state=up_for_retry",
            *["[warning  ] No tasks to run."] * 100,
        ]
    )
    excerpt = demo.failure_excerpt(log)
    assert excerpt.startswith("[error    ] Task failed") and excerpt.endswith("new_state=up_for_retry")
    assert demo.failure_excerpt("a\nb\nc", lines=2) == "b\nc"


# -- the write-back and webhook runs (scripts/demo_changes.py) --------------------------------------------------
def test_the_demo_reads_where_the_write_back_dag_reads_and_writes(
    demo: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from ghl_layout import WRITEBACK_INBOX, WRITEBACK_PLAN

    bag = DagBag(dag_folder=str(demo.DAGS / "ghl_write_back.py"))
    assert not bag.import_errors, bag.import_errors
    root, day = Path("/d/out"), date(2026, 12, 2)
    monkeypatch.setenv("AIRFLOW_VAR_GHL_EXPORT_ROOT", root.as_uri())
    locations = [{"location_id": f"loc-{i}", "ghl_conn_id": "ghl_default"} for i in range(2)]
    midnight = datetime.combine(day, time(), UTC)
    for i, location in enumerate(loc["location_id"] for loc in locations):
        plan, apply = (
            render(
                bag.dags["ghl_write_back"].get_task(f"write_back_location.{step}"),
                logical_date=midnight,
                data_interval=(midnight, midnight),
                locations=locations,
                map_index=i,
            )
            for step in ("plan", "apply")
        )
        csv_path = WRITEBACK_INBOX.path(root, location) / demo.demo_changes.WRITEBACK_INPUT
        assert plan.input_path == apply.input_path == csv_path.as_uri()
        assert plan.results_path == WRITEBACK_PLAN.path(root, location, ds=day).as_uri()
        assert apply.results_path == demo.output_dir("ghl_write_back", location, root, ds=day).as_uri()


def _write_back_module(demo: ModuleType) -> ModuleType:
    spec = importlib.util.spec_from_file_location("ghl_demo_write_back_dag", demo.DAGS / "ghl_write_back.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_demo_csv_plans_and_applies_as_the_demo_expects(
    demo: ModuleType, clean_sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's CSV, through the DAG's own operator settings against the sandbox: its one bad row is within
    the DAG's tolerance, the plan predicts the apply, and the demo reads the counts and dead letters back."""
    import gzip

    from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator

    from ghl_layout import WRITEBACK_INBOX, WRITEBACK_PLAN, WRITEBACK_RESULTS

    changes = demo.demo_changes
    dag = _write_back_module(demo)
    assert dag.INPUT_FILE == changes.WRITEBACK_INPUT
    location = clean_sandbox.location_ids[0]
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEMO", json.dumps(clean_sandbox.airflow_connection(0)))
    # A full export's directory, as the demo finds it: gzipped JSON Lines named by the manifest.
    export = tmp_path / "export"
    export.mkdir()
    hook = GHLHook("ghl_demo")
    contacts = list(hook.iter_contacts(page_limit=100))
    hook.close()
    with gzip.open(export / "contacts-00001.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps(c) + "\n" for c in contacts)
    manifest = {"datasets": {"contacts": {"files": ["contacts-00001.jsonl.gz"], "records": len(contacts)}}}
    (export / "_manifest.json").write_text(json.dumps(manifest))
    root, day = tmp_path / "out", date(2026, 12, 2)

    expected, written_back = changes.write_writeback_inputs({location: export}, root)
    assert len(written_back[location]) == changes.WRITEBACK_EXISTING and expected[location]["reject"] == 1
    assert expected[location]["reject"] / expected[location]["rows"] <= dag.MAX_FAILED_RATIO
    clean_sandbox.clear_stats()
    for dry_run, layout in ((True, WRITEBACK_PLAN), (False, WRITEBACK_RESULTS)):
        GHLWriteBackContactsOperator(
            task_id="plan" if dry_run else "apply",
            ghl_conn_id="ghl_demo",
            location_id=location,
            input_path=(WRITEBACK_INBOX.path(root, location) / changes.WRITEBACK_INPUT).as_uri(),
            results_path=layout.path(root, location, ds=day).as_uri(),
            max_failed_ratio=dag.MAX_FAILED_RATIO,
            dry_run=dry_run,
        ).execute(context={})
    results = WRITEBACK_RESULTS.path(root, location, ds=day)

    failed = changes.check_write_back({location: results}, root, expected, ds=day)
    [(row, why, text)] = failed[location]
    assert (row, text) == (changes.WRITEBACK_ROWS, f",{changes.BAD_EMAIL},Bad,Row,") and "email" in why
    writes = clean_sandbox.stats()["writes"]
    assert (
        writes == 2 * changes.WRITEBACK_CHANGED + changes.WRITEBACK_NEW
    )  # a PUT and a tag write per change, a create per new
    plan_row, apply_row = changes.run_rows("write-back", changes.WRITE_BACK_DAG, {location: results}, root, str, ds=day)
    assert plan_row[:3] == ["write-back", location, "plan"] and apply_row[:3] == ["", location, "apply"]
    assert plan_row[3:10] == apply_row[3:10] == [50, changes.WRITEBACK_NEW, changes.WRITEBACK_CHANGED, 37, 1, 0, writes]
    with pytest.raises(changes.StepFailed, match="expected"):
        changes.check_write_back({location: results}, root, {location: {**expected[location], "create": 0}}, ds=day)


def test_the_demo_receiver_stores_what_the_sandbox_delivers_in_its_airflow_home(
    demo: ModuleType, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_ghl.webhooks.apply import drain
    from airflow_provider_ghl.webhooks.inbox import open_inbox

    from ghl_layout import WEBHOOK_BATCHES

    changes = demo.demo_changes
    location = clean_sandbox.location_ids[0]
    owner = clean_sandbox.contact_ids(location)[0]
    home = tmp_path / "home"
    home.mkdir()
    settings = demo.airflow_settings(home=home, fernet_key=demo.new_fernet_key())
    env = changes.receiver_env(
        {**demo.clean_environ(), **settings}, clean_sandbox.webhook_public_key, clean_sandbox.location_ids
    )
    receiver = changes.WebhookReceiver(env, tmp_path / "receiver.log", demo.ROOT).launch()
    try:
        url = receiver.wait_ready()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/ghl/webhooks")
        clean_sandbox.set_webhooks([url])
        before = clean_sandbox.webhook_stats()["events"]
        made = changes.extra_changes(clean_sandbox, location, [owner])
        delivered = changes.deliver(clean_sandbox, receiver, before)
    finally:
        receiver.stop()
        clean_sandbox.set_webhooks([])
    assert receiver.process is not None and receiver.process.poll() is not None  # stopped
    assert [e["type"] for e in delivered] == ["ContactDelete", "NoteCreate", "TaskCreate", "TaskComplete"]
    assert made[0]["id"] != owner and {m.get("contactId") for m in made[1:]} == {owner}

    # The inbox is the default one of the demo's home: the one ghl_webhook_sync drains there.
    assert receiver.inbox == f"sqlite:///{home / 'ghl_webhooks.db'}"
    inbox = open_inbox(receiver.inbox)
    try:
        assert inbox.pending() == {location: 4}
        root = tmp_path / "out"
        drain(inbox, location, ObjectStoragePath(WEBHOOK_BATCHES.path(root, location).as_uri()))
    finally:
        inbox.close()
    batch = changes.latest_batch(root, location)
    assert batch is not None and batch.name == "000000000001-000000000004"
    [row] = changes.run_rows("webhook sync", changes.WEBHOOK_SYNC_DAG, {location: batch}, root, str)
    # events, contacts, tombstones, notes, tasks (made, then completed: one record), stale/dup, requests
    assert row[:3] == ["webhook sync", location, batch.name] and row[3:10] == [4, 0, 1, 1, 1, 0, 0]
    assert changes.latest_batch(root, "another-location") is None


def test_a_receiver_that_cannot_start_fails_the_demo_with_its_output(demo: ModuleType, tmp_path: Path) -> None:
    changes = demo.demo_changes
    settings = demo.airflow_settings(home=tmp_path, fernet_key=demo.new_fernet_key())
    env = changes.receiver_env({**demo.clean_environ(), **settings}, "not-a-key", ["loc1"])
    receiver = changes.WebhookReceiver(env, tmp_path / "receiver.log", demo.ROOT).launch()
    try:
        with pytest.raises(changes.StepFailed, match=r"exited(.|\n)*public_key"):
            receiver.wait_ready(timeout=60)
    finally:
        receiver.stop()
