"""The ``[core] hostname_callable`` of the Celery test's processes: two workers on one machine, each with a name.

Airflow records the hostname of the process that ran a task instance (``ti.hostname``). Two workers on one
machine would both record the machine's name; giving each its own (``GHL_TEST_HOSTNAME``) lets the test see
which worker ran what, as two machines would.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """``GHL_TEST_HOSTNAME``, else the machine's fully qualified name (Airflow's default).

    :return: the name Airflow records for this process.
    """
    return os.environ.get("GHL_TEST_HOSTNAME") or socket.getfqdn()
