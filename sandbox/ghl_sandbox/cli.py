"""``ghl-sandbox``: run the GHL sandbox server and print where it listens and how to authenticate."""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
from datetime import datetime
from typing import Any

from ghl_sandbox.settings import Faults, SandboxConfig, WebhookSubscription


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ghl-sandbox",
        description="A local HTTP server that behaves like the HighLevel (GHL) Contacts API, for tests and demos.",
    )
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port; 0 picks a free one (default 8765)")
    p.add_argument("--contacts", type=int, default=200, help="contacts per location (default 200)")
    p.add_argument("--locations", type=int, default=2, help="locations (sub-accounts) (default 2)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data and credentials")
    p.add_argument("--anchor", help="ISO time the generated dates lead up to (default: now)")
    p.add_argument("--max-requests", type=int, default=100, help="burst budget per token+location")
    p.add_argument("--interval-ms", type=int, default=10_000, help="burst window in ms (default 10000)")
    p.add_argument("--daily-limit", type=int, default=200_000, help="daily budget per token+location")
    p.add_argument("--token-ttl", type=int, default=86_399, help="OAuth access token lifetime in seconds")
    p.add_argument("--allow-duplicates", action="store_true", help="accept contacts whose email/phone exist")
    p.add_argument(
        "--pit-scopes",
        help='scopes of the printed Private Integration Tokens, e.g. "contacts.readonly" (default: all); more '
        "tokens with other scopes: POST /_sandbox/tokens/pit",
    )
    p.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every API response")
    p.add_argument("--jitter-ms", type=float, default=0.0, help="random extra latency up to this many ms")
    p.add_argument("--error-rate", type=float, default=0.0, help="probability of a 500/502/503 answer")
    p.add_argument("--drop-rate", type=float, default=0.0, help="probability of a dropped connection")
    p.add_argument("--storm-rate", type=float, default=0.0, help="probability of a 429 whatever the budget")
    p.add_argument("--mutate-on-search", type=int, default=0, help="contacts updated per search page served")
    p.add_argument(
        "--webhook-url",
        action="append",
        default=[],
        metavar="URL",
        help="deliver a signed GHL webhook of every change to URL (repeatable); more: PUT /_sandbox/webhooks",
    )
    p.add_argument(
        "--webhook-legacy-signature", action="store_true", help="also sign webhooks with RSA (X-WH-Signature)"
    )
    p.add_argument("--json", action="store_true", help="print the start-up information as one JSON line")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    return p


class _DropNoise(logging.Filter):
    """Injected dropped connections are intended; keep uvicorn from logging each as an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing response" not in record.getMessage()


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    """Build the config, turning any invalid value into ``ValueError`` naming the option."""
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be between 0 and 65535, got {args.port}")
    anchor = None
    if args.anchor:
        try:
            anchor = datetime.fromisoformat(args.anchor.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"--anchor must be an ISO-8601 time, got {args.anchor!r}") from None
    try:
        faults = Faults(
            latency_ms=args.latency_ms,
            jitter_ms=args.jitter_ms,
            error_rate=args.error_rate,
            drop_rate=args.drop_rate,
            storm_rate=args.storm_rate,
            mutate_on_search=args.mutate_on_search,
        )
    except Exception as exc:  # pydantic's message names the field
        first = exc.errors()[0] if hasattr(exc, "errors") else {}
        field = "--" + str(first.get("loc", ["?"])[0]).replace("_", "-")
        raise ValueError(f"{field}: {first.get('msg', exc)}") from None
    try:
        webhooks = WebhookSubscription(urls=args.webhook_url, legacy_signature=args.webhook_legacy_signature)
    except Exception as exc:  # pydantic's message names the URL
        first = exc.errors()[0] if hasattr(exc, "errors") else {}
        raise ValueError(f"--webhook-url: {first.get('msg', exc)}") from None
    try:
        return SandboxConfig(
            contacts=args.contacts,
            locations=args.locations,
            seed=args.seed,
            anchor=anchor,
            max_requests=args.max_requests,
            interval_ms=args.interval_ms,
            daily_limit=args.daily_limit,
            token_ttl=args.token_ttl,
            allow_duplicates=args.allow_duplicates,
            pit_scopes=args.pit_scopes,
            faults=faults,
            webhooks=webhooks,
        )
    except ValueError as exc:
        raise ValueError("--" + str(exc).replace("_", "-", 1)) from None


def _describe(info: dict[str, Any]) -> str:
    lines = [
        f"GHL sandbox listening on {info['base_url']}",
        f"  company (agency) id : {info['company_id']}",
        f"  OAuth client id     : {info['oauth']['client_id']}",
        f"  OAuth client secret : {info['oauth']['client_secret']}",
        f"  agency refresh token: {info['oauth']['company_refresh_token']}",
        f"  rate limit          : {info['limits']['max_requests']} requests / {info['limits']['interval_ms']} ms, "
        f"{info['limits']['daily_limit']} / day",
    ]
    for loc in info["locations"]:
        lines += [
            f"  location {loc['id']} ({loc['name']}, {loc['contacts']} contacts)",
            f"    private integration token: {loc['private_token']} ({loc['private_token_scopes']})",
            f"    OAuth refresh token      : {loc['refresh_token']}",
        ]
    hooks = info["webhooks"]
    lines += [
        f"  webhooks to         : {', '.join(hooks['urls']) or '(none yet: PUT /_sandbox/webhooks)'}",
        f"  webhook public key  : {hooks['public_key']} (Ed25519, X-GHL-Signature)",
    ]
    if hooks["legacy_signature"]:
        lines.append("  legacy webhook key  : (RSA, X-WH-Signature)")
        lines += [f"    {line}" for line in hooks["legacy_public_key"].strip().splitlines()]
    lines.append(f"  admin: {info['base_url']}/_sandbox/stats, /_sandbox/faults, /_sandbox/webhooks, /_sandbox/docs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    import uvicorn

    from ghl_sandbox.app import build_app

    app = build_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc.strerror}")
    # Listening before uvicorn starts lets clients connect the moment the address is printed.
    sock.listen(2048)
    host, port = sock.getsockname()[:2]
    app.sandbox.base_url = f"http://{host}:{port}"
    info = app.sandbox.info()
    print(json.dumps(info) if args.json else _describe(info), flush=True)
    logging.getLogger("uvicorn.error").addFilter(_DropNoise())
    server = uvicorn.Server(
        uvicorn.Config(app, log_level=args.log_level, access_log=False, timeout_keep_alive=30, lifespan="on")
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
