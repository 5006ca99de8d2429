"""The status page's FastAPI app: ``GET /`` (HTML, shown in the Airflow UI's "GHL" view) and ``GET /api/status``
(the same as JSON, for scripts). Both answer only a user Airflow lets read connections and Variables (a
Bearer token or the UI's ``_token`` cookie); Airflow adds no check of its own to plugin apps.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from airflow_provider_ghl.status.report import DATASETS, collect

#: Column titles of the datasets, and the counts each shows.
COLUMNS = {
    "contacts": ("Last full export", ("contacts", "deleted")),
    "enrichment": ("Last enrichment", ("contacts", "tasks", "notes", "appointments")),
    "webhooks": ("Last webhook batch", ("events",)),
    "writeback": ("Last write-back", ("results",)),
}


def _cell(output: dict[str, Any] | None, counts: tuple[str, ...]) -> str:
    if not output:
        return "<td class='none'>none</td>"
    figures = ", ".join(f"{name} {output['counts'][name]:,}" for name in counts if name in output["counts"])
    when = html.escape(output["at"][:19].replace("T", " "))
    return f"<td><time>{when}</time><br>{html.escape(figures)}</td>"


def _chart(hourly: list[list[Any]]) -> str:
    """An inline SVG of requests (blue) and 429s (red) per hour, oldest left: no script, no request."""
    if not hourly:
        return ""
    top = max(max(h[1] for h in hourly), 1)
    bars = []
    for i, (hour, requests, limited) in enumerate(hourly):
        height, red = 30 * requests / top, 30 * limited / top
        title = html.escape(f"{hour[11:16]} UTC: {requests} requests, {limited} x 429")
        bars.append(
            f"<g><title>{title}</title><rect x='{i * 5}' y='{30 - height:.1f}' width='4' height='{height:.1f}' "
            f"fill='#4299e1'/><rect x='{i * 5}' y='{30 - red:.1f}' width='4' height='{red:.1f}' fill='#e53e3e'/></g>"
        )
    return (
        f"<svg class='hourly' width='120' height='30' role='img' aria-label='requests per hour'>{''.join(bars)}</svg>"
    )


def _requests_cell(loc: dict[str, Any]) -> str:
    if not loc["hourly"]:
        return "<td class='none'>none</td>"
    return f"<td>{_chart(loc['hourly'])}<br>requests {loc['requests_24h']:,}, 429s {loc['responses_429_24h']:,}</td>"


def _budget_cell(loc: dict[str, Any]) -> str:
    if loc["daily_remaining"] is None:
        return "<td class='none'>-</td>"
    limit = f" of {loc['daily_limit']:,}" if loc["daily_limit"] else ""
    seen = html.escape(loc["daily_seen_at"][11:16])
    return f"<td>{loc['daily_remaining']:,} left{limit}<br>at <time>{seen}</time> UTC</td>"


def _install_cell(loc: dict[str, Any]) -> str:
    parts = []
    if loc["token_expires_at"]:
        parts.append(
            f"own token set, expires <time>{html.escape(loc['token_expires_at'][:16].replace('T', ' '))}</time>"
        )
    if loc["webhook_installed"]:
        parts.append("INSTALL webhook received")
    return f"<td>{'<br>'.join(parts)}</td>" if parts else "<td class='none'>-</td>"


def _lag(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def render(report: dict[str, Any]) -> str:
    """The page's HTML for a :func:`~airflow_provider_ghl.status.report.collect` report.

    :param report: the report.
    :return: a whole HTML document (no script: it is rendered here, and reloads itself every minute).
    """
    head = "".join(f"<th>{COLUMNS[d][0]}</th>" for d in DATASETS)
    rows = []
    for loc in report["locations"]:
        cells = "".join(_cell(loc["outputs"].get(d), COLUMNS[d][1]) for d in DATASETS)
        depth = "-" if loc["inbox_depth"] is None else f"{loc['inbox_depth']:,}"
        error = loc["last_error"]
        failed = (
            f"<td class='error'>{html.escape(error['dag_id'])}.{html.escape(error['task_id'])}<br>"
            f"<time>{html.escape(error['at'][:19].replace('T', ' '))}</time>"
            f"{'<br>' + html.escape(error['message']) if error.get('message') else ''}</td>"
            if error
            else "<td class='none'>none</td>"
        )
        rows.append(
            f"<tr data-location='{html.escape(loc['location_id'])}'><th>{html.escape(loc['location_id'])}</th>"
            f"{cells}<td class='depth'>{depth}</td><td class='lag'>{_lag(loc['webhook_lag_seconds'])}</td>"
            f"{_requests_cell(loc)}{_budget_cell(loc)}{_install_cell(loc)}{failed}</tr>"
        )
    body = "".join(rows) or f"<tr><td colspan='{len(DATASETS) + 7}'>No GHL output recorded yet.</td></tr>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="60">
<title>GHL status</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1rem; color: #1a202c; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #cbd5e0; padding: .4rem .6rem; text-align: left;
vertical-align: top; }} thead th {{ background: #edf2f7; }} .none {{ color: #a0aec0; }}
.error {{ color: #c53030; max-width: 24rem; overflow-wrap: anywhere; }}
</style></head><body>
<h1>GHL locations</h1>
<p>As of <time>{html.escape(report["generated_at"][:19].replace("T", " "))}</time> UTC;
as JSON: <a href="api/status">api/status</a>.</p>
<table><thead><tr><th>Location</th>{head}<th>Webhooks waiting</th><th>Webhook lag</th>
<th>Requests, last 24 h</th><th>Daily budget</th><th>Installation</th><th>Last error</th></tr></thead>
<tbody>{body}</tbody></table></body></html>"""


def build_status_app(dependencies: Sequence[Any] = ()) -> Any:
    """The status page's app.

    :param dependencies: FastAPI dependencies of every route (the plugin passes Airflow's permission checks).
    :return: a FastAPI app.
    """
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="GHL status", dependencies=list(dependencies), docs_url=None, redoc_url=None, openapi_url=None)

    def report() -> dict[str, Any]:
        from airflow.utils.session import create_session

        with create_session() as session:
            return collect(session)

    @app.get("/api/status")
    def status() -> dict[str, Any]:
        return report()

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return render(report())

    return app


def airflow_checks() -> list[Any]:
    """Airflow's checks of the caller: a user allowed to read connections and Variables (the page shows where
    outputs are and the state tokens and installs are in)."""
    from airflow.api_fastapi.core_api.security import requires_access_connection, requires_access_variable
    from fastapi import Depends

    checks: list[Callable[..., Any]] = [requires_access_connection("GET"), requires_access_variable("GET")]
    return [Depends(check) for check in checks]
