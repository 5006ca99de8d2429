"""The host budget's directory is trusted only when it is the Airflow user's and no one else may write to it.

#21 item 2: the default lived in a predictable directory of the system temp dir, used whoever owned it, its files
opened following links. Each attack below is refused before any request, and the legitimate path still works.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_ghl.exceptions import GHLBudgetBackendError
from airflow_provider_ghl.hooks.connection import GHLConnectionConfig
from airflow_provider_ghl.hooks.ghl import GHLHook
from ghl_sandbox.testing import SandboxServer

#: A uid that is not this process's (nobody), for a directory "another user" created first.
OTHER_UID = 65534


@pytest.fixture
def host_conn(fast_sandbox: SandboxServer, conn_factory: Callable[..., str]) -> Callable[[Path], str]:
    loc = fast_sandbox.info["locations"][0]

    def make(budget_dir: Path) -> str:
        return conn_factory(host=fast_sandbox.base_url, password=loc["private_token"], location_id=loc["id"],
                            budget_backend="host", budget_dir=str(budget_dir))  # fmt: skip

    return make


def _refused(sandbox: SandboxServer, conn_id: str, problem: str) -> None:
    sandbox.clear_stats()
    loc = sandbox.info["locations"][0]["id"]
    with pytest.raises(GHLBudgetBackendError, match=problem):
        GHLHook(conn_id).get_contact(sandbox.contact_ids(loc)[0])
    assert sandbox.stats()["requests_total"] == 0


def test_the_default_budget_dir_is_under_airflow_home_not_the_shared_temp_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import Connection

    monkeypatch.setenv("AIRFLOW_HOME", "/srv/airflow-home")
    config = GHLConnectionConfig.from_connection(Connection(conn_id="c", conn_type="ghl", password="pit-x"))
    assert config.budget_dir == "/srv/airflow-home/ghl-budgets"


def test_a_private_directory_is_made_and_used(
    fast_sandbox: SandboxServer, host_conn: Callable[[Path], str], tmp_path: Path
) -> None:
    budgets = tmp_path / "home" / "ghl-budgets"
    loc = fast_sandbox.info["locations"][0]["id"]
    assert GHLHook(host_conn(budgets)).get_contact(fast_sandbox.contact_ids(loc)[0])["id"]
    assert budgets.stat().st_mode & 0o777 == 0o700
    [state] = budgets.iterdir()
    assert state.stat().st_mode & 0o777 == 0o600 and "_max" in json.loads(state.read_text())


def test_a_directory_others_may_write_to_is_refused(
    fast_sandbox: SandboxServer, host_conn: Callable[[Path], str], tmp_path: Path
) -> None:
    budgets = tmp_path / "shared"
    budgets.mkdir()
    budgets.chmod(0o1777)  # as /tmp is
    _refused(fast_sandbox, host_conn(budgets), r"budget_dir '.*shared' may be written by its group or others")


def test_a_directory_another_user_created_first_is_refused(
    fast_sandbox: SandboxServer, host_conn: Callable[[Path], str], tmp_path: Path
) -> None:
    budgets = tmp_path / "theirs"
    budgets.mkdir(mode=0o755)
    if os.geteuid() == 0:
        os.chown(budgets, OTHER_UID, OTHER_UID)  # another local user's directory, made before ours
    else:
        budgets = Path("/usr")  # root's: not this user's
    _refused(fast_sandbox, host_conn(budgets), r"is owned by uid \d+, not by this process's user")


def test_a_symlinked_directory_or_budget_file_is_refused_and_its_target_is_unchanged(
    fast_sandbox: SandboxServer, host_conn: Callable[[Path], str], tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    _refused(fast_sandbox, host_conn(tmp_path / "link"), "is a symbolic link")

    # A link planted where the budget's file goes (say, left by an older, careless setup): not followed.
    budgets = tmp_path / "budgets"
    GHLHook(host_conn(budgets)).get_contact(fast_sandbox.contact_ids(fast_sandbox.info["locations"][0]["id"])[0])
    [state] = budgets.iterdir()
    from airflow_provider_ghl.hooks.ratelimit import reset_limiters

    reset_limiters()  # as in a new process, which opens the budget afresh (this one's file is dropped)
    state.symlink_to(victim)
    _refused(fast_sandbox, host_conn(budgets), "cannot be opened as a file")
    assert victim.read_text() == "precious"
