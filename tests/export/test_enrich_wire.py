"""GHLEnrichContactsOperator over the wire: the changed contacts and their children, at the request floor."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_provider_ghl.exceptions import GHLConfigError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.operators.enrich import GHLEnrichContactsOperator
from ghl_sandbox.testing import SandboxServer

KINDS = ("tasks", "notes", "appointments")


@pytest.fixture(scope="module")
def enrich_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(contacts=1_500, locations=1, seed=5, max_requests=100_000, interval_ms=1000) as server:
        yield server


@pytest.fixture
def conn_id(enrich_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> str:
    enrich_sandbox.reset()
    conn = enrich_sandbox.airflow_connection(0)
    monkeypatch.setenv("AIRFLOW_CONN_GHL_ENRICH", json.dumps(conn))
    return "ghl_enrich"


def _changed(sandbox: SandboxServer, count: int) -> tuple[datetime, datetime, list[str]]:
    since = datetime.now(UTC) - timedelta(seconds=1)
    ids = sandbox.touch_contacts(sandbox.location_ids[0], count=count)
    return since, datetime.now(UTC) + timedelta(seconds=5), ids


def _operator(conn_id: str, out: Path, **kwargs: Any) -> GHLEnrichContactsOperator:
    return GHLEnrichContactsOperator(
        task_id="enrich",
        ghl_conn_id=conn_id,
        output_path=f"file://{out}",
        hook_params={"retry_backoff": 0.01},
        **kwargs,
    )


def _read(out: Path) -> dict[str, list[dict[str, Any]]]:
    manifest = json.loads((out / "_manifest.json").read_text())
    data = {}
    for name, dataset in manifest["datasets"].items():
        data[name] = [json.loads(line) for f in dataset["files"] for line in (out / f).read_text().splitlines()]
    return data


def _children(sandbox: SandboxServer, ids: list[str]) -> dict[str, set[tuple[str, str]]]:
    """(contactId, child id) of every child of ``ids``, read straight from the sandbox."""
    expected: dict[str, set[tuple[str, str]]] = {k: set() for k in KINDS}
    keys = {"tasks": "tasks", "notes": "notes", "appointments": "events"}
    for cid in ids:
        for kind in KINDS:
            url = f"{sandbox.base_url}/contacts/{cid}/{kind}"
            items = requests.get(url, headers=sandbox.headers(0), timeout=10).json()[keys[kind]]
            expected[kind] |= {(cid, item["id"]) for item in items}
    return expected


@pytest.mark.parametrize("task_search", ["never", "auto"])
def test_changed_contacts_and_their_children_at_the_request_floor(
    conn_id: str, enrich_sandbox: SandboxServer, tmp_path: Path, task_search: str
) -> None:
    since, until, changed = _changed(enrich_sandbox, 120)
    expected = _children(enrich_sandbox, changed)
    enrich_sandbox.clear_stats()
    out = tmp_path / "enrich"
    result = _operator(
        conn_id, out, updated_since=since.isoformat(), updated_until=until.isoformat(), page_limit=50,
        task_search=task_search,
    ).execute(context={})  # fmt: skip
    data = _read(out)
    assert sorted(c["id"] for c in data["contacts"]) == sorted(changed)
    for kind in KINDS:
        got = [(r["contactId"], r["id"]) for r in data[kind]]
        assert len(got) == len(set(got)) and set(got) == expected[kind], kind
    assert result["contacts"] == 120 and result["tasks"] == len(expected["tasks"])
    stats = enrich_sandbox.stats()
    pages = math.ceil(120 / 50)  # 50 + 50 + 20: the short last page ends the walk
    floor = pages + 120 * len(KINDS)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["requests"] == stats["requests_total"]
    if task_search == "never":
        assert stats["requests_total"] == floor
    else:
        assert stats["requests_by_route"]["POST /locations/{locationId}/tasks/search"] >= pages
        assert "GET /contacts/{contactId}/tasks" not in stats["requests_by_route"]
        assert stats["requests_total"] < floor


def test_window_defaults_to_the_data_interval_and_lookback_widens_it(
    conn_id: str, enrich_sandbox: SandboxServer, tmp_path: Path
) -> None:
    _, until, changed = _changed(enrich_sandbox, 5)
    later = until + timedelta(hours=1)
    out = tmp_path / "interval"
    # The interval starts after the changes: only the lookback brings them in.
    context = {"data_interval_start": until, "data_interval_end": later}
    lookback = timedelta(seconds=30)
    _operator(conn_id, out, lookback=lookback, include=["notes"]).execute(context=context)
    data = _read(out)
    assert set(data) == {"contacts", "notes"}
    assert set(changed) <= {c["id"] for c in data["contacts"]}
    assert all(c["dateUpdated"] >= (until - lookback).isoformat()[:19] for c in data["contacts"])
    empty = _operator(conn_id, tmp_path / "no-lookback", include=["notes"]).execute(context=context)
    assert empty["contacts"] == 0


@pytest.mark.parametrize(
    "faults", [{"error_rate": 0.1}, {"drop_rate": 0.1}, {"storm_rate": 0.2}], ids=["5xx", "drops", "429-storm"]
)
def test_exactly_once_under_faults(
    conn_id: str, enrich_sandbox: SandboxServer, tmp_path: Path, faults: dict[str, Any]
) -> None:
    since, until, changed = _changed(enrich_sandbox, 60)
    expected = _children(enrich_sandbox, changed)
    enrich_sandbox.set_faults(**faults)
    out = tmp_path / "faulty"
    _operator(conn_id, out, updated_since=since, updated_until=until, page_limit=25).execute(context={})
    data = _read(out)
    assert sorted(c["id"] for c in data["contacts"]) == sorted(changed)
    for kind in KINDS:
        got = [(r["contactId"], r["id"]) for r in data[kind]]
        assert len(got) == len(set(got)) and set(got) == expected[kind], kind


def test_interrupted_run_resumes_without_losing_or_repeating_children(
    conn_id: str, enrich_sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    since, until, changed = _changed(enrich_sandbox, 90)
    expected = _children(enrich_sandbox, changed)
    out = tmp_path / "resume"
    real = GHLHook.fetch_contact_children
    calls = {"n": 0}

    def dies_on_third_page(self: GHLHook, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("worker lost")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(GHLHook, "fetch_contact_children", dies_on_third_page)
    kwargs = {"updated_since": since, "updated_until": until, "page_limit": 20, "records_per_file": 30}
    with pytest.raises(ConnectionError):
        _operator(conn_id, out, **kwargs).execute(context={})
    assert (out / "_checkpoint.json").exists() and not (out / "_manifest.json").exists()
    result = _operator(conn_id, out, **kwargs).execute(context={})
    assert result["contacts"] == 90
    data = _read(out)
    assert sorted(c["id"] for c in data["contacts"]) == sorted(changed)
    for kind in KINDS:
        got = [(r["contactId"], r["id"]) for r in data[kind]]
        assert len(got) == len(set(got)) and set(got) == expected[kind], kind


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"updated_since": "2026-01-02T00:00:00Z", "updated_until": "2026-01-01T00:00:00Z"}, "updated_until"),
        ({"updated_since": "not a date", "updated_until": "2026-01-01T00:00:00Z"}, "updated_since"),
        ({"updated_since": None, "updated_until": None}, "data interval"),
        ({"include": ["tasks", "emails"]}, "include"),
        ({"task_search": "sometimes"}, "task_search"),
        ({"lookback": -5}, "lookback"),
        ({"output_path": "relative/out"}, "output_path"),
    ],
)
def test_bad_input_fails_before_any_request_or_write(
    conn_id: str, enrich_sandbox: SandboxServer, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    out = tmp_path / "bad"
    base = {"updated_since": "2026-01-01T00:00:00Z", "updated_until": "2026-01-02T00:00:00Z"}
    operator = _operator(conn_id, out, **base)
    for name, value in kwargs.items():
        setattr(operator, name, value)
    enrich_sandbox.clear_stats()
    with pytest.raises(GHLConfigError, match=message):
        operator.execute(context={})
    assert enrich_sandbox.stats()["requests_total"] == 0
    assert not out.exists()


def test_max_workers_sizes_the_hook_pool_unless_hook_params_say_otherwise(conn_id: str, tmp_path: Path) -> None:
    # The fan-out never runs more threads than the hook's pool holds, so the pool must follow max_workers.
    assert _operator(conn_id, tmp_path, max_workers=16).hook.max_workers == 16
    pinned = GHLEnrichContactsOperator(
        task_id="enrich", ghl_conn_id=conn_id, output_path=f"file://{tmp_path}", max_workers=16,
        hook_params={"max_workers": 4},
    )  # fmt: skip
    assert pinned.hook.max_workers == 4


def test_a_location_other_than_the_connections_uses_its_own_token(
    sandbox: SandboxServer, airflow_db: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An agency connection whose default is location 0 enriches location 1: the children of location 1's
    contacts (requests that name no location) go out with location 1's token, not location 0's (403)."""
    sandbox.reset()
    info = sandbox.info
    first, second = sandbox.location_ids
    conn = {
        "conn_type": "ghl", "host": sandbox.base_url, "login": info["oauth"]["client_id"],
        "password": info["oauth"]["client_secret"],
        "extra": {"auth_type": "oauth", "user_type": "Company", "company_id": info["company_id"], "location_id": first,
                  "refresh_token": info["oauth"]["company_refresh_token"],
                  "token_variable": f"ghl_oauth_agency_{tmp_path.name}"},
    }  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_GHL_AGENCY", json.dumps(conn))
    since = datetime.now(UTC) - timedelta(seconds=1)
    touched = sandbox.touch_contacts(second, count=4)
    operator = GHLEnrichContactsOperator(
        task_id="enrich", ghl_conn_id="ghl_agency", location_id=second, output_path=f"file://{tmp_path}",
        updated_since=since, updated_until=datetime.now(UTC) + timedelta(seconds=5), lookback=0,
    )  # fmt: skip
    operator.execute(context={})
    data = _read(tmp_path)
    assert sorted(c["id"] for c in data["contacts"]) == sorted(touched)
    assert {n["contactId"] for n in data["notes"]} <= set(touched)
    assert sandbox.stats()["responses_by_status"].get("403", 0) == 0
