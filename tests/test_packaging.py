"""Two distributions from one repository: the provider's wheel is only the provider, the sandbox has its own."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _wheel(project: Path, into: Path) -> zipfile.ZipFile:
    """``pip wheel --no-deps`` of ``project`` (built in pip's isolated build environment, as a release is)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(into), str(project)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = into.glob("*.whl")
    return zipfile.ZipFile(wheel)


def _entry_points(wheel: zipfile.ZipFile) -> str:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    return wheel.read(name).decode()


@pytest.mark.slow
def test_the_provider_wheel_holds_no_sandbox_module(tmp_path: Path) -> None:
    wheel = _wheel(REPO, tmp_path / "provider")
    names = wheel.namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"airflow_provider_ghl"}
    assert not [n for n in names if "sandbox" in n.lower()]
    assert "airflow_provider_ghl/py.typed" in names
    entry_points = _entry_points(wheel)
    assert "ghl-sandbox" not in entry_points
    assert "provider_info = airflow_provider_ghl:get_provider_info" in entry_points


@pytest.mark.slow
def test_the_sandbox_builds_its_own_wheel_without_the_provider(tmp_path: Path) -> None:
    wheel = _wheel(REPO / "sandbox", tmp_path / "sandbox")
    names = wheel.namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert packages == {"ghl_sandbox"}
    assert {"ghl_sandbox/testing.py", "ghl_sandbox/redis_server.py", "ghl_sandbox/py.typed"} <= set(names)
    assert "ghl-sandbox = ghl_sandbox.cli:main" in _entry_points(wheel)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in wheel.read(metadata).decode().splitlines() if line.startswith("Requires-Dist:")]
    assert not [r for r in requires if "airflow" in r.lower()]


def test_every_provider_module_imports_without_the_sandbox() -> None:
    """The provider needs nothing of ``ghl_sandbox``: every module imports with it made unimportable."""
    script = """
import importlib, pkgutil, sys
sys.modules["ghl_sandbox"] = None  # an import of it now raises ImportError
import airflow_provider_ghl
names = [m.name for m in pkgutil.walk_packages(airflow_provider_ghl.__path__, "airflow_provider_ghl.")]
for name in names:
    importlib.import_module(name)
from airflow.providers_manager import ProvidersManager
assert "airflow-provider-ghl" in ProvidersManager().providers
print(len(names))
"""
    done = subprocess.run(
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", script],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 50
