"""A worker process of an agency install: waits at a file barrier, then reads one contact page per location.

Usage: ``python -m tests.hooks._agency_worker CONN_ID READY_FILE GO_FILE LOCATION_ID...``. Prints one JSON line
with each location's total; never a token.
"""

from __future__ import annotations

import json
import sys

from tests.hooks._oauth_worker import wait_at_barrier


def main(conn_id: str, ready: str, go: str, *location_ids: str) -> None:
    from airflow_provider_ghl.hooks.ghl import GHLHook

    hook = GHLHook(conn_id, retry_backoff=0.05)
    _ = hook.auth  # resolve the connection before the barrier: the workers then start together
    wait_at_barrier(ready, go)
    totals = [hook.search_contacts(page_limit=1, location_id=loc)["total"] for loc in location_ids]
    print(json.dumps({"totals": totals}))


if __name__ == "__main__":
    main(*sys.argv[1:])
