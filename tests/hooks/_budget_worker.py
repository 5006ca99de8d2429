"""A worker process sharing a rate budget with the test: ``python -m tests.hooks._budget_worker MODE CONN_ID ...``.

Modes (each prints one JSON line, never a token):

* ``fetch READY GO COUNT CONTACT_ID``: wait at the file barrier, then read the contact COUNT times;
* ``inspect``: the shared window as this process sees it, having sent nothing: budget, window, wait, daily;
* ``drain CONTACT_ID``: read the contact until the daily reserve stops it; how many reads went out.
"""

from __future__ import annotations

import json
import sys

from tests.hooks._oauth_worker import wait_at_barrier


def main(mode: str, conn_id: str, *args: str) -> None:
    from airflow_provider_ghl.exceptions import GHLDailyBudgetExhausted
    from airflow_provider_ghl.hooks.ghl import GHLHook

    hook = GHLHook(conn_id, retry_backoff=0.05)
    _ = hook.config
    if mode == "fetch":
        ready, go, count, contact_id = args
        limiter = hook._limiter(None)  # created (and its backend checked) before the barrier
        wait_at_barrier(ready, go)
        for _ in range(int(count)):
            hook.get_contact(contact_id)
        print(json.dumps({**hook.request_stats.as_dict(), "max_requests": limiter.max_requests}))
    elif mode == "inspect":
        limiter = hook._limiter(None)
        wait = limiter.reserve(daily_reserve=-1)  # takes a slot when one is free; never sends
        print(json.dumps({"max_requests": limiter.max_requests, "interval": limiter.interval, "wait": wait,
                          "daily_remaining": limiter.daily_remaining}))  # fmt: skip
    elif mode == "drain":
        (contact_id,) = args
        try:
            while True:
                hook.get_contact(contact_id)
        except GHLDailyBudgetExhausted as err:
            print(json.dumps({"sent": hook.request_stats.requests, "remaining": err.remaining}))
    hook.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
