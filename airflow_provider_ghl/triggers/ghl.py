"""Triggers of the GHL sensors, and the conditions that sensors and triggers share.

A *condition* is what one sensor waits for: the single read request to make (a
:class:`~airflow_provider_ghl.hooks.ghl.GHLHook` method and its arguments) and the rule that judges the answer.
A sensor's ``poke`` runs it with the sync hook on the worker; its trigger runs the very same condition with the
hook's async twin in the triggerer. Both modes therefore ask GHL the same question and agree on the answer.

Trigger kwargs are the condition's fields plus the connection id, poll interval, an absolute deadline and
JSON-only hook parameters: plain JSON, never a token. The triggerer reads the connection itself and only reads
the stored OAuth token set (the async hook path never refreshes tokens).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_ghl import exceptions as ghl_exceptions
from airflow_provider_ghl.checks import parse_datetime
from airflow_provider_ghl.exceptions import GHLError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.mixin import hook_kwargs

#: ``(is_done, value)``: whether the condition holds, and the XCom value once it does.
Outcome = tuple[bool, Any]


# ----------------------------------------------------------------------------------------------------------
# Conditions
# ----------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class GHLCondition(ABC):
    """What a GHL sensor waits for: one read request and the rule that judges its answer.

    Fields hold JSON values only, because they travel as trigger kwargs. Sensors validate them before building
    a condition.

    :param location_id: location (sub-account) of the requests; None: the connection's.
    """

    location_id: str | None = None

    @abstractmethod
    def request(self) -> tuple[str, dict[str, Any]]:
        """The :class:`GHLHook` read method to call and its keyword arguments; the async twin is ``a<method>``."""

    @abstractmethod
    def evaluate(self, result: Any) -> Outcome:
        """Judge the method's result: whether the condition holds and, if so, the value for XCom."""

    def check(self, hook: GHLHook) -> Outcome:
        """One check with the sync hook (a sensor's poke, on the worker)."""
        method, kwargs = self.request()
        return self.evaluate(getattr(hook, method)(**kwargs))

    async def acheck(self, hook: GHLHook) -> Outcome:
        """One check with the async hook (a trigger's poll, in the triggerer)."""
        method, kwargs = self.request()
        return self.evaluate(await getattr(hook, f"a{method}")(**kwargs))

    def to_json(self) -> dict[str, Any]:
        """The fields as trigger kwargs."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContactChangedCondition(GHLCondition):
    """At least ``min_count`` contacts with ``since <= dateUpdated < until`` match ``filters`` and ``query``.

    One ``POST /contacts/search`` page per check: GHL applies the ``dateUpdated`` range server-side and reports
    the total, so a check costs one request however many contacts the location has. The value lists the ids
    of the first ``max_ids`` matches, oldest change first.

    :param since: ISO-8601 start of the window (inclusive).
    :param until: ISO-8601 end of the window (exclusive); None: open.
    :param filters: GHL filter objects, AND-ed with the window.
    :param query: GHL full-text query.
    :param min_count: how many matching contacts are needed.
    :param max_ids: page size, and so the most ids the value carries (1..500).
    """

    since: str
    until: str | None = None
    filters: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    query: str | None = None
    min_count: int = 1
    max_ids: int = 100

    def request(self) -> tuple[str, dict[str, Any]]:
        bounds = {"gte": self.since, **({"lt": self.until} if self.until else {})}
        window = {"field": "dateUpdated", "operator": "range", "value": bounds}
        return "search_contacts", {
            "query": self.query,
            "filters": [window, *self.filters],
            "sort": [{"field": "dateUpdated", "direction": "asc"}],
            "page_limit": self.max_ids,
            "location_id": self.location_id,
        }

    def evaluate(self, result: Any) -> Outcome:
        contacts = result.get("contacts") or []
        total = result.get("total")
        if not isinstance(total, int):
            total = len(contacts)
        ids = [c["id"] for c in contacts if c.get("id")][: self.max_ids]
        value = {"ids": ids, "total": total, "since": self.since, "location_id": self.location_id}
        return total >= self.min_count, value


@dataclasses.dataclass(frozen=True, kw_only=True)
class ContactExistsCondition(GHLCondition):
    """GHL's duplicate lookup finds a contact with this e-mail or phone (e-mail is matched first).

    The value is the contact found, as the lookup returns it (what ``GHLGetDuplicateContactOperator`` returns).

    :param email: e-mail to look for.
    :param phone: phone number to look for (E.164).
    """

    email: str | None = None
    phone: str | None = None

    def request(self) -> tuple[str, dict[str, Any]]:
        return "get_duplicate_contact", {"email": self.email, "phone": self.phone, "location_id": self.location_id}

    def evaluate(self, result: Any) -> Outcome:
        if not result:
            return False, None
        return True, dict(result)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TaskCompletedCondition(GHLCondition):
    """The task is completed, or, without ``ghl_task_id``, the contact has tasks and all of them are completed.

    A contact with no task at all does not count as done: tasks a workflow is about to create must not let the
    sensor pass early. The value is the ids of the completed tasks.

    :param contact_id: the contact.
    :param ghl_task_id: the GHL task (named apart from Airflow's ``task_id``); None: every task of the contact.
    """

    contact_id: str
    ghl_task_id: str | None = None

    def request(self) -> tuple[str, dict[str, Any]]:
        if self.ghl_task_id:
            return "get_task", {"contact_id": self.contact_id, "task_id": self.ghl_task_id}
        return "get_tasks", {"contact_id": self.contact_id}

    def evaluate(self, result: Any) -> Outcome:
        tasks = ([result] if result else []) if self.ghl_task_id else list(result or [])
        done = bool(tasks) and all(task.get("completed") is True for task in tasks)
        return done, [task.get("id") for task in tasks]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _NewChildrenCondition(GHLCondition):
    """The contact has child records (notes, appointments) created at or after ``since``.

    The creation time is ``dateAdded``; records without a readable one are not counted. The value is the ids of
    the new records, oldest first.

    :param contact_id: the contact.
    :param since: ISO-8601 time; records added at or after it are new.
    """

    #: The GHLHook method listing the records.
    method: ClassVar[str]

    contact_id: str
    since: str

    def request(self) -> tuple[str, dict[str, Any]]:
        return self.method, {"contact_id": self.contact_id}

    def evaluate(self, result: Any) -> Outcome:
        since = parse_datetime(self.since)
        if since is None:
            raise ValueError(f"since: not an ISO-8601 date-time: {self.since!r}")
        new = sorted(
            (added, item["id"])
            for item in result or []
            if item.get("id") and (added := parse_datetime(item.get("dateAdded"))) is not None and added >= since
        )
        ids = [item_id for _, item_id in new]
        return bool(ids), ids


@dataclasses.dataclass(frozen=True, kw_only=True)
class NewNoteCondition(_NewChildrenCondition):
    """The contact has notes added at or after ``since``."""

    method = "get_notes"


@dataclasses.dataclass(frozen=True, kw_only=True)
class NewAppointmentCondition(_NewChildrenCondition):
    """The contact has appointments added (booked) at or after ``since``."""

    method = "get_appointments"


# ----------------------------------------------------------------------------------------------------------
# Triggers
# ----------------------------------------------------------------------------------------------------------
def error_from_event(event: Mapping[str, Any]) -> GHLError:
    """The exception for an error event: the class the hook raised in the triggerer when it can be rebuilt.

    Keeping the class keeps retry behaviour the same as in poke mode: e.g. a ``GHLConfigError`` is an
    ``AirflowFailException`` and fails without retries.
    """
    message = str(event.get("message") or "the trigger failed without a message")
    error_type = str(event.get("error_type") or "")
    cls = getattr(ghl_exceptions, error_type, None)
    if isinstance(cls, type) and issubclass(cls, GHLError):
        try:
            return cls(message)
        except TypeError:  # a class with more required arguments (GHLInputError, GHLDailyBudgetExhausted)
            pass
    return GHLError(f"{error_type or 'error'}: {message}")


class GHLConditionTrigger(BaseTrigger):
    """Check a GHL condition from the triggerer until it holds, the deadline passes or a request fails.

    Yields exactly one event, then returns:

    - ``{"status": "success", "value": ...}``: the condition holds; ``value`` is the sensor's XCom value;
    - ``{"status": "timeout", "message": ..., "deadline": ...}``: the deadline passed first;
    - ``{"status": "error", "message": ..., "error_type": ...}``: a request failed (after the hook's retries);
      ``error_type`` is the exception class, e.g. ``GHLNotFoundError``.

    Keyword arguments are the fields of :attr:`condition_class` plus:

    :param ghl_conn_id: the ``ghl`` connection.
    :param deadline: absolute ISO-8601 time, fixed by the sensor when it deferred, so a triggerer restart does not
        extend the wait; no request starts after it.
    :param poll_interval: seconds between checks.
    :param hook_params: extra :class:`GHLHook` keyword arguments; only JSON values are kept (others are dropped with
        a warning), so the kwargs stay plain JSON whoever builds the trigger. As for the sensor, they win over the
        condition's ``location_id`` as the hook's default location
        (:func:`~airflow_provider_ghl.hooks.mixin.hook_kwargs`).
    """

    condition_class: ClassVar[type[GHLCondition]]

    def __init__(
        self,
        *,
        ghl_conn_id: str,
        deadline: str,
        poll_interval: float = 60.0,
        hook_params: dict[str, Any] | None = None,
        **condition: Any,
    ) -> None:
        super().__init__()
        self.ghl_conn_id = ghl_conn_id
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.hook_params = self._json_only(hook_params or {})
        self.condition = self.condition_class(**condition)

    def _json_only(self, hook_params: dict[str, Any]) -> dict[str, Any]:
        # Trigger kwargs must be plain JSON (serde refuses anything else); drop what is not, like dbt-cloud does.
        params: dict[str, Any] = {}
        for key, value in hook_params.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                self.log.warning("hook_params[%r] is not JSON and does not reach the trigger's hook.", key)
                continue
            params[key] = value
        return params

    def make_hook(self) -> GHLHook:
        """The hook the trigger polls with: the connection, the condition's location and ``hook_params``."""
        return GHLHook(self.ghl_conn_id, **hook_kwargs(self.condition.location_id, self.hook_params))

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            **self.condition.to_json(),
            "ghl_conn_id": self.ghl_conn_id,
            "deadline": self.deadline,
            "poll_interval": self.poll_interval,
            "hook_params": self.hook_params,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._wait())

    async def _wait(self) -> dict[str, Any]:
        try:
            deadline = parse_datetime(self.deadline)
            if deadline is None:
                raise ValueError(f"deadline: not an ISO-8601 date-time: {self.deadline!r}")
            hook = self.make_hook()
            # The sensor checked just before deferring, so the first poll waits one interval too. (It also keeps
            # the event from arriving while the deferring worker is still exiting, which Airflow 3.3 can
            # mistake for a failure and retry: apache/airflow#67287.)
            while (remaining := (deadline - datetime.now(UTC)).total_seconds()) > 0:
                await asyncio.sleep(min(self.poll_interval, remaining))
                if datetime.now(UTC) >= deadline:
                    break
                done, value = await self.condition.acheck(hook)
                if done:
                    return {"status": "success", "value": value}
                self.log.info(
                    "%s: not met yet; next check in %.1f s", type(self.condition).__name__, self.poll_interval
                )
        except Exception as err:
            # Reported as an event: the sensor fails on the worker with the cause, instead of the triggerer
            # logging a crash the task never sees.
            return {"status": "error", "message": str(err), "error_type": type(err).__name__}
        return {
            "status": "timeout",
            "message": f"{type(self.condition).__name__} was not met by the deadline {self.deadline}",
            "deadline": self.deadline,
        }


class GHLContactChangedTrigger(GHLConditionTrigger):
    """The deferred ``GHLContactChangedSensor``: waits for :class:`ContactChangedCondition`."""

    condition_class = ContactChangedCondition


class GHLContactExistsTrigger(GHLConditionTrigger):
    """The deferred ``GHLContactExistsSensor``: waits for :class:`ContactExistsCondition`."""

    condition_class = ContactExistsCondition


class GHLTaskCompletedTrigger(GHLConditionTrigger):
    """The deferred ``GHLTaskCompletedSensor``: waits for :class:`TaskCompletedCondition`."""

    condition_class = TaskCompletedCondition


class GHLNewNoteTrigger(GHLConditionTrigger):
    """The deferred ``GHLNewNoteSensor``: waits for :class:`NewNoteCondition`."""

    condition_class = NewNoteCondition


class GHLNewAppointmentTrigger(GHLConditionTrigger):
    """The deferred ``GHLNewAppointmentSensor``: waits for :class:`NewAppointmentCondition`."""

    condition_class = NewAppointmentCondition
