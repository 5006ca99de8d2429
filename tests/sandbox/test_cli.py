"""``ghl-sandbox`` on the command line: what it prints, that the printed values work, and bad arguments."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest
import requests

from tests.sandbox.cli_run import CLI, ENV, started_cli


@pytest.mark.timeout(60)
def test_cli_prints_base_url_location_and_credentials() -> None:
    args = ["--contacts", "5", "--locations", "1", "--error-rate", "1", "--max-requests", "9"]
    with started_cli(*args) as (text, base_url):
        location = re.search(r"location (\w{20}) \(Sandbox Location 1, 5 contacts\)", text)
        pit = re.search(r"private integration token: (pit-\w+)", text)
        assert location and pit, text
        for label in ("OAuth client id", "OAuth client secret", "agency refresh token", "OAuth refresh token"):
            assert re.search(rf"{label}\s*: \S+", text), label
        assert "9 requests / 10000 ms" in text

        info = requests.get(f"{base_url}/_sandbox/info", timeout=10).json()
        assert info["locations"][0]["id"] == location[1]
        assert info["locations"][0]["private_token"] == pit[1]
        assert info["oauth"]["client_secret"] in text
        # Faults given at start are on: the printed token authenticates, then the 5xx fault answers.
        assert requests.get(f"{base_url}/_sandbox/faults", timeout=10).json()["error_rate"] == 1
        resp = requests.get(
            f"{base_url}/contacts/",
            params={"locationId": location[1]},
            headers={"Authorization": f"Bearer {pit[1]}", "Version": "2021-07-28"},
            timeout=10,
        )
        assert resp.status_code in (500, 502, 503)


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
