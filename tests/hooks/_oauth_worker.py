"""A separate worker process for the two-process OAuth test: waits at a file barrier, then reads contacts.

Usage: ``python -m tests.hooks._oauth_worker CONN_ID READY_FILE GO_FILE CONTACT_ID...``. Prints one JSON line
with what it fetched; never a token.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def wait_at_barrier(ready: str, go: str) -> None:
    """Say this worker is ready (touch ``ready``), then wait until the test creates ``go``."""
    Path(ready).touch()
    deadline = time.monotonic() + 120
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise SystemExit("barrier timeout")
        time.sleep(0.005)


def main(conn_id: str, ready: str, go: str, *contact_ids: str) -> None:
    from airflow_provider_ghl.hooks.ghl import GHLHook

    hook = GHLHook(conn_id, retry_backoff=0.05)
    _ = hook.config  # resolve the connection before the barrier: both workers then start together
    wait_at_barrier(ready, go)
    fetched = [hook.get_contact(contact_id)["id"] for contact_id in contact_ids]
    print(json.dumps({"fetched": fetched}))


if __name__ == "__main__":
    main(*sys.argv[1:])
