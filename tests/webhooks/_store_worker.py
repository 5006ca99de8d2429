"""A separate process storing events into an inbox: ``python -m tests.webhooks._store_worker URL FIRST COUNT``.

Stores events ``w-FIRST`` .. ``w-(FIRST+COUNT-1)``, alternating between locations ``loc-a`` and ``loc-b``, and
prints how many it stored as new (the others were already there).
"""

from __future__ import annotations

import sys

from airflow_provider_ghl.webhooks.inbox import open_inbox


def main(url: str, first: int, count: int) -> None:
    inbox = open_inbox(url)
    new = 0
    for n in range(first, first + count):
        location = "loc-a" if n % 2 else "loc-b"
        body = {"type": "ContactUpdate", "locationId": location, "webhookId": f"w-{n}", "id": f"c{n}"}
        new += inbox.store(location, f"w-{n}", "ContactUpdate", "2026-12-02T05:40:00.000Z", body)
    inbox.close()
    print(new)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
