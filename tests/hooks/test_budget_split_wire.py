"""Two "machines" (worker processes with their own ``budget_dir``) spending one location's budget against the
sandbox: each meets requests its budget file does not know of, and warns once that the budget is split, naming
the remedy; workers that share the budget file, or one worker alone, do not."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ghl_sandbox.testing import SandboxServer
from tests.hooks._oauth_worker import run_at_barrier

WORKER = Path(__file__).with_name("_oauth_worker.py")
WARNING = "that no process on this machine sent."


def _run(
    sandbox: SandboxServer, conn_factory: Callable[..., str], tmp_path: Path, budget_dirs: list[str]
) -> list[tuple[int, str, str]]:
    """One worker per budget directory, each reading the same 40 contacts of location 0 through its own
    connection (the same token), released together."""
    location = sandbox.info["locations"][0]
    contacts = sandbox.contact_ids(location["id"])[:40]
    commands = []
    for budget_dir in budget_dirs:
        conn_id = conn_factory(
            host=sandbox.base_url, password=location["private_token"], location_id=location["id"], budget_dir=budget_dir
        )
        commands.append(lambda ready, go, c=conn_id: [sys.executable, str(WORKER), c, ready, go, *contacts])
    results = run_at_barrier(commands, tmp_path, env=os.environ.copy())
    for returncode, out, err in results:
        assert returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"fetched": contacts}
    return results


def test_workers_with_their_own_budget_files_warn_once_that_the_budget_is_split(
    fast_sandbox: SandboxServer, conn_factory: Callable[..., str], tmp_path: Path
) -> None:
    location_id = fast_sandbox.info["locations"][0]["id"]
    results = _run(fast_sandbox, conn_factory, tmp_path, [str(tmp_path / "machine-a"), str(tmp_path / "machine-b")])
    # Airflow's logging writes to the worker's stdout.
    warned = [(out + err).count(WARNING) for _, out, err in results]
    assert warned == [1, 1], [(out + err)[-2000:] for _, out, err in results]
    for _, out, _ in results:
        assert "budget_backend=redis with budget_redis_conn_id" in out and f"location {location_id}" in out


def test_workers_sharing_the_budget_file_or_alone_do_not_warn(
    fast_sandbox: SandboxServer, conn_factory: Callable[..., str], tmp_path: Path
) -> None:
    shared = str(tmp_path / "one-machine")
    for dirs in ([shared, shared], [str(tmp_path / "alone")]):
        barrier = tmp_path / f"run-{len(dirs)}"
        barrier.mkdir()
        results = _run(fast_sandbox, conn_factory, barrier, dirs)
        assert all(WARNING not in out + err for _, out, err in results), [
            (out + err)[-2000:] for _, out, err in results
        ]
