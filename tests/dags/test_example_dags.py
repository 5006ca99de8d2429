"""The example DAGs in ``dags/``: they parse without network or Variables, and run end to end in Airflow."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest

from airflow_provider_ghl.exceptions import GHLConfigError
from ghl_sandbox.testing import SandboxServer
from tests.dag_run import announced_outputs, exported_records
from tests.dag_run import dags_test as _dags_test

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_IDS = {
    "ghl_full_export",
    "ghl_health",
    "ghl_incremental_enrichment",
    "ghl_enrichment_on_change",
    "ghl_token_refresh",
    "ghl_write_back",
    "ghl_webhook_sync",
    "ghl_new_locations",
}


def test_dagbag_imports_without_network_or_variables(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import CronDataIntervalTimetable

    # The connection points at the sandbox: any request made while parsing would show in its stats.
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", json.dumps(sandbox.airflow_connection(0)))
    for var in ("AIRFLOW_VAR_GHL_EXPORT_ROOT", "AIRFLOW_VAR_GHL_LOCATION_IDS"):
        monkeypatch.delenv(var, raising=False)
    before = sandbox.stats()["requests_total"]

    bag = DagBag(dag_folder=str(DAGS))

    assert not bag.import_errors, bag.import_errors
    assert set(bag.dag_ids) == DAG_IDS
    for dag_id in DAG_IDS:
        dag = bag.dags[dag_id]
        assert dag.tags, dag_id
        assert dag.doc_md and "ghl" in dag.doc_md.lower(), dag_id
        assert dag.catchup is False, dag_id
    for dag_id in ("ghl_incremental_enrichment", "ghl_enrichment_on_change", "ghl_health"):
        assert isinstance(bag.dags[dag_id].timetable, CronDataIntervalTimetable), dag_id
    assert bag.dags["ghl_token_refresh"].max_active_runs == 1
    assert sandbox.stats()["requests_total"] == before  # no GHL request while parsing


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", DAGS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name", ["ghl_full_export", "ghl_incremental_enrichment", "ghl_enrichment_on_change", "ghl_webhook_sync"]
)
def test_location_list_comes_from_the_variable_else_the_connection(
    name: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ghl_locations

    dag_task = _load(name).locations
    assert dag_task is ghl_locations.locations  # the DAGs folder's helper, not a copy of it in the DAG file
    locations = dag_task.function
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", json.dumps(sandbox.airflow_connection(1)))
    monkeypatch.delenv("AIRFLOW_VAR_GHL_LOCATION_IDS", raising=False)
    assert locations() == [{"location_id": sandbox.location_ids[1], "ghl_conn_id": "ghl_default"}]

    monkeypatch.setenv("AIRFLOW_VAR_GHL_LOCATION_IDS", json.dumps(["loc-one", "loc-two", "loc-one"]))
    assert locations() == [
        {"location_id": "loc-one", "ghl_conn_id": "ghl_default"},
        {"location_id": "loc-two", "ghl_conn_id": "ghl_default"},
    ]
    monkeypatch.setenv("AIRFLOW_VAR_GHL_LOCATION_IDS", json.dumps({"loc-one": "ghl_one", "loc-two": "ghl_two"}))
    assert locations() == [
        {"location_id": "loc-one", "ghl_conn_id": "ghl_one"},
        {"location_id": "loc-two", "ghl_conn_id": "ghl_two"},
    ]

    for bad in ({"loc-one": 1}, [], ["ok", ""], 7):
        monkeypatch.setenv("AIRFLOW_VAR_GHL_LOCATION_IDS", json.dumps(bad))
        with pytest.raises(GHLConfigError, match="ghl_location_ids"):
            locations()


def test_an_agency_install_discovers_its_locations_and_narrows_them(
    sandbox: SandboxServer, airflow_db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No ``ghl_location_ids`` and an agency connection: the locations where GHL says the app is installed, then
    only the included ones and none of the excluded ones (a DAG param wins over the Variable)."""
    import ghl_locations

    sandbox.reset()
    locations = ghl_locations.locations.function
    conn = sandbox.airflow_connection(0, agency=True, token_variable=f"ghl_oauth_discovery_{tmp_path.name}")
    del conn["extra"]["location_id"]
    monkeypatch.setenv("AIRFLOW_CONN_GHL_DEFAULT", json.dumps(conn))
    for name in ("GHL_LOCATION_IDS", "GHL_LOCATIONS_INCLUDE", "GHL_LOCATIONS_EXCLUDE"):
        monkeypatch.delenv(f"AIRFLOW_VAR_{name}", raising=False)
    first, second = sandbox.location_ids

    assert sorted(p["location_id"] for p in locations()) == sorted([first, second])
    sandbox.uninstall(second)
    assert locations() == [{"location_id": first, "ghl_conn_id": "ghl_default"}]  # gone from the next run
    sandbox.install(second)

    monkeypatch.setenv("AIRFLOW_VAR_GHL_LOCATIONS_EXCLUDE", json.dumps([first]))
    assert locations() == [{"location_id": second, "ghl_conn_id": "ghl_default"}]
    monkeypatch.setenv("AIRFLOW_VAR_GHL_LOCATIONS_INCLUDE", json.dumps([first, "elsewhere"]))
    assert locations() == []  # included and excluded: excluded
    assert locations(params={"ghl_locations_exclude": [second]}) == [
        {"location_id": first, "ghl_conn_id": "ghl_default"}
    ]
    monkeypatch.setenv("AIRFLOW_VAR_GHL_LOCATIONS_INCLUDE", json.dumps({"not": "a list"}))
    with pytest.raises(GHLConfigError, match="ghl_locations_include"):
        locations()
    # The Variable, when set, still decides; discovery is only for an agency install without it.
    monkeypatch.setenv("AIRFLOW_VAR_GHL_LOCATIONS_INCLUDE", "[]")
    monkeypatch.setenv("AIRFLOW_VAR_GHL_LOCATION_IDS", json.dumps([second]))
    assert locations() == [{"location_id": second, "ghl_conn_id": "ghl_default"}]


def test_full_export_dag_runs_each_location_on_its_own_connection(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    """Two locations, each with its own Private Integration Token connection, named by the Variable."""
    sandbox.reset()
    day = datetime(2026, 11, 22, tzinfo=UTC)
    per_location = {loc: f"ghl_loc{i}" for i, loc in enumerate(sandbox.location_ids)}
    conns = {f"AIRFLOW_CONN_GHL_LOC{i}": json.dumps(sandbox.airflow_connection(i)) for i in range(2)}

    _dags_test(
        sandbox, tmp_path, "ghl_full_export", day, AIRFLOW_VAR_GHL_LOCATION_IDS=json.dumps(per_location), **conns
    )

    for location in sandbox.location_ids:
        full = tmp_path / location / "contacts" / "full" / "2026-11-22"
        ids = [record["id"] for record in exported_records(full)]
        assert sorted(ids) == sorted(sandbox.contact_ids(location))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(sandbox.location_ids)
    # Each mapped export announced its output: an event of its location's asset, through the operator's alias.
    announced = announced_outputs(airflow_db)
    for location in sandbox.location_ids:
        output = f"file://{tmp_path / location / 'contacts' / 'full' / '2026-11-22'}"
        assert announced[output] == f"ghl/{location}/ghl_full_export.full_export"


def test_a_location_without_the_app_is_skipped_with_a_warning_and_the_others_export(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    """Location 1 is deactivated (its own install's refresh answers "Location is not active"), then it
    uninstalls the app (the agency cannot mint its token): each time its task skips with one warning and
    location 0 exports."""
    sandbox.reset()
    first, second = sandbox.location_ids
    agency = sandbox.airflow_connection(0, agency=True, token_variable=f"ghl_oauth_skip_{tmp_path.name}")
    own = sandbox.airflow_connection(1, oauth=True, token_variable=f"ghl_oauth_skip1_{tmp_path.name}")
    sandbox.set_active(second, False)
    day = datetime(2026, 11, 23, tzinfo=UTC)
    output = _dags_test(
        sandbox, tmp_path, "ghl_full_export", day, conn=agency,
        AIRFLOW_VAR_GHL_LOCATION_IDS=json.dumps({first: "ghl_default", second: "ghl_own"}),
        AIRFLOW_CONN_GHL_OWN=json.dumps(own),
    )  # fmt: skip
    assert "Location is not active" in output, output[-3000:]
    assert output.count(f"Skipping location {second}") == 1, output[-3000:]

    sandbox.set_active(second, True)
    sandbox.uninstall(second)
    later = day + timedelta(days=1)
    output = _dags_test(
        sandbox, tmp_path, "ghl_full_export", later, conn=agency,
        AIRFLOW_VAR_GHL_LOCATION_IDS=json.dumps([first, second]),
    )  # fmt: skip
    assert output.count(f"Skipping location {second}") == 1, output[-3000:]

    for ds in ("2026-11-23", "2026-11-24"):
        assert (tmp_path / first / "contacts" / "full" / ds / "_manifest.json").exists()
    assert not (tmp_path / second).exists()
    with sqlite3.connect(airflow_db) as con:
        states = con.execute(
            "select ti.state, ti.map_index from task_instance ti join dag_run r"
            " on r.dag_id = ti.dag_id and r.run_id = ti.run_id"
            " where ti.dag_id = 'ghl_full_export' and ti.task_id = 'full_export'"
            " and r.logical_date >= ? and r.logical_date < ?",  # these two runs, not another test's
            (day.strftime("%Y-%m-%d"), (later + timedelta(days=1)).strftime("%Y-%m-%d")),
        ).fetchall()
    assert sorted(states) == [
        ("skipped", 1), ("skipped", 1), ("success", 0), ("success", 0)
    ]  # fmt: skip


def test_incremental_enrichment_dag_runs(sandbox: SandboxServer, airflow_db: Path, tmp_path: Path) -> None:
    sandbox.reset()
    location = sandbox.location_ids[0]
    touched = sandbox.touch_contacts(location, count=5)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    # A manual run's logical date is the END of its hourly interval: [hour, hour + 1h) holds the touches.
    end = hour + timedelta(hours=1)

    _dags_test(sandbox, tmp_path, "ghl_incremental_enrichment", end)

    out = tmp_path / location / "enrichment" / f"{hour:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert set(manifest["include"]) == {"tasks", "notes", "appointments"}
    # The 5-minute lookback widens the window backwards.
    assert manifest["window"]["updated_since"].startswith(f"{hour - timedelta(minutes=5):%Y-%m-%dT%H:%M:00}")
    contacts = [
        json.loads(line)["id"]
        for f in manifest["datasets"]["contacts"]["files"]
        for line in (out / f).read_text().splitlines()
    ]
    assert set(touched) <= set(contacts)
    # The mapped task announced its output.
    assert announced_outputs(airflow_db)[f"file://{out}"] == f"ghl/{location}/ghl_incremental_enrichment.enrich"


def test_incremental_enrichment_maps_only_over_the_locations_that_changed(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    """Location 0 changed in the hour, location 1 did not: one probe request each in ``changed_locations``, then
    one mapped enrichment, of location 0 only."""
    sandbox.reset()
    first, second = sandbox.location_ids
    touched = sandbox.touch_contacts(first, count=3)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    end = hour + timedelta(hours=1)
    conns = {f"AIRFLOW_CONN_GHL_LOC{i}": json.dumps(sandbox.airflow_connection(i)) for i in range(2)}
    sandbox.clear_stats()

    output = _dags_test(
        sandbox, tmp_path, "ghl_incremental_enrichment", end,
        AIRFLOW_VAR_GHL_LOCATION_IDS=json.dumps({first: "ghl_loc0", second: "ghl_loc1"}), **conns,
    )  # fmt: skip

    assert "1 of 2 locations changed" in output, output[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == [first]
    out = tmp_path / first / "enrichment" / f"{hour:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
    manifest = json.loads((out / "_manifest.json").read_text())
    assert set(touched) <= {json.loads(line)["id"] for line in (out / "contacts-00001.jsonl").read_text().splitlines()}
    # Requests: the two probes, then location 0's enrichment alone (its own count is in its manifest).
    assert sandbox.stats()["requests_total"] == 2 + manifest["requests"]
    with sqlite3.connect(airflow_db) as con:
        mapped = con.execute(
            "select count(*) from task_instance ti join dag_run r on r.dag_id = ti.dag_id and r.run_id = ti.run_id"
            " where ti.dag_id = 'ghl_incremental_enrichment' and ti.task_id = 'enrich' and r.data_interval_end = ?",
            (end.strftime("%Y-%m-%d %H:%M:%S.%f"),),
        ).fetchone()
    assert mapped == (1,)


def test_a_location_that_installs_the_app_gets_its_first_full_export_within_the_hour(
    airflow_db: Path, tmp_path: Path
) -> None:
    """``ghl_new_locations`` over an agency install: the first run exports the installed location, the app's
    install in the other makes the next run export that one alone, and a third run exports nothing."""
    with SandboxServer(contacts=30, locations=2, seed=31) as agency:
        first, second = agency.location_ids
        agency.uninstall(second)
        conn = agency.airflow_connection(0, agency=True, token_variable=f"ghl_oauth_new_{tmp_path.name}")
        del conn["extra"]["location_id"]

        def run(hour: int) -> list[str]:
            when = datetime(2026, 12, 2, hour, tzinfo=UTC)
            # No ghl_location_ids: the agency's locations are discovered.
            _dags_test(agency, tmp_path, "ghl_new_locations", when, conn=conn, AIRFLOW_VAR_GHL_LOCATION_IDS=None)
            return sorted(p.parents[3].name for p in tmp_path.glob("*/contacts/first/*/_manifest.json"))

        assert run(1) == [first]
        agency.install(second)  # no configuration changes: discovery finds it, and it has no full export yet
        assert run(2) == [first, second]
        assert len(exported_records(tmp_path / second / "contacts" / "first" / "2026-12-02")) == 30
        agency.clear_stats()
        assert run(3) == [first, second]
        # The third run looked, found both exported, and exported nothing: discovery and its token alone.
        assert "POST /contacts/search" not in agency.stats()["requests_by_route"]


def test_token_refresh_dag_runs(sandbox: SandboxServer, airflow_db: Path, tmp_path: Path) -> None:
    sandbox.reset()
    variable = f"ghl_oauth_dags_{tmp_path.name}"
    conn = sandbox.airflow_connection(0, oauth=True, token_variable=variable)

    _dags_test(sandbox, tmp_path, "ghl_token_refresh", datetime.now(UTC).replace(microsecond=0), conn=conn)

    assert sandbox.stats()["tokens_refreshed"] >= 1
    assert sandbox.stats()["refresh_tokens_reused"] == 0
    with sqlite3.connect(airflow_db) as con:
        assert con.execute("select count(*) from variable where key = ?", (variable,)).fetchone() == (1,)


def test_write_back_dag_plans_then_applies_the_csv(sandbox: SandboxServer, airflow_db: Path, tmp_path: Path) -> None:
    sandbox.reset()
    location = sandbox.location_ids[0]
    existing = sorted(sandbox.contact_ids(location))[0]
    inbox = tmp_path / location / "writeback" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "contacts.csv").write_text(
        "id,email,firstName,tags,customFields.contact.referral_code\n"
        f"{existing},,Renamed,synced|vip,REF-77\n"
        ",new.person@sync.example.com,New,sync-new,REF-78\n"
    )
    day = datetime(2026, 12, 1, tzinfo=UTC)
    sandbox.clear_stats()

    _dags_test(sandbox, tmp_path, "ghl_write_back", day)

    plan = json.loads((tmp_path / location / "writeback" / "plan" / "2026-12-01" / "_manifest.json").read_text())
    results = json.loads((tmp_path / location / "writeback" / "results" / "2026-12-01" / "_manifest.json").read_text())
    assert plan["dry_run"] is True and results["dry_run"] is False
    assert plan["counts"] == results["counts"]
    assert (results["counts"]["create"], results["counts"]["update"]) == (1, 1)
    assert sandbox.stats()["writes"] == results["counts"]["writes"]  # the plan wrote nothing


def test_webhook_sync_dag_applies_what_waits_in_the_inbox(
    sandbox: SandboxServer, airflow_db: Path, tmp_path: Path
) -> None:
    from airflow_provider_ghl.webhooks.inbox import open_inbox
    from tests.webhooks.events import contact, event, read_dataset, store

    sandbox.reset()
    location = sandbox.location_ids[0]
    owner = sandbox.contact_ids(location)[0]
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    inbox = open_inbox(url)
    store(
        inbox,
        event("ContactCreate", 1, location, **contact("wh-c1")),
        event("ContactUpdate", 3, location, **contact("wh-c1", firstName="Grace")),
        event("ContactDelete", 2, location, id="wh-c2"),
        # The tags alone: the task asks the sandbox for the rest of the contact, through the DAG's connection.
        event("ContactTagUpdate", 4, location, id=owner, tags=["webhook"]),
        event("NoteCreate", 5, location, id="wh-n1", contactId=owner, body="from a webhook"),
    )
    store(inbox, event("ContactCreate", 1, "not-configured", **contact("x")))
    sandbox.clear_stats()

    _dags_test(sandbox, tmp_path, "ghl_webhook_sync", datetime.now(UTC), AIRFLOW__GHL_WEBHOOKS__INBOX=url)

    folder = tmp_path / location / "webhooks"
    [batch] = [p for p in folder.iterdir()]
    assert batch.name == "000000000001-000000000005"
    contacts = {c["id"]: c for c in read_dataset(batch, "contacts")}
    assert contacts["wh-c1"]["firstName"] == "Grace"
    assert contacts[owner]["_event_type"] == "ContactTagUpdate" and contacts[owner]["email"]
    assert [t["id"] for t in read_dataset(batch, "tombstones")] == ["wh-c2"]
    assert [n["id"] for n in read_dataset(batch, "notes")] == ["wh-n1"]
    assert sandbox.stats()["requests_by_route"] == {"GET /contacts/{contactId}": 1}
    assert inbox.pending() == {"not-configured": 1}  # applied once; the other location is not the DAG's
    inbox.close()
    assert announced_outputs(airflow_db)[f"file://{folder}"] == f"ghl/{location}/ghl_webhook_sync.apply"
