"""GHLApplyWebhookEventsOperator: bad arguments fail before anything is read or written; a run drains the inbox."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning

from airflow_provider_ghl.exceptions import GHLInputError
from airflow_provider_ghl.operators.webhooks import WEBHOOKS_ASSET_ALIAS, GHLApplyWebhookEventsOperator
from airflow_provider_ghl.webhooks.inbox import open_inbox
from ghl_sandbox.testing import SandboxServer
from tests.webhooks.events import BASE, contact, event, read_dataset, store


@pytest.fixture
def conn(clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    connection = clean_sandbox.airflow_connection(0, budget_backend="process")
    monkeypatch.setenv("AIRFLOW_CONN_GHL_APPLY", json.dumps(connection))
    return "ghl_apply"


def context(values: dict[str, Any]) -> Any:
    """What ``execute`` reads of a task's context (no task instance: the operator links no contact)."""
    return {"ti": None, **values}


BAD: list[tuple[dict[str, Any], str]] = [
    ({"file_format": "xml"}, "file_format"),
    ({"compression": "zstd"}, "compression"),
    ({"max_events": 0}, "max_events"),
    ({"max_events": 10_001}, "max_events"),
    ({"inbox": "postgres://db/inbox"}, "inbox"),
    ({"inbox": "redis://user:secret@host:6379"}, "inbox"),
    ({"inbox": "sqlite://relative.db"}, "inbox"),
    ({"output_path": None}, "output_path"),
    ({"output_root": "file:///tmp/also"}, "output_path"),
    ({"output_path": "relative/dir"}, "output_path"),
    ({"location_id": "has space"}, "location_id"),
]


@pytest.mark.parametrize(("arguments", "field"), BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD)])
def test_bad_arguments_fail_naming_the_field_before_anything_is_touched(
    arguments: dict[str, Any], field: str, conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    db = tmp_path / "inbox.db"
    kwargs = {"inbox": f"sqlite:///{db}", "output_path": f"file://{tmp_path}/out", **arguments}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AirflowProviderDeprecationWarning)  # output_root
        operator = GHLApplyWebhookEventsOperator(task_id="apply", ghl_conn_id=conn, **kwargs)
    with pytest.raises(GHLInputError) as failure:
        operator.execute(context({}))
    assert failure.value.field == field, failure.value
    assert not db.exists() and not (tmp_path / "out").exists()
    assert clean_sandbox.stats()["requests_total"] == 0


class Outlets(dict[Any, Any]):
    """``context["outlet_events"]``: records what the task attaches to each alias."""

    def __missing__(self, key: Any) -> Any:
        added: list[tuple[Any, dict[str, Any]]] = []

        class Accessor:
            def add(self, asset: Any, extra: dict[str, Any]) -> None:
                added.append((asset, extra))

        self[key] = (accessor := Accessor())
        accessor.added = added  # type: ignore[attr-defined]
        return accessor


def test_a_run_drains_every_batch_and_reports_small_json(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    location = clean_sandbox.location_ids[0]
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    inbox = open_inbox(url)
    store(inbox, *(event("ContactCreate", i, location, **contact(f"c{i}")) for i in range(5)))
    store(inbox, event("ContactDelete", 9, location, id="c0"), event("ContactUpdate", 0.5, location, **contact("c1")))
    store(inbox, event("ContactCreate", 1, "another-location", **contact("x")))
    outlets = Outlets()
    folder = tmp_path / "out" / location / "webhooks"
    operator = GHLApplyWebhookEventsOperator(
        task_id="apply", ghl_conn_id=conn, inbox=url, output_path=f"file://{folder}", max_events=3
    )
    clean_sandbox.clear_stats()

    summary = operator.execute(context({"outlet_events": outlets, "ti": SimpleNamespace(dag_id="d", task_id="apply")}))

    assert summary == {
        "location_id": location,
        "folder": f"file://{folder}",
        "batches": 3,
        "already_written": 0,
        "first_seq": 1,
        "last_seq": 7,
        "events": 7,
        "stale": 1,
        "duplicates": 0,
        "ignored": 0,
        "records": {"contacts": 5, "tombstones": 1, "tasks": 0, "notes": 0, "appointments": 0},
        "requests": 0,
        "paths": [f"file://{folder}/{b}" for b in ("000000000001-000000000003", "000000000004-000000000006")]
        + [f"file://{folder}/000000000007-000000000007"],
    }
    assert json.loads(json.dumps(summary)) == summary
    # Batch by batch: c0..c4 (c0 in the first batch), c0's tombstone in the second, and c1's update (stamped
    # 0.5 s) is older than its create (1 s), which an earlier batch applied: stale.
    last = json.loads((folder / "000000000007-000000000007" / "_manifest.json").read_text())
    assert last["stale"] == 1 and last["datasets"]["contacts"]["records"] == 0
    assert [t["id"] for t in read_dataset(folder / "000000000004-000000000006", "tombstones")] == ["c0"]
    assert inbox.pending() == {"another-location": 1}  # only the task's location is applied
    [(asset, extra)] = outlets[next(iter(outlets))].added
    assert next(iter(outlets)).name == WEBHOOKS_ASSET_ALIAS
    assert asset.name == f"ghl/{location}/d.apply"  # one asset per location and task
    assert extra["output_path"] == f"file://{folder}" and extra["batches"] == 3 and extra["location_id"] == location
    assert clean_sandbox.stats()["requests_total"] == 0

    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        (f"highlevel://{location}", kind) for kind in ("contacts", "notes", "tasks", "appointments")
    ]
    assert [d.name for d in lineage.outputs] == [str(folder / p.split("/")[-1]) for p in summary["paths"]]

    # Nothing new: nothing written, no asset event.
    again = Outlets()
    assert operator.execute(context({"outlet_events": again}))["batches"] == 0
    assert not again
    inbox.close()


def test_output_root_still_works_for_one_release_with_a_warning(
    conn: str, clean_sandbox: SandboxServer, tmp_path: Path
) -> None:
    location = clean_sandbox.location_ids[0]
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    inbox = open_inbox(url)
    store(inbox, event("ContactCreate", 1, location, **contact("c1")))
    with pytest.warns(AirflowProviderDeprecationWarning, match="output_root"):
        operator = GHLApplyWebhookEventsOperator(
            task_id="apply", ghl_conn_id=conn, inbox=url, output_root=f"file://{tmp_path}/out"
        )
    summary = operator.execute(context({}))
    assert summary["folder"] == f"file://{tmp_path}/out/{location}/webhooks" and summary["batches"] == 1
    inbox.close()


def test_an_applied_uninstall_drops_the_locations_shared_token_and_its_own_installation(
    clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, airflow_db: Path
) -> None:
    """An agency install: the location's minted token is shared in the budget directory until its UNINSTALL
    event is applied, which drops it for every process, and deletes the token set of the location's own
    installation (made through the install flow) unless a later INSTALL re-installed it."""
    location = clean_sandbox.location_ids[1]
    budgets = tmp_path / "budgets"
    agency = clean_sandbox.airflow_connection(
        0, agency=True, budget_dir=str(budgets), token_variable=f"ghl_oauth_uninstall_{tmp_path.name}"
    )
    monkeypatch.setenv("AIRFLOW_CONN_GHL_AGENCY", json.dumps(agency))
    from airflow_provider_ghl.hooks.ghl import GHLHook

    GHLHook("ghl_agency").search_contacts(page_limit=1, location_id=location)  # mints and shares its token
    [token_file] = [p for p in budgets.iterdir() if p.name.startswith("token-")]
    assert token_file.stat().st_size > 0
    url = f"sqlite:///{tmp_path / 'inbox.db'}"
    inbox = open_inbox(url)
    lifecycle = {"appId": "app", "companyId": clean_sandbox.info["company_id"]}
    operator = GHLApplyWebhookEventsOperator(
        task_id="apply", ghl_conn_id="ghl_agency", location_id=location, inbox=url,
        output_path=f"file://{tmp_path / 'out'}",
    )  # fmt: skip

    def apply(*types: str) -> dict[str, Any]:
        now = time.time() - BASE.timestamp()  # events stamped after the installation's set was obtained
        store(inbox, *({**event(t, now + 5 + n, location), **lifecycle} for n, t in enumerate(types)))
        return operator.execute(context({"outlet_events": Outlets(), "ti": SimpleNamespace(dag_id="d", task_id="a")}))

    def install() -> None:
        GHLHook("ghl_agency").install_from_code(clean_sandbox.authorize(location), "")
        assert GHLHook("ghl_agency").location_installations() == [location]

    install()
    summary = apply("UNINSTALL", "INSTALL")  # uninstalled, then installed again: the set is the new install's
    assert (summary["events"], summary["ignored"]) == (2, 2)
    assert token_file.stat().st_size > 0 and GHLHook("ghl_agency").location_installations() == [location]

    summary = apply("UNINSTALL")
    assert token_file.stat().st_size == 0
    assert GHLHook("ghl_agency").location_installations() == []
    inbox.close()
