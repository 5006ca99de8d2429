"""A separate worker process for the two-process OAuth test: waits at a file barrier, then reads contacts.

Usage: ``python -m tests.hooks._oauth_worker CONN_ID[@LOCATION_ID] READY_FILE GO_FILE CONTACT_ID...``. Prints one
JSON line with what it fetched; never a token.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_at_barrier(ready: str, go: str) -> None:
    """Say this worker is ready (touch ``ready``), then wait until the test creates ``go``."""
    Path(ready).touch()
    deadline = time.monotonic() + 120
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise SystemExit("barrier timeout")
        time.sleep(0.005)


def run_at_barrier(
    commands: list[Callable[[str, str], list[str]]], directory: Path, **popen: Any
) -> list[tuple[int, str, str]]:
    """Start one worker per command (each made from its READY and GO file names), let them all go at once when
    every one is ready, and return each one's return code, stdout and stderr.

    :param commands: makes a worker's command line from its READY and GO files.
    :param directory: where the barrier files go.
    :param popen: more ``subprocess.Popen`` arguments (``env``, ``cwd``).
    """
    go = directory / "go"
    workers = []
    for n, command in enumerate(commands):
        ready = directory / f"ready-{n}"
        proc = subprocess.Popen(
            command(str(ready), str(go)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
        )
        workers.append((proc, ready))
    deadline = time.monotonic() + 120
    while not all(ready.exists() for _, ready in workers):
        assert time.monotonic() < deadline and all(p.poll() is None for p, _ in workers), "worker did not start"
        time.sleep(0.02)
    go.touch()
    results = []
    for proc, _ in workers:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, out, err))
    return results


def main(conn_id: str, ready: str, go: str, *contact_ids: str) -> None:
    from airflow_provider_ghl.hooks.ghl import GHLHook

    conn_id, _, location_id = conn_id.partition("@")  # CONN_ID@LOCATION: that location's installation
    hook = GHLHook(conn_id, location_id=location_id or None, retry_backoff=0.05)
    _ = hook.config  # resolve the connection before the barrier: both workers then start together
    wait_at_barrier(ready, go)
    fetched = [hook.get_contact(contact_id)["id"] for contact_id in contact_ids]
    print(json.dumps({"fetched": fetched}))


if __name__ == "__main__":
    main(*sys.argv[1:])
