"""What every per-endpoint GHL operator shares: connection arguments, the hook, input checks, the contact link."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, ObjectStoragePath

from airflow_provider_ghl.exceptions import GHLNotFoundError
from airflow_provider_ghl.export.output import resolve_output, write_records_file
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.links import CONTACT_URL_XCOM_KEY, GHLContactLink, contact_url
from airflow_provider_ghl.validation import optional_id, require_id

if TYPE_CHECKING:
    from airflow.sdk import Context

#: Most ids an operator returns through XCom; longer results need ``output_path``.
MAX_XCOM_IDS = 1000


class GHLBaseOperator(BaseOperator):
    """Base of the per-endpoint GHL operators: one validated hook call per task.

    ``execute`` first checks every argument (:meth:`validate`, which names the argument at fault and sends
    nothing), then makes the call (:meth:`call`), then records the app URL of the contact it touched for the
    "GHL contact" link. Writes always run here on the worker; nothing is written from a trigger.

    :param ghl_conn_id: the ``ghl`` connection. (templated)
    :param location_id: location (sub-account); default: the connection's ``location_id``. (templated)
    :param hook_params: extra keyword arguments for :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`.
    """

    template_fields: Sequence[str] = ("ghl_conn_id", "location_id")
    template_fields_renderers: dict[str, str] = {}
    operator_extra_links = (GHLContactLink(),)
    ui_color = "#d6eaff"

    def __init__(
        self,
        *,
        ghl_conn_id: str = GHLHook.default_conn_name,
        location_id: str | None = None,
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ghl_conn_id = ghl_conn_id
        self.location_id = location_id
        self.hook_params = hook_params or {}

    @cached_property
    def hook(self) -> GHLHook:
        return GHLHook(ghl_conn_id=self.ghl_conn_id, location_id=self.location_id or None, **self.hook_params)

    def validate(self) -> dict[str, Any]:
        """Check the (rendered) arguments; return them normalised. Raises ``GHLInputError`` naming the field."""
        return {"location_id": optional_id("location_id", self.location_id)}

    def call(self, hook: GHLHook, args: dict[str, Any], context: Context) -> Any:
        """Make the request(s) with the validated ``args``; the return value goes to XCom."""
        raise NotImplementedError

    def linked_contact(self, args: Mapping[str, Any], result: Any) -> str | None:
        """Id of the contact this task worked on, for the "GHL contact" link."""
        return args.get("contact_id")

    def run_delete(self, delete: Callable[[], Any], *, missing_ok: bool, **ids: str) -> dict[str, Any]:
        """Run ``delete``; with ``missing_ok`` a resource that is already gone counts as done (safe re-runs)."""
        try:
            delete()
        except GHLNotFoundError:
            if not missing_ok:
                raise
            self.log.info("%s already gone (missing_ok).", ids)
            return {**ids, "deleted": False}
        return {**ids, "deleted": True}

    def execute(self, context: Context) -> Any:
        args = self.validate()
        result = self.call(self.hook, args, context)
        contact_id = self.linked_contact(args, result)
        if contact_id:
            location = args.get("location_id") or self.hook.config.location_id
            if not location and isinstance(result, Mapping):
                location = result.get("locationId")
            if location:
                url = contact_url(self.hook.config.app_url, location, contact_id)
                context["ti"].xcom_push(key=CONTACT_URL_XCOM_KEY, value=url)
        return result


class GHLContactOperator(GHLBaseOperator):
    """Base of operators on one contact.

    :param contact_id: the contact. (templated)
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "contact_id")

    def __init__(self, *, contact_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contact_id = contact_id

    def validate(self) -> dict[str, Any]:
        return {**super().validate(), "contact_id": require_id("contact_id", self.contact_id)}


class GHLListOperator(GHLBaseOperator):
    """Base of operators that read a list: XCom gets ids and a count, ``output_path`` gets the records.

    :param output_path: file (``file://``, ``s3://``... or an absolute path; ``.gz`` compresses) to write the
        records to as JSON Lines. Without it only ids and the count are returned, at most
        :data:`MAX_XCOM_IDS` of them. (templated)
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "output_path")

    def __init__(self, *, output_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_path = output_path

    def validate(self) -> dict[str, Any]:
        args = super().validate()
        args["output_path"] = resolve_output(self.output_path) if self.output_path else None
        return args

    def publish(self, records: Iterable[Mapping[str, Any]], output: ObjectStoragePath | None) -> dict[str, Any]:
        """Write ``records`` to ``output`` (when given) and return the XCom summary."""
        ids: list[str] = []
        count = 0

        def counted() -> Iterable[Mapping[str, Any]]:
            nonlocal count
            for record in records:
                count += 1
                if len(ids) < MAX_XCOM_IDS and record.get("id"):
                    ids.append(record["id"])
                yield record

        summary: dict[str, Any] = {}
        if output is not None:
            part = write_records_file(output, counted())
            summary.update(output_path=str(output), bytes=part.bytes)
        else:
            for _ in counted():
                pass
        summary["count"] = count
        summary["ids"] = ids
        if count > len(ids):
            summary["ids_truncated"] = True
            if output is None:
                self.log.warning(
                    "%d records but XCom carries the first %d ids only; set output_path to keep them all.",
                    count,
                    len(ids),
                )
        return summary


class GHLContactListOperator(GHLListOperator, GHLContactOperator):
    """Base of operators that list something of one contact (tasks, notes, appointments).

    :param contact_id: the contact. (templated)
    :param output_path: JSON Lines file for the records. (templated)
    """

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "output_path")
