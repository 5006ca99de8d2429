"""Sensors that wait for something to happen in HighLevel (GHL): changed contacts, a contact, completed tasks,
new notes and new appointments.

Every sensor polls one read request per check. With ``deferrable=True`` it checks once on the worker and, if
not done yet, hands the waiting to a trigger (:mod:`airflow_provider_ghl.triggers.ghl`) that runs the same
condition with the async hook in the triggerer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_provider_ghl.checks import (
    email_or_phone,
    interval_datetime,
    location_or_default,
    optional_datetime,
    optional_id,
    require_id,
    require_int,
    require_window,
)
from airflow_provider_ghl.exceptions import GHLError
from airflow_provider_ghl.hooks.ghl import SEARCH_MAX_PAGE_LIMIT, iso_utc
from airflow_provider_ghl.hooks.mixin import GHLHookMixin
from airflow_provider_ghl.hooks.search import search_filters, search_query
from airflow_provider_ghl.triggers.ghl import (
    ContactChangedCondition,
    ContactExistsCondition,
    GHLCondition,
    GHLConditionTrigger,
    GHLContactChangedTrigger,
    GHLContactExistsTrigger,
    GHLNewAppointmentTrigger,
    GHLNewNoteTrigger,
    GHLTaskCompletedTrigger,
    NewAppointmentCondition,
    NewNoteCondition,
    TaskCompletedCondition,
    error_from_event,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Airflow's own deferral timeout is only the backstop for a triggerer that is down: it fires this long after the
#: deadline, so normally the trigger reports the deadline itself, with a clearer message.
DEFERRAL_GRACE = timedelta(seconds=60)


class GHLBaseSensor(GHLHookMixin, BaseSensorOperator):
    """Base of the GHL sensors: one validated read request per check, in poke or deferred mode.

    Arguments are checked before anything is sent (a bad one fails the task at once with
    :class:`~airflow_provider_ghl.exceptions.GHLInputError` naming it). Deferred, the sensor checks once on the
    worker (done: it returns without deferring), then defers to its trigger with an absolute deadline of now +
    ``timeout``; the trigger's outcome comes back through :meth:`execute_complete`: the value goes to XCom as in
    poke mode, a failed request fails the task with GHL's error, and the deadline raises
    ``AirflowSensorTimeout``.

    :param ghl_conn_id: the ``ghl`` connection. (templated)
    :param location_id: location (sub-account); default: the connection's ``location_id``. (templated)
    :param hook_params: extra keyword arguments for :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`; they win
        over what the sensor derives (see :func:`~airflow_provider_ghl.hooks.mixin.hook_kwargs`). Deferred, only
        JSON values reach the trigger.
    :param deferrable: wait in the triggerer instead of a worker slot; default
        ``[operators] default_deferrable``. The trigger polls every ``poke_interval`` seconds.
    :param skip_on_timeout: when ``timeout`` passes without the condition, skip the task instead of failing it.
        Unlike ``soft_fail``, an error (a bad token, GHL failing) still fails the task.
    """

    template_fields_renderers: ClassVar[dict[str, str]] = {}
    #: Trigger that waits for this sensor's condition when deferred.
    trigger_class: ClassVar[type[GHLConditionTrigger]]

    def __init__(
        self,
        *,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        skip_on_timeout: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.skip_on_timeout = skip_on_timeout

    def condition(self, context: Context) -> GHLCondition:
        """Check the rendered arguments and build what this sensor waits for; sends nothing."""
        raise NotImplementedError

    def poke(self, context: Context) -> PokeReturnValue:
        done, value = self.condition(context).check(self.hook)
        return PokeReturnValue(is_done=done, xcom_value=value if done else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as err:
                raise self._timed_out(str(err)) from err
        condition = self.condition(context)
        # Fixed once, here: the trigger gets an absolute time, so a triggerer restart cannot extend the wait.
        deadline = datetime.now(UTC) + timedelta(seconds=self.timeout)
        done, value = condition.check(self.hook)
        if done:
            self.log.info("Success criteria met on the first check; not deferring.")
            return value
        trigger = self.trigger_class(
            ghl_conn_id=self.ghl_conn_id,
            deadline=iso_utc(deadline),
            poll_interval=self.poke_interval,
            hook_params=self.hook_params,  # the trigger keeps only the JSON ones
            **condition.to_json(),
        )
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=deadline - datetime.now(UTC) + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: return its value (pushed to XCom) or raise its error or timeout."""
        if not isinstance(event, Mapping) or event.get("status") not in ("success", "timeout", "error"):
            raise GHLError(f"{self.task_id}: unexpected trigger event {event!r}")
        if event["status"] == "timeout":
            raise self._timed_out(f"{self.task_id}: {event.get('message')}")
        if event["status"] == "error":
            raise error_from_event(event)
        self.log.info("Success criteria met.")
        return event.get("value")

    def _timed_out(self, message: str) -> AirflowSensorTimeout | AirflowSkipException:
        if self.skip_on_timeout:
            self.log.info("Not met before the timeout; skipping (skip_on_timeout).")
            return AirflowSkipException(message)
        return AirflowSensorTimeout(message)


# ----------------------------------------------------------------------------------------------------------
# Sensors
# ----------------------------------------------------------------------------------------------------------
class GHLContactChangedSensor(GHLBaseSensor):
    """Wait until contacts were updated since a time: at least ``min_count`` with ``dateUpdated >= since`` (and
    before ``until``, when given).

    Each check is one ``POST /contacts/search`` filtered server-side on ``dateUpdated`` (AND-ed with
    ``filters`` and ``query``), sorted by ``dateUpdated`` ascending, with ``pageLimit = max_ids``; never a scan.
    XCom: ``{"ids": [...], "total": N, "since": "<ISO>", "location_id": "..."}`` with the ids of the first
    ``max_ids`` matches, oldest change first, and GHL's total.

    :param since: start of the window, inclusive: a datetime or ISO-8601 string; default: the run's
        ``data_interval_start``. (templated)
    :param until: end of the window, exclusive (e.g. ``{{ data_interval_end }}``, so that only changes the run's
        window holds count); default: open. (templated)
    :param filters: GHL search filters AND-ed with the window, e.g.
        ``[{"field": "tags", "operator": "eq", "value": "vip"}]``; a JSON string is accepted. (templated)
    :param query: GHL full-text query (at most 75 characters). (templated)
    :param min_count: how many matching contacts are needed.
    :param max_ids: the most ids returned (the search page size), 1..500.

    Other parameters: see :class:`GHLBaseSensor`.
    """

    template_fields: Sequence[str] = (*GHLBaseSensor.template_fields, "since", "until", "filters", "query")
    template_fields_renderers: ClassVar[dict[str, str]] = {"filters": "json"}
    trigger_class = GHLContactChangedTrigger

    def __init__(
        self,
        *,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        filters: list[dict[str, Any]] | None = None,
        query: str | None = None,
        min_count: int = 1,
        max_ids: int = 100,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.since = since
        self.until = until
        self.filters = filters
        self.query = query
        self.min_count = min_count
        self.max_ids = max_ids

    def condition(self, context: Context) -> ContactChangedCondition:
        since = interval_datetime("since", self.since, context, "data_interval_start")
        until = optional_datetime("until", self.until)
        require_window("since", since, "until", until)
        filters, query = search_filters("filters", self.filters), search_query("query", self.query)
        min_count = require_int("min_count", self.min_count, minimum=1)
        max_ids = require_int("max_ids", self.max_ids, minimum=1, maximum=SEARCH_MAX_PAGE_LIMIT)
        # Resolved now (reads the connection, sends nothing) so XCom names the location that was searched.
        location = location_or_default("location_id", self.location_id, self.hook.config.location_id)
        return ContactChangedCondition(
            since=iso_utc(since),
            until=iso_utc(until) if until else None,
            filters=filters,
            query=query,
            min_count=min_count,
            max_ids=max_ids,
            location_id=location,
        )


class GHLContactExistsSensor(GHLBaseSensor):
    """Wait until a contact with this e-mail or phone exists (``GET /contacts/search/duplicate``).

    GHL's duplicate lookup matches the e-mail first, then the phone. XCom: the contact found, as
    :class:`~airflow_provider_ghl.operators.contacts.GHLGetDuplicateContactOperator` returns it.

    :param contact_email: e-mail to look for (``email`` is Airflow's alert address). (templated)
    :param contact_phone: phone number to look for, E.164 (``+15550100``). (templated)

    At least one of ``contact_email`` and ``contact_phone`` is required. Other parameters: see
    :class:`GHLBaseSensor`.
    """

    template_fields: Sequence[str] = (*GHLBaseSensor.template_fields, "contact_email", "contact_phone")
    trigger_class = GHLContactExistsTrigger

    def __init__(self, *, contact_email: str | None = None, contact_phone: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contact_email = contact_email
        self.contact_phone = contact_phone

    def condition(self, context: Context) -> ContactExistsCondition:
        email, phone = email_or_phone(self.contact_email, self.contact_phone)
        return ContactExistsCondition(
            email=email, phone=phone, location_id=optional_id("location_id", self.location_id)
        )


class GHLTaskCompletedSensor(GHLBaseSensor):
    """Wait until a contact's task is completed, or until all of the contact's tasks are.

    With ``ghl_task_id``: one ``GET /contacts/{contactId}/tasks/{taskId}`` per check, done when ``completed`` is
    true. Without: one ``GET /contacts/{contactId}/tasks``, done when the contact has at least one task and
    none is open; a contact with no task keeps the sensor waiting (tasks about to be created must not let it
    pass). XCom: the ids of the completed tasks.

    :param contact_id: the contact. (templated)
    :param ghl_task_id: the GHL task (``task_id`` is the Airflow task's); default: every task of the contact.
        (templated)

    Other parameters: see :class:`GHLBaseSensor`.
    """

    template_fields: Sequence[str] = (*GHLBaseSensor.template_fields, "contact_id", "ghl_task_id")
    trigger_class = GHLTaskCompletedTrigger

    def __init__(self, *, contact_id: str, ghl_task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contact_id = contact_id
        self.ghl_task_id = ghl_task_id

    def condition(self, context: Context) -> TaskCompletedCondition:
        return TaskCompletedCondition(
            contact_id=require_id("contact_id", self.contact_id),
            ghl_task_id=optional_id("ghl_task_id", self.ghl_task_id),
            location_id=optional_id("location_id", self.location_id),
        )


class _GHLNewChildrenSensor(GHLBaseSensor):
    """Base of the sensors waiting for a contact's child records (notes, appointments) added since a time."""

    template_fields: Sequence[str] = (*GHLBaseSensor.template_fields, "contact_id", "since")
    condition_class: ClassVar[type[NewNoteCondition | NewAppointmentCondition]]

    def __init__(self, *, contact_id: str, since: str | datetime | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contact_id = contact_id
        self.since = since

    def condition(self, context: Context) -> NewNoteCondition | NewAppointmentCondition:
        return self.condition_class(
            contact_id=require_id("contact_id", self.contact_id),
            since=iso_utc(interval_datetime("since", self.since, context, "data_interval_start")),
            location_id=optional_id("location_id", self.location_id),
        )


class GHLNewNoteSensor(_GHLNewChildrenSensor):
    """Wait until a contact has notes added at or after ``since`` (their ``dateAdded``).

    One ``GET /contacts/{contactId}/notes`` per check. XCom: the ids of the new notes, oldest first.

    :param contact_id: the contact. (templated)
    :param since: a datetime or ISO-8601 string; default: the run's ``data_interval_start``. (templated)

    Other parameters: see :class:`GHLBaseSensor`.
    """

    trigger_class = GHLNewNoteTrigger
    condition_class = NewNoteCondition


class GHLNewAppointmentSensor(_GHLNewChildrenSensor):
    """Wait until a contact has appointments added (booked) at or after ``since`` (their ``dateAdded``).

    One ``GET /contacts/{contactId}/appointments`` per check. GHL writes these dates without a zone
    (``2021-07-16 11:00:00``); they are read as UTC. XCom: the ids of the new appointments, oldest first.

    :param contact_id: the contact. (templated)
    :param since: a datetime or ISO-8601 string; default: the run's ``data_interval_start``. (templated)

    Other parameters: see :class:`GHLBaseSensor`.
    """

    trigger_class = GHLNewAppointmentTrigger
    condition_class = NewAppointmentCondition
