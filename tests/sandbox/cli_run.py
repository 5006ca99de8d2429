"""``ghl-sandbox`` run as users start it, for the tests of what its command line does and prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

CLI = [sys.executable, "-m", "ghl_sandbox.cli"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@contextmanager
def started_cli(*args: str) -> Iterator[tuple[str, str]]:
    """Start ``ghl-sandbox --port 0 <args>``; yield (its start-up text up to the ``admin:`` line, its base URL).

    The process is stopped when the block ends.
    """
    proc = subprocess.Popen(
        [*CLI, "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "admin:" in line:
                break
        text = "".join(lines)
        base_url = re.search(r"listening on (http://127\.0\.0\.1:\d+)\n", text)
        assert base_url, text
        yield text, base_url[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
