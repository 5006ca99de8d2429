"""Run the receiver over real HTTP in tests: uvicorn in a thread, or ``ghl-webhooks serve`` as a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from airflow_provider_ghl.webhooks.cli import build_server_app
from airflow_provider_ghl.webhooks.settings import WebhookSettings
from ghl_sandbox.testing import stop_child

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ReceiverThread:
    """An app (by default the standalone server app of ``settings``) served by uvicorn on a free loopback port.

    :param settings: the receiver's settings.
    :param app: serve this app instead (e.g. a root app the plugin's app is mounted on).
    """

    def __init__(self, settings: WebhookSettings | None = None, *, app: FastAPI | None = None) -> None:
        self.app = app or build_server_app(settings or WebhookSettings(), stats=True)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(1024)
        self.port = int(self._sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/ghl"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, lifespan="off", log_level="warning", access_log=False, timeout_keep_alive=30)
        )
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> ReceiverThread:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the receiver did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._sock.close()

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.base_url}/stats").json())


def settings_env(settings: WebhookSettings) -> dict[str, str]:
    """``settings`` as the ``AIRFLOW__GHL_WEBHOOKS__*`` variables a child process reads them from."""
    return {
        "AIRFLOW__GHL_WEBHOOKS__INBOX": settings.inbox,
        "AIRFLOW__GHL_WEBHOOKS__PUBLIC_KEY": settings.public_key,
        "AIRFLOW__GHL_WEBHOOKS__LEGACY_PUBLIC_KEY": settings.legacy_public_key,
        "AIRFLOW__GHL_WEBHOOKS__ACCEPT_LEGACY": str(settings.accept_legacy),
        "AIRFLOW__GHL_WEBHOOKS__MAX_AGE_SECONDS": str(settings.max_age_seconds),
        "AIRFLOW__GHL_WEBHOOKS__MAX_BODY_BYTES": str(settings.max_body_bytes),
        "AIRFLOW__GHL_WEBHOOKS__BODY_TIMEOUT_SECONDS": str(settings.body_timeout_seconds),
        "AIRFLOW__GHL_WEBHOOKS__LOCATIONS": ",".join(settings.locations),
        "AIRFLOW__GHL_WEBHOOKS__APP_ID": settings.app_id,
        "AIRFLOW__GHL_WEBHOOKS__INSTALL_FLOW": str(settings.install_flow),
        "AIRFLOW__GHL_WEBHOOKS__OAUTH_REDIRECT_URI": settings.oauth_redirect_uri,
    }


class ReceiverProcess:
    """``python -m airflow_provider_ghl.webhooks.cli serve`` on ``port``, configured through the environment.

    :param settings: written to the child's ``AIRFLOW__GHL_WEBHOOKS__*`` variables.
    :param port: the port (a restart reuses it).
    """

    def __init__(self, settings: WebhookSettings, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}/ghl"
        self.env = {
            **os.environ,
            **settings_env(settings),
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        self.process: subprocess.Popen[str] | None = None
        self.banner = ""

    def start(self, timeout: float = 60) -> ReceiverProcess:
        cmd = [sys.executable, "-m", "airflow_provider_ghl.webhooks.cli", "serve", "--port", str(self.port), "--stats"]
        self.process = subprocess.Popen(
            cmd, env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        self.banner = self.process.stdout.readline().strip()
        if not self.banner.startswith("ghl-webhooks:"):
            rest = self.process.stdout.read() if self.process.poll() is not None else ""
            raise RuntimeError(f"ghl-webhooks serve did not start: {self.banner}\n{rest}")
        # Drain its output so a chatty child never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base_url}/health", timeout=5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("ghl-webhooks serve did not answer /ghl/health")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush; whatever was not committed is gone."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        stop_child(self.process)
