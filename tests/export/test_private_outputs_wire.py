"""#21 item 5: PII on this machine is the Airflow user's alone. Outputs and the SQLite inbox are created without
group or other access; an output, input, plan or previous export in a directory another local user controls is
refused before anything is requested or written."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_ghl.exceptions import GHLInputError
from airflow_provider_ghl.operators.export import GHLExportContactsOperator
from airflow_provider_ghl.operators.writeback import GHLWriteBackContactsOperator
from airflow_provider_ghl.webhooks.inbox import open_inbox
from ghl_sandbox.testing import SandboxServer

#: nobody: "another local user".
OTHER_UID = 65534


@pytest.fixture
def conn_id(clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AIRFLOW_CONN_GHL_PRIVATE", json.dumps(clean_sandbox.airflow_connection(0)))
    return "ghl_private"


@pytest.fixture
def foreign(tmp_path: Path) -> Iterator[Path]:
    """A directory another local user made first (world-readable and -writable, as /tmp/ghl-exports was)."""
    if os.geteuid() != 0:
        pytest.skip("making a directory another user owns needs root (CI runs as root)")
    directory = tmp_path / "theirs"
    directory.mkdir()
    directory.chmod(0o777)
    os.chown(directory, OTHER_UID, OTHER_UID)
    yield directory


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The usual umask, which alone would leave files 0644 and directories 0755."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


def _export(conn_id: str, out: str, **kwargs: Any) -> dict[str, Any]:
    operator = GHLExportContactsOperator(task_id="export", ghl_conn_id=conn_id, output_path=out, **kwargs)
    result: dict[str, Any] = operator.execute(context={})
    return result


def test_outputs_are_created_for_the_airflow_user_alone(conn_id: str, tmp_path: Path, usual_umask: None) -> None:
    _export(conn_id, f"file://{tmp_path}/made/by/the/export", file_format="csv")
    modes = _modes(tmp_path / "made")
    assert {m for name, m in modes.items() if (tmp_path / "made" / name).is_dir()} == {0o700}
    files = {name: m for name, m in modes.items() if (tmp_path / "made" / name).is_file()}
    assert files and set(files.values()) == {0o600}, files
    assert any(name.endswith("_manifest.json") for name in files)


def test_the_sqlite_inbox_is_the_airflow_users_alone(tmp_path: Path, usual_umask: None) -> None:
    inbox = open_inbox(f"sqlite:///{tmp_path}/home/ghl_webhooks.db")
    inbox.store("loc", "wh-1", "ContactCreate", "2026-12-07T10:00:00Z", {"id": "c1", "email": "a@b.co"})
    inbox.close()
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    for name in ("ghl_webhooks.db", "ghl_webhooks.db-wal", "ghl_webhooks.db-shm"):
        if (tmp_path / "home" / name).exists():
            assert stat.S_IMODE((tmp_path / "home" / name).stat().st_mode) == 0o600, name


def test_an_output_in_another_users_directory_is_refused(
    conn_id: str, clean_sandbox: SandboxServer, foreign: Path
) -> None:
    before = sorted(foreign.rglob("*"))
    for out in (f"file://{foreign}", f"file://{foreign}/ghl-exports/loc/contacts/full/2026-12-07"):
        with pytest.raises(GHLInputError, match=f"belongs to uid {OTHER_UID}") as err:
            _export(conn_id, out)
        assert err.value.field == "output_path"
    assert sorted(foreign.rglob("*")) == before and clean_sandbox.stats()["requests_total"] == 0


def test_a_planted_input_plan_or_previous_export_is_refused(
    conn_id: str, clean_sandbox: SandboxServer, foreign: Path, tmp_path: Path
) -> None:
    """What someone else put in their directory is not read: a write-back input (it would write with our token),
    a plan, a previous export's manifest (fake tombstones)."""
    planted = foreign / "contacts.csv"
    planted.write_text("email,firstName\nvictim@example.com,Planted\n")
    with pytest.raises(GHLInputError, match="belongs to uid") as err:
        GHLWriteBackContactsOperator(
            task_id="w", ghl_conn_id=conn_id, input_path=f"file://{planted}", results_path=f"file://{tmp_path}/r"
        ).execute(context={})
    assert err.value.field == "input_path"

    mine = tmp_path / "in.csv"
    mine.write_text("email,firstName\nme@example.com,Me\n")
    (foreign / "_manifest.json").write_text(json.dumps({"dataset": "writeback", "dry_run": True}))
    with pytest.raises(GHLInputError, match="belongs to uid") as err:
        GHLWriteBackContactsOperator(
            task_id="w",
            ghl_conn_id=conn_id,
            input_path=f"file://{mine}",
            results_path=f"file://{tmp_path}/r",
            plan_path=f"file://{foreign}",
        ).execute(context={})
    assert err.value.field == "plan_path"

    location = clean_sandbox.location_ids[0]
    fake = {"dataset": "contacts", "location_id": location, "format": "jsonl", "datasets": {"contacts": {}}}
    (foreign / "_manifest.json").write_text(json.dumps(fake))
    with pytest.raises(GHLInputError, match="belongs to uid") as err:
        _export(conn_id, f"file://{tmp_path}/export", previous_output=f"file://{foreign}")
    assert err.value.field == "previous_output"
    assert clean_sandbox.stats()["requests_total"] == 0 and not (tmp_path / "r").exists()
