"""``ghl-sandbox`` on the command line: what it prints, that the printed values work, and bad arguments."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
import requests

CLI = [sys.executable, "-m", "airflow_provider_ghl.sandbox.cli"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.mark.timeout(60)
def test_cli_prints_base_url_location_and_credentials() -> None:
    args = ["--port", "0", "--contacts", "5", "--locations", "1", "--error-rate", "1", "--max-requests", "9"]
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "admin:" in line:
                break
        text = "".join(lines)
        base_url = re.search(r"listening on (http://127\.0\.0\.1:\d+)\n", text)
        location = re.search(r"location (\w{20}) \(Sandbox Location 1, 5 contacts\)", text)
        pit = re.search(r"private integration token: (pit-\w+)", text)
        assert base_url and location and pit, text
        for label in ("OAuth client id", "OAuth client secret", "agency refresh token", "OAuth refresh token"):
            assert re.search(rf"{label}\s*: \S+", text), label
        assert "9 requests / 10000 ms" in text

        info = requests.get(f"{base_url[1]}/_sandbox/info", timeout=10).json()
        assert info["locations"][0]["id"] == location[1]
        assert info["locations"][0]["private_token"] == pit[1]
        assert info["oauth"]["client_secret"] in text
        # Faults given at start are on: the printed token authenticates, then the 5xx fault answers.
        assert requests.get(f"{base_url[1]}/_sandbox/faults", timeout=10).json()["error_rate"] == 1
        resp = requests.get(
            f"{base_url[1]}/contacts/",
            params={"locationId": location[1]},
            headers={"Authorization": f"Bearer {pit[1]}", "Version": "2021-07-28"},
            timeout=10,
        )
        assert resp.status_code in (500, 502, 503)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--contacts", "-1"], "--contacts"),
        (["--contacts", "many"], "--contacts"),
        (["--locations", "0"], "--locations"),
        (["--error-rate", "2"], "--error-rate"),
        (["--drop-rate", "-0.5"], "--drop-rate"),
        (["--latency-ms", "-5"], "--latency-ms"),
        (["--port", "70000"], "--port"),
        (["--anchor", "notadate"], "--anchor"),
        (["--max-requests", "0"], "--max-requests"),
        (["--token-ttl", "0"], "--token-ttl"),
    ],
)
def test_bad_arguments_name_the_option(args: list[str], option: str) -> None:
    result = subprocess.run([*CLI, "--port", "0", *args], capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode != 0
    assert option in result.stderr, result.stderr
    assert "listening" not in result.stdout
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([*CLI, "--port", str(port)], capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
