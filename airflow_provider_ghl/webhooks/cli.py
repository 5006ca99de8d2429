"""``ghl-webhooks serve``: the webhook receiver as its own HTTP service (``python -m
airflow_provider_ghl.webhooks.cli serve`` too), for deployments that expose it apart from the api-server.

It serves the same app as the plugin, at the same path (``POST /ghl/webhooks``), with the same
``[ghl_webhooks]`` settings. It speaks plain HTTP: put TLS in front of it (a reverse proxy).

``ghl-webhooks install``: the app's install flow for a deployment with no URL a browser can reach: it prints
GHL's authorization page, then takes the code (or the whole URL GHL redirected to) and stores the
installation's token set.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

from fastapi import FastAPI

from airflow_provider_ghl.exceptions import GHLConfigError, GHLError
from airflow_provider_ghl.webhooks.options import URL_PREFIX
from airflow_provider_ghl.webhooks.receiver import build_receiver_app
from airflow_provider_ghl.webhooks.settings import WebhookSettings


def build_server_app(settings: WebhookSettings, *, stats: bool = False) -> FastAPI:
    """A root app with the receiver mounted at :data:`URL_PREFIX`, as the api-server mounts the plugin's.

    :param settings: the ``[ghl_webhooks]`` settings.
    :param stats: serve ``GET /ghl/stats`` (the delivery counters), which this server cannot authenticate.
    """
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.mount(URL_PREFIX, build_receiver_app(settings, stats_dependencies=[] if stats else None))
    return root


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ghl-webhooks", description="The GHL webhook receiver.")
    commands = p.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve POST /ghl/webhooks with the [ghl_webhooks] settings")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8085, help="port to listen on (default 8085; 0: a free one)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action="store_true", help="log every request (off: a burst floods the log)")
    serve.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="connections and requests served at once; more are answered 503 (default 1000)",
    )
    serve.add_argument(
        "--stats",
        action="store_true",
        help="serve GET /ghl/stats, the delivery counters, without authentication (off: no such route)",
    )
    install = commands.add_parser(
        "install", help="install the app: print GHL's authorization page, then store the token set of the code"
    )
    install.add_argument("--conn-id", default="ghl_default", help="the app's ghl connection (default ghl_default)")
    install.add_argument(
        "--redirect-uri", required=True, help="the redirect URL registered with the app (GHL sends the code there)"
    )
    install.add_argument("--code", help="the code (or the whole redirect URL); without it, read from standard input")
    return p


def install(conn_id: str, redirect_uri: str, code: str | None, *, ask: Callable[[str], str] = input) -> int:
    """The install flow on a console: the page to open, then the code (or the redirect URL) it leads to.

    :param conn_id: the app's ``ghl`` connection.
    :param redirect_uri: the redirect URL registered with the app.
    :param code: the code or the whole redirect URL, if already at hand.
    :param ask: reads the answer when ``code`` is None.
    :return: the exit status: 0 stored, 1 refused.
    """
    from airflow_provider_ghl.hooks.ghl import GHLHook
    from airflow_provider_ghl.hooks.install import InstallStates, authorization_url, installation_name

    states = InstallStates()
    try:
        config = GHLHook(conn_id).config
        state = states.issue(conn_id, redirect_uri)
    except GHLError as err:
        print(f"ghl-webhooks install: {err}", file=sys.stderr)
        return 1
    page = authorization_url(config, redirect_uri, state)
    print(f"Open this page, log in to GHL and choose the agency or the location:\n\n  {page}\n")
    answer = (code or ask("Paste the code, or the whole URL GHL redirected to: ")).strip()
    given = dict(parse_qsl(urlsplit(answer).query)) if "://" in answer else {"code": answer, "state": state}
    try:
        pending = states.consume(given.get("state"))
        tokens = GHLHook(pending.conn_id).install_from_code(given.get("code", ""), pending.redirect_uri)
    except GHLError as err:
        print(f"ghl-webhooks install: {err}", file=sys.stderr)
        return 1
    facts = tokens.describe()
    print(
        f"Installed: the {installation_name(facts)}, stored for connection {conn_id!r} (valid until "
        f"{facts['expires_at']}; it renews itself)."
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "install":
        return install(args.conn_id, args.redirect_uri, args.code)
    try:
        settings = WebhookSettings.load()
    except GHLConfigError as err:
        parser.error(str(err))
    import uvicorn

    app = build_server_app(settings, stats=args.stats)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    # A restart can take the port over at once from connections of the previous run still in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as err:
        parser.error(f"cannot listen on {args.host}:{args.port}: {err.strerror}")
    sock.listen(2048)  # listening before uvicorn starts: senders may connect once the address is printed
    host, port = sock.getsockname()[:2]
    print(f"ghl-webhooks: POST http://{host}:{port}{URL_PREFIX}/webhooks -> inbox {settings.inbox}", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            access_log=args.access_log,
            timeout_keep_alive=30,
            limit_concurrency=args.max_connections,
            lifespan="off",
        )
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
