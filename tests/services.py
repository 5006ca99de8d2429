"""What a test does when a server it needs is not installed."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def service_missing(message: str) -> NoReturn:
    """Skip the test for a missing server package, with ``message`` naming it; in CI (``CI=true``), fail it:
    ``.ci/run`` installs every package the suite needs.

    :param message: what is missing and the package that provides it.
    """
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
