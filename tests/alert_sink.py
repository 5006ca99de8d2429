"""An alert sender for the tests: appends each message to the file ``GHL_ALERT_SINK`` names, one JSON line each.

The example DAGs send alerts to the dotted path in the ``ghl_alert_send`` Variable; the tests set it to
``tests.alert_sink.record`` (the task processes import it from the repository, on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def record(message: str) -> None:
    """Append ``message`` to the sink file.

    :param message: the alert's message.
    """
    with open(os.environ["GHL_ALERT_SINK"], "a", encoding="utf-8") as sink:
        sink.write(json.dumps(message) + "\n")


def messages(sink: Path) -> list[str]:
    """The messages recorded in ``sink`` so far, in order."""
    if not sink.exists():
        return []
    return [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines()]
