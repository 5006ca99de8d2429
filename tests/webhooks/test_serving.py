"""The two ways the receiver is served: the Airflow plugin (mounted by Airflow's own code) and
``ghl-webhooks serve``; and a receiver killed mid-burst and restarted loses nothing, stores nothing twice."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airflow_provider_ghl import get_provider_info
from airflow_provider_ghl.webhooks.inbox import open_inbox
from airflow_provider_ghl.webhooks.settings import WebhookSettings
from tests.webhooks.serving import ROOT, ReceiverProcess, ReceiverThread, free_port, settings_env
from tests.webhooks.signing import Signer, claimed, event

PLUGIN_CLASS = "airflow_provider_ghl.webhooks.plugin.GHLWebhooksPlugin"


def _settings(signer: Signer, tmp_path: Path) -> WebhookSettings:
    return WebhookSettings(
        locations=("loc0", "loc1"),
        inbox=f"sqlite:///{tmp_path}/ghl_webhooks.db",
        public_key=signer.public_key,
        legacy_public_key=signer.legacy_public_key,
    )


def _plugin_apps(enabled: str | None) -> list[str]:
    """What the plugin mounts in a fresh process, with ``[ghl_webhooks] enabled`` set to ``enabled`` (or unset)."""
    code = (
        "from airflow_provider_ghl.webhooks.plugin import GHLWebhooksPlugin, LazyReceiverApp; "
        "apps = GHLWebhooksPlugin.fastapi_apps; "
        "assert all(isinstance(a['app'], LazyReceiverApp) for a in apps); "
        "print([(a['url_prefix'], a['name']) for a in apps])"
    )
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__GHL_WEBHOOKS__ENABLED"}
    if enabled is not None:
        env["AIRFLOW__GHL_WEBHOOKS__ENABLED"] = enabled
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [str(line) for line in done.stdout.strip().splitlines()[-1:]]


def test_the_plugin_is_registered_and_mounts_the_receiver_only_when_enabled() -> None:
    """#21 item 1: installing the package opens no route; ``[ghl_webhooks] enabled = True`` mounts /ghl."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    module, _, name = PLUGIN_CLASS.rpartition(".")
    assert pyproject["project"]["entry-points"]["airflow.plugins"] == {
        "ghl_webhooks": f"{module}:{name}",
        # The status page: mounted always, every route behind Airflow's login (tests/scheduler/test_status_page.py).
        "ghl_status": "airflow_provider_ghl.status.plugin:GHLStatusPlugin",
    }
    assert pyproject["project"]["scripts"]["ghl-webhooks"] == "airflow_provider_ghl.webhooks.cli:main"
    assert {"name": "ghl-webhooks", "plugin-class": PLUGIN_CLASS} in get_provider_info()["plugins"]

    assert _plugin_apps(None) == ["[]"]
    assert _plugin_apps("False") == ["[]"]
    assert _plugin_apps("not-a-boolean") == ["[]"]  # logged; never a failure of every Airflow process
    assert _plugin_apps("True") == ["[('/ghl', 'ghl-webhooks')]"]


def test_importing_the_plugin_builds_nothing() -> None:
    """Every task process imports the plugins: the plugin imports no web framework and reads no settings."""
    code = (
        "import sys, airflow_provider_ghl.webhooks.plugin as p; "
        "print(sorted(m for m in ('fastapi', 'airflow_provider_ghl.webhooks.receiver') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["AIRFLOW__GHL_WEBHOOKS__MAX_AGE_SECONDS"] = "not checked at import"
    env["AIRFLOW__GHL_WEBHOOKS__ENABLED"] = "True"  # mounted, and still built only by the first request
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_the_plugin_answers_429_until_its_settings_validate(
    signer: Signer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi import FastAPI

    from airflow_provider_ghl.webhooks.plugin import LazyReceiverApp

    for name, value in settings_env(_settings(signer, tmp_path)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__MAX_AGE_SECONDS", "soon")
    root = FastAPI()
    root.mount("/ghl", LazyReceiverApp())  # as Airflow's init_plugins mounts it
    with ReceiverThread(app=root) as server:
        body, headers = signer.delivery(event("loc1"))
        refused = httpx.post(f"{server.base_url}/webhooks", content=body, headers=headers)
        assert (refused.status_code, refused.json()) == (429, {"error": "receiver_misconfigured"})
        monkeypatch.setenv("AIRFLOW__GHL_WEBHOOKS__MAX_AGE_SECONDS", "300")  # fixed: the next request builds it
        answer = httpx.post(f"{server.base_url}/webhooks", content=body, headers=headers)
        assert (answer.status_code, answer.json()) == (200, {"stored": True})


@contextlib.contextmanager
def _mounted_by_airflow(env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """Airflow's own plugin mounting (``init_plugins``) served on a free port: ``(mounts line, base URL)``, the
    app answering."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.webhooks._airflow_mounted", str(port)],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        mounts = server.stdout.readline().strip()
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/ghl/health", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "the mounted app did not answer"
                time.sleep(0.05)
        yield mounts, url
    finally:
        server.terminate()
        server.wait(10)


def _plugin_env(settings: WebhookSettings, plugins: Path, **more: str) -> dict[str, str]:
    """A child's environment: the receiver's settings, an empty plugins folder (the entry point alone registers
    the plugin), ``[ghl_webhooks] enabled`` only when ``more`` says so."""
    plugins.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__GHL_WEBHOOKS__ENABLED"}
    return {
        **env,
        **settings_env(settings),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        **more,
    }


def test_airflow_loads_the_plugin_and_mounts_the_receiver_at_ghl(signer: Signer, tmp_path: Path) -> None:
    """Airflow finds the plugin (``airflow plugins``), and its api-server mounting code serves POST /ghl/webhooks."""
    settings = _settings(signer, tmp_path)
    env = _plugin_env(settings, tmp_path / "plugins", AIRFLOW__GHL_WEBHOOKS__ENABLED="True")
    listing = subprocess.run(
        [sys.executable, "-m", "airflow", "plugins", "--output", "json"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    [plugin] = [p for p in json.loads(listing.stdout) if p["name"] == "ghl-webhooks"]
    assert "/ghl" in json.dumps(plugin["fastapi_apps"])

    with _mounted_by_airflow(env) as (mounts, url):
        assert mounts == "mounts: /ghl-status,/ghl"
        # No Airflow token anywhere: the signature alone decides.
        answer = httpx.post(f"{url}/ghl/webhooks", content=(d := signer.delivery(event("loc1")))[0], headers=d[1])
        assert (answer.status_code, answer.json()) == (200, {"stored": True})
        assert httpx.post(f"{url}/ghl/webhooks", content=d[0], headers={}).status_code == 401
    inbox = open_inbox(settings.inbox)
    assert inbox.pending() == {"loc1": 1}
    inbox.close()


def test_by_default_airflow_mounts_nothing_and_stores_nothing(signer: Signer, tmp_path: Path) -> None:
    """#21 item 1: the api-server's own mounting code, the receiver not enabled: no /ghl, nothing stored (only
    the status page, which answers no one who has not logged in)."""
    settings = _settings(signer, tmp_path)
    with _mounted_by_airflow(_plugin_env(settings, tmp_path / "plugins")) as (mounts, url):
        assert mounts == "mounts: /ghl-status"
        answer = httpx.post(f"{url}/ghl/webhooks", content=(d := signer.delivery(event("loc1")))[0], headers=d[1])
        assert answer.status_code == 404
        assert httpx.get(f"{url}/ghl/stats").status_code == 404
    inbox = open_inbox(settings.inbox)
    assert inbox.pending() == {}
    inbox.close()


def test_ghl_webhooks_serve_answers_with_the_airflow_config(signer: Signer, tmp_path: Path) -> None:
    settings = _settings(signer, tmp_path)
    server = ReceiverProcess(settings, free_port()).start()
    try:
        assert server.banner == (
            f"ghl-webhooks: POST http://127.0.0.1:{server.port}/ghl/webhooks -> inbox {settings.inbox}"
        )
        for scheme in ("ed25519", "rsa"):
            body, headers = signer.delivery(event("loc1"), scheme=scheme)
            assert httpx.post(f"{server.base_url}/webhooks", content=body, headers=headers).status_code == 200
        stats = httpx.get(f"{server.base_url}/stats").json()
        assert stats["stored"] == 2
    finally:
        server.stop()


def test_ghl_webhooks_serve_refuses_a_bad_config(signer: Signer, tmp_path: Path) -> None:
    env = {**ReceiverProcess(_settings(signer, tmp_path), 0).env, "AIRFLOW__GHL_WEBHOOKS__MAX_AGE_SECONDS": "soon"}
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_ghl.webhooks.cli", "serve"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "[ghl_webhooks] max_age_seconds: must be an integer, got 'soon'" in done.stderr


@pytest.mark.slow
def test_a_receiver_killed_mid_burst_and_restarted_loses_nothing_and_stores_nothing_twice(
    signer: Signer, tmp_path: Path
) -> None:
    settings = _settings(signer, tmp_path)
    port = free_port()
    server = ReceiverProcess(settings, port).start()
    payloads = [event(f"loc{n % 2}", id=f"c{n}") for n in range(300)]
    answers: dict[str, dict[str, bool]] = {}
    failures: list[str] = []

    def sender() -> None:
        """Like GHL (and the sandbox): each event until it gets a 200, whatever happens to the receiver."""
        with httpx.Client(timeout=10) as client:
            for payload in payloads:
                body, headers = signer.delivery(payload)
                for _ in range(1200):
                    try:
                        answer = client.post(f"{server.base_url}/webhooks", content=body, headers=headers)
                        if answer.status_code == 200:
                            answers[payload["webhookId"]] = answer.json()
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.025)
                else:
                    failures.append(payload["webhookId"])

    thread = threading.Thread(target=sender)
    thread.start()
    inbox = open_inbox(settings.inbox)
    try:
        while sum(inbox.pending().values()) < 100:
            assert thread.is_alive(), "the sender finished before the kill"
            time.sleep(0.01)
        server.kill()  # mid-burst: no shutdown, requests in flight are cut
        killed_at = sum(inbox.pending().values())
        server = ReceiverProcess(settings, port).start()
        thread.join(300)
    finally:
        server.stop()
    assert not failures and len(answers) == 300
    assert killed_at < 300  # the kill did fall inside the burst
    pending = inbox.pending()
    assert pending == {"loc0": 150, "loc1": 150}
    for location in ("loc0", "loc1"):
        stored = inbox.events(claimed(inbox, location))
        assert [e.seq for e in stored] == list(range(1, 151))
        assert [e.webhook_id for e in stored] == [p["webhookId"] for p in payloads if p["locationId"] == location]
    inbox.close()


@pytest.mark.slow
def test_the_real_api_server_serves_the_receiver_at_ghl_webhooks(signer: Signer, tmp_path: Path) -> None:
    """``airflow api-server`` itself, the plugin found by Airflow and enabled: deliveries need no Airflow login,
    its API does, and so does ``/ghl/stats`` (#21); ``/ghl/health`` says ok and nothing more. The install flow
    (#22) needs a user allowed to edit connections: none is refused 401, a viewer 403, an admin is sent to GHL."""
    home = tmp_path / "airflow-home"
    plugins = home / "plugins"  # empty: the entry point alone registers the plugin
    plugins.mkdir(parents=True)
    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"admin": "s3cret-admin", "viewer": "s3cret-viewer"}))
    settings = _settings(signer, tmp_path)
    port = free_port()
    env = {
        **os.environ,
        **settings_env(settings),
        "AIRFLOW__GHL_WEBHOOKS__ENABLED": "True",
        "AIRFLOW__GHL_WEBHOOKS__INSTALL_FLOW": "True",
        "AIRFLOW_CONN_GHL_APP": json.dumps(
            {"conn_type": "ghl", "login": "client-id", "password": "client-secret", "extra": {"auth_type": "oauth"}}
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True,
                   timeout=300)  # fmt: skip
    with open(tmp_path / "api-server.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server"], env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/ghl/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "api-server.log").read_text()
            time.sleep(0.2)
        body, headers = signer.delivery(event("loc1"))
        answer = httpx.post(f"{url}/ghl/webhooks", content=body, headers=headers)
        assert (answer.status_code, answer.json()) == (200, {"stored": True})
        assert httpx.post(f"{url}/ghl/webhooks", content=body, headers={}).status_code == 401
        assert httpx.get(f"{url}/api/v2/assets").status_code == 401  # Airflow's own API still wants a login
        assert httpx.get(f"{url}/ghl/health").json() == {"status": "ok"}
        assert httpx.get(f"{url}/ghl/stats").status_code == 401
        token = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": "s3cret-admin"})
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        stats = httpx.get(f"{url}/ghl/stats", headers=bearer)
        assert stats.status_code == 200 and stats.json()["stored"] == 1
        start = f"{url}/ghl/oauth/start?conn_id=ghl_app"
        assert httpx.get(start).status_code == 401
        token = httpx.post(f"{url}/auth/token", json={"username": "viewer", "password": "s3cret-viewer"})
        assert httpx.get(start, headers={"Authorization": f"Bearer {token.json()['access_token']}"}).status_code == 403
        sent = httpx.get(start, headers=bearer)
        assert sent.status_code == 302
        assert sent.headers["location"].startswith("https://marketplace.gohighlevel.com/v2/oauth/chooselocation?")
        assert httpx.get(f"{url}/ghl/oauth/callback?code=x&state=y").status_code == 401
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
    inbox = open_inbox(settings.inbox)
    assert inbox.pending() == {"loc1": 1}
    inbox.close()
