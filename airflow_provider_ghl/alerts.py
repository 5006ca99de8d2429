"""Alerts: what went wrong with a GHL location, as one clear message per event, sent through any Airflow
notifier backend.

:class:`GHLAlertNotifier` is a notifier (``on_failure_callback``, ``on_skipped_callback``, a deadline alert's
``AsyncCallback``). It turns what the callback's context says into :class:`GHLAlert` objects
(:func:`alerts_of`) and hands each message to ``send``: a callable that sends it (or returns an Airflow notifier,
such as Slack's or SMTP's, which is then called with the context), given as an object or as a dotted import
path (templated, so a Variable can name it). Without ``send`` the message is logged as an error in the task log.

The conditions:

* ``daily_budget_reserve``: a task stopped at the location's daily reserve (:class:`GHLDailyBudgetExhausted`);
* ``token_refused``: GHL refused a token or its refresh (:class:`GHLAuthError`: a revoked app, a spent refresh
  token with no newer set);
* ``install_gone``: the app is no longer installed in a location (its task skipped);
* ``webhook_lag``, ``export_overdue``, ``schema_drift``: found by ``GHLHealthCheckOperator``
  (:class:`GHLHealthAlerts`);
* ``deadline_missed``: a run still unfinished at its deadline alert;
* ``task_failed``: any other failure of a GHL task.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_ghl.exceptions import (
    GHLAuthError,
    GHLDailyBudgetExhausted,
    GHLError,
    GHLLocationNotInstalledError,
    GHLScopeError,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GHLAlert:
    """One alert.

    :param kind: the condition (see the module docstring).
    :param message: the one message a person reads: what, where, and what to do.
    :param location_id: the location, when the condition is one location's.
    """

    kind: str
    message: str
    location_id: str | None = None


class GHLHealthAlerts(GHLError, AirflowFailException):
    """What a health check found; raised so the check's task fails (no retry: the next check looks again) and
    its notifier sends each alert.

    :param alerts: the alerts, one per condition and location.
    """

    def __init__(self, alerts: Sequence[GHLAlert]) -> None:
        self.alerts = list(alerts)
        super().__init__("; ".join(a.message for a in self.alerts))


def _where(context: Any) -> tuple[str, str | None]:
    """``dag_id.task_id`` of the callback's task, and the location its map index names (if any)."""
    ti = context.get("ti")
    if ti is None:
        run = context.get("dag_run") or {}
        dag_id = run.get("dag_id") if isinstance(run, dict) else getattr(run, "dag_id", None)
        return str(dag_id or "?"), None
    location = getattr(ti, "rendered_map_index", None) or getattr(context.get("task"), "location_id", None)
    return f"{ti.dag_id}.{ti.task_id}", str(location) if location else None


def alerts_of(context: Any) -> list[GHLAlert]:
    """The alerts a callback's context tells of (none for a task that succeeded or skipped for another reason).

    :param context: the task's context (``exception``, ``ti``, ``task``), or a deadline's (``dag_run``,
        ``deadline``).
    :return: the alerts, in order.
    """
    task, error = context.get("task"), context.get("exception")
    where, location = _where(context)
    if "deadline" in context and error is None:
        run = context.get("dag_run") or {}
        run_id = run.get("run_id") if isinstance(run, dict) else getattr(run, "run_id", None)
        deadline = (context.get("deadline") or {}).get("deadline_time")
        return [
            GHLAlert("deadline_missed", f"GHL run {run_id} of {where} had not finished by its deadline {deadline}.")
        ]
    skipped = getattr(task, "ghl_skip_cause", None)
    if error is None and isinstance(skipped, GHLLocationNotInstalledError):
        location = skipped.location_id or location
        return [GHLAlert("install_gone", f"GHL app no longer installed in location {location}: {skipped} "
                         f"({where} skipped it; install the app again to resume).", location)]  # fmt: skip
    if error is None:
        return []
    if isinstance(error, GHLHealthAlerts):
        return list(error.alerts)
    if isinstance(error, GHLDailyBudgetExhausted):
        message = (
            f"GHL daily budget of location {location or '?'} reached its reserve: {error.remaining} requests left, "
            f"reserve {error.reserve}; {where} stopped. It resets at GHL's next daily reset; set "
            "wait_for_daily_reset=True to wait for it instead of failing."
        )
        return [GHLAlert("daily_budget_reserve", message, location)]
    if isinstance(error, GHLAuthError) and not isinstance(error, GHLScopeError | GHLLocationNotInstalledError):
        return [GHLAlert("token_refused", f"GHL refused the credentials of {where}: {error}", location)]
    if isinstance(error, GHLLocationNotInstalledError):
        location = error.location_id or location
        return [GHLAlert("install_gone", f"GHL app no longer installed in location {location}: {error}", location)]
    return [GHLAlert("task_failed", f"GHL task {where} failed: {type(error).__name__}: {error}", location)]


def _resolve(send: Callable[[str], Any] | str | None) -> Callable[[str], Any] | None:
    if send is None or callable(send):
        return send
    path = str(send).strip()
    if not path:
        return None
    module, _, name = path.replace(":", ".").rpartition(".")
    if not module:
        raise ValueError(f"send: a dotted path to a callable (package.module.function), got {path!r}")
    found = getattr(importlib.import_module(module), name)
    if not callable(found):
        raise ValueError(f"send: {path!r} is not callable")
    return found


class GHLAlertNotifier(BaseNotifier):
    """Sends one message per :class:`GHLAlert` of a callback, through ``send``.

    :param send: a callable taking the message; it sends it, or returns an Airflow notifier (e.g.
        ``lambda message: SlackWebhookNotifier(slack_webhook_conn_id="slack", text=message)``) that is then
        called with the context. Or the dotted import path of such a callable (templated). None or empty: the
        message is logged as an error.
    :param send_variable: instead of ``send``, the name of an Airflow Variable holding that dotted path, read
        when an alert is sent (also in the triggerer, where a deadline's context renders no templates).
    """

    template_fields: Sequence[str] = ("send",)

    def __init__(self, send: Callable[[str], Any] | str | None = None, *, send_variable: str | None = None) -> None:
        super().__init__()
        self.send = send
        self.send_variable = send_variable
        # Only a path is a template: Airflow's templater would call a callable ``send`` as a template.
        self.template_fields = ("send",) if isinstance(send, str) else ()

    def _sender(self) -> Callable[[str], Any] | None:
        if self.send_variable and not self.send:
            from airflow.sdk import Variable

            return _resolve(Variable.get(self.send_variable, default=None))
        return _resolve(self.send)

    def notify(self, context: Any) -> None:
        """Send each alert of ``context``; see :func:`alerts_of`.

        :param context: the callback's context.
        """
        sender = self._sender()
        for alert in alerts_of(context):
            if sender is None:
                log.error("GHL alert (%s): %s", alert.kind, alert.message)
                continue
            backend = sender(alert.message)
            if isinstance(backend, BaseNotifier):
                backend(context)

    async def async_notify(self, context: Any) -> None:
        """The same in the triggerer (deadline alerts).

        :param context: the deadline's context (``dag_run``, ``deadline``).
        """
        self.notify(context)
