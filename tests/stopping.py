"""A run stopped the way Airflow stops a task: ``on_kill`` called while ``execute`` is running."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def stopped_mid_run(operator: Any, started: Callable[[], bool], *, timeout: float = 120) -> BaseException | None:
    """Run ``operator.execute`` in a thread, call ``operator.on_kill()`` once ``started()`` is true (as Airflow's
    SIGTERM handler does while the task runs), wait for ``execute`` to end; return what it raised.

    :param operator: the operator.
    :param started: whether the run is far enough to be stopped (e.g. its first part is committed).
    :param timeout: the longest wait for either.
    """
    raised: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute(context={})
        except BaseException as err:
            raised.append(err)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + timeout
    while not started() and time.monotonic() < deadline:
        time.sleep(0.02)
    operator.on_kill()
    worker.join(timeout)
    assert not worker.is_alive(), "execute went on after on_kill"
    return raised[0] if raised else None
