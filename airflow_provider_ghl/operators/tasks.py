"""Operators on a contact's tasks: list, get, create, update, complete, delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ghl.checks import optional_id, optional_text, require_bool, require_datetime, require_id
from airflow_provider_ghl.hooks.ghl import GHLHook

# TASK_FIELDS and task_fields are re-exported: they used to live here.
from airflow_provider_ghl.hooks.payloads import task_fields
from airflow_provider_ghl.operators.base import GHLContactListOperator, GHLContactOperator, GHLMissingOkOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class GHLGetTasksOperator(GHLContactListOperator):
    """List a contact's tasks; returns ``count`` and ``ids`` (see :meth:`perform`); the tasks go to ``output_path``.

    :param contact_id: the contact. (templated)
    :param output_path: JSON Lines file for the tasks. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Read the contact's tasks, write them to ``output_path`` when given, return the summary.

        :return: ``{"count", "ids"}``: how many tasks, and the first
            :data:`~airflow_provider_ghl.operators.base.MAX_XCOM_IDS` of their ids (plus ``ids_truncated: True`` when
            ``ids`` holds fewer than ``count``); with ``output_path`` also ``output_path`` and ``bytes`` (the file's
            size).
        """
        return self.publish(hook.get_tasks(args["contact_id"]), args["output_path"])


class _GHLTaskOperator(GHLContactOperator):
    """A contact and one of its tasks."""

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "ghl_task_id")

    # ``task_id`` names the Airflow task, so GHL's task id goes by ``ghl_task_id``.
    def __init__(self, *, ghl_task_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ghl_task_id = ghl_task_id

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "task_id": require_id("ghl_task_id", self.ghl_task_id)}


class GHLGetTaskOperator(_GHLTaskOperator):
    """Get one task; returns the task.

    :param contact_id: the contact. (templated)
    :param ghl_task_id: the GHL task (``task_id`` is the Airflow task's). (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Get the task.

        :return: the task, as GHL returns it.
        """
        return hook.get_task(args["contact_id"], args["task_id"])


class GHLCreateTaskOperator(GHLContactOperator):
    """Create a task on a contact; returns the task.

    :param contact_id: the contact. (templated)
    :param title: task title. (templated)
    :param due_date: due date, a datetime or ISO-8601 string. (templated)
    :param body: description. (templated)
    :param assigned_to: user id. (templated)
    :param completed: whether the task is already done.
    """

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "title", "due_date", "body", "assigned_to")

    def __init__(
        self,
        *,
        title: str,
        due_date: Any,
        body: str | None = None,
        assigned_to: str | None = None,
        completed: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.title = title
        self.due_date = due_date
        self.body = body
        self.assigned_to = assigned_to
        self.completed = completed

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args.update(
            title=optional_text("title", self.title, required=True),
            due_date=require_datetime("due_date", self.due_date),
            body=optional_text("body", self.body) or None,
            assigned_to=optional_id("assigned_to", self.assigned_to),
            completed=require_bool("completed", self.completed),
        )
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Create the task on the contact.

        :return: the new task, as GHL returns it.
        """
        return hook.create_task(
            args["contact_id"],
            title=args["title"],
            due_date=args["due_date"],
            completed=args["completed"],
            body=args["body"],
            assigned_to=args["assigned_to"],
        )


class GHLUpdateTaskOperator(_GHLTaskOperator):
    """Update a task; returns the task.

    :param contact_id: the contact. (templated)
    :param ghl_task_id: the GHL task (``task_id`` is the Airflow task's). (templated)
    :param fields: any of ``title``, ``body``, ``dueDate``, ``completed``, ``assignedTo``. (templated)
    """

    template_fields: Sequence[str] = (*_GHLTaskOperator.template_fields, "fields")
    template_fields_renderers: ClassVar[dict[str, str]] = {"fields": "json"}

    def __init__(self, *, fields: Mapping[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields = fields

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "fields": task_fields("fields", self.fields)}

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Update the task's fields.

        :return: the task after the update, as GHL returns it.
        """
        return hook.update_task(args["contact_id"], args["task_id"], args["fields"])


class GHLCompleteTaskOperator(_GHLTaskOperator):
    """Mark a task completed (or open again); returns the task.

    :param contact_id: the contact. (templated)
    :param ghl_task_id: the GHL task (``task_id`` is the Airflow task's). (templated)
    :param completed: the new state.
    """

    def __init__(self, *, completed: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.completed = completed

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "completed": require_bool("completed", self.completed)}

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Set the task's ``completed`` state.

        :return: the task after the change, as GHL returns it.
        """
        return hook.complete_task(args["contact_id"], args["task_id"], args["completed"])


class GHLDeleteTaskOperator(GHLMissingOkOperator, _GHLTaskOperator):
    """Delete a task; returns ``{"contact_id", "task_id", "deleted"}`` (``task_id`` is GHL's).

    :param contact_id: the contact. (templated)
    :param ghl_task_id: the GHL task (``task_id`` is the Airflow task's). (templated)
    :param missing_ok: succeed (``deleted: false``) when the task does not exist, so a re-run is safe.
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Delete the task.

        :return: ``{"contact_id", "task_id", "deleted"}`` (``task_id`` is GHL's): ``deleted`` is False when the
            task was already gone (``missing_ok``).
        """
        contact_id, task_id = args["contact_id"], args["task_id"]
        return self.run_delete(
            lambda: hook.delete_task(contact_id, task_id), args, contact_id=contact_id, task_id=task_id
        )
