"""What every GHL operator that calls the API shares: the hook, input checks before any request, the contact link."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import AssetAlias, BaseOperator, BaseOperatorLink, ObjectStoragePath
from airflow.sdk.exceptions import AirflowSkipException

from airflow_provider_ghl.checks import optional_id, optional_output_location, require_bool, require_id
from airflow_provider_ghl.exceptions import GHLDailyBudgetExhausted, GHLLocationNotInstalledError, GHLNotFoundError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.mixin import GHLHookMixin
from airflow_provider_ghl.hooks.ratelimit import next_daily_reset
from airflow_provider_ghl.links import CONTACT_URL_XCOM_KEY, GHLContactLink, contact_url
from airflow_provider_ghl.outputs.directory import write_records_file

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

T = TypeVar("T")

#: Most ids an operator returns through XCom; longer results need ``output_path``.
MAX_XCOM_IDS = 1000


#: The XCom each GHL task leaves with its requests, 429s and the daily budget it saw (the status page reads it).
REQUESTS_XCOM_KEY = "ghl_requests"


class GHLBaseOperator(GHLHookMixin, BaseOperator):
    """Base of the GHL operators that call the API: validate, then perform, then link the contact.

    ``execute`` first checks every argument (:meth:`validate`, which names the argument at fault with
    :class:`~airflow_provider_ghl.exceptions.GHLInputError` and sends and writes nothing), then makes the
    request(s) (:meth:`perform`), then records the app URL of the contact it touched for the "GHL contact" link.
    Writes always run here on the worker; nothing is written from a trigger.

    :param ghl_conn_id: the ``ghl`` connection. (templated)
    :param location_id: location (sub-account); default: the connection's ``location_id``. (templated)
    :param hook_params: extra keyword arguments for :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`; they win
        over what the operator derives (see :func:`~airflow_provider_ghl.hooks.mixin.hook_kwargs`).
    :param wait_for_daily_reset: when the daily budget is down to the reserve
        (:class:`~airflow_provider_ghl.exceptions.GHLDailyBudgetExhausted`), defer until the daily budget
        resets and run again, holding no worker slot meanwhile, instead of failing.
    :param skip_uninstalled: when GHL reports the app as no longer installed in the location, or the location
        as not active (:class:`~airflow_provider_ghl.exceptions.GHLLocationNotInstalledError`), skip the task
        with one warning instead of failing it; nothing was written. False: fail.
    """

    template_fields_renderers: ClassVar[dict[str, str]] = {}
    operator_extra_links: Collection[BaseOperatorLink] = (GHLContactLink(),)
    #: The asset alias the operator's runs add their outputs to; None: it announces none. It is named in the
    #: task's ``outlets`` by default, so the scheduler accepts the asset events (an alias a task does not
    #: declare gets none).
    output_asset_alias: ClassVar[str | None] = None

    def __init__(self, *, wait_for_daily_reset: bool = False, skip_uninstalled: bool = True, **kwargs: Any) -> None:
        super().__init__(**self.with_default_outlets(kwargs))
        self.wait_for_daily_reset = wait_for_daily_reset
        self.skip_uninstalled = skip_uninstalled

    @classmethod
    def with_default_outlets(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """``kwargs`` with the operator's asset alias as ``outlets`` when none are given."""
        if cls.output_asset_alias is not None and "outlets" not in kwargs:
            return {**kwargs, "outlets": [AssetAlias(cls.output_asset_alias)]}
        return kwargs

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:
        # A mapped task's outlets are only what partial() is given (``__init__`` runs once the task is
        # unmapped, too late for the scheduler), so the default goes in here too.
        return super().partial(**cls.with_default_outlets(kwargs))

    def validate(self, context: Context) -> dict[str, Any]:
        """Check the (rendered) arguments; return them normalised. Raises ``GHLInputError`` naming the field."""
        require_bool("wait_for_daily_reset", self.wait_for_daily_reset)
        require_bool("skip_uninstalled", self.skip_uninstalled)
        return {"location_id": optional_id("location_id", self.location_id)}

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> Any:
        """Make the request(s) with the validated ``args``; the return value goes to XCom."""
        raise NotImplementedError

    def linked_contact(self, args: Mapping[str, Any], result: Any) -> str | None:
        """Id of the contact this task worked on, for the "GHL contact" link."""
        return args.get("contact_id")

    def execute(self, context: Context) -> Any:
        args = self.validate(context)
        started = time.monotonic()
        try:
            result = self.perform(self.hook, args, context)
        except GHLDailyBudgetExhausted as err:
            self.record_requests(context, args)
            if not self.wait_for_daily_reset:
                raise
            moment = next_daily_reset()
            self.log.warning("%s Deferring until %s (wait_for_daily_reset).", err, moment.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=moment), method_name="resume_after_daily_reset")
        except GHLLocationNotInstalledError as err:
            if not self.skip_uninstalled:
                raise
            # An uninstall is GHL's news, not this task's failure: the other locations' tasks go on. The cause
            # stays on the task for its on_skipped_callback (a skip's context carries no exception).
            self.log.warning("Skipping location %s: %s", err.location_id or args.get("location_id"), err)
            self.ghl_skip_cause = err
            raise AirflowSkipException(str(err)) from None
        except BaseException as err:
            self.record_requests(context, args, err)
            raise
        self.record_requests(context, args)
        self.log_summary(args, result, time.monotonic() - started)
        contact_id = self.linked_contact(args, result)
        if contact_id:
            location = args.get("location_id") or self.hook.config.location_id
            if not location and isinstance(result, Mapping):
                location = result.get("locationId")
            if location:
                url = contact_url(self.hook.config.app_url, location, contact_id)
                context["ti"].xcom_push(key=CONTACT_URL_XCOM_KEY, value=url)
        return result

    def record_requests(self, context: Context, args: Mapping[str, Any], error: BaseException | None = None) -> None:
        """Leave this try's requests, 429s and the last daily budget figures as the XCom ``ghl_requests``, also
        when it fails (with the error's first line): the status page reads them. Best effort.

        :param context: the task's context.
        :param args: the validated arguments (their ``location_id``).
        :param error: what ended the try, if it failed.
        """
        ti = context.get("ti")
        if ti is None or "hook" not in self.__dict__:  # no request was made without a hook
            return
        stats = self.hook.request_stats
        record = {
            "location_id": args.get("location_id") or self.hook.config.location_id,
            **stats.as_dict(),
            "daily_remaining": stats.daily_remaining,
            "daily_limit": stats.daily_limit,
        }
        # A failure, not a deferral or a kill (BaseExceptions), nor a skip.
        if isinstance(error, Exception) and not isinstance(error, AirflowSkipException):
            # The provider's errors carry no token (redacted where they are made); one line, bounded.
            record["error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]
        try:
            ti.xcom_push(key=REQUESTS_XCOM_KEY, value=record)
        except Exception as err:  # the record must never fail the task or hide its error
            self.log.debug("Could not record the GHL request counts: %s", err)

    def log_summary(self, args: Mapping[str, Any], result: Any, seconds: float) -> None:
        """One INFO line per task, in the same words for every operator: location, requests, 429s, records (when
        the result counts them) and seconds.

        :param args: the validated arguments.
        :param result: what :meth:`perform` returned.
        :param seconds: how long :meth:`perform` took.
        """
        stats = self.hook.request_stats.as_dict()
        records = result.get("records") if isinstance(result, Mapping) else None
        if isinstance(records, Mapping):  # per dataset
            records = sum(n for n in records.values() if isinstance(n, int))
        self.log.info(
            "GHL summary: location=%s requests=%d responses_429=%d records=%s seconds=%.1f",
            args.get("location_id") or self.hook.config.location_id or "-", stats["requests"],
            stats["responses_429"], records if isinstance(records, int) else "-", seconds,
        )  # fmt: skip

    def on_kill(self) -> None:
        """Stop sending: the hook refuses every further request and closes its connections, so the run ends at
        its next request (threads of a fan-out or a write-back pool included); what it committed stays."""
        hook: GHLHook | None = self.__dict__.get("hook")  # built on first use: none yet, nothing to stop
        if hook is not None:
            self.log.warning("Stopping: no further GHL request will be sent.")
            hook.stop()

    def resume_after_daily_reset(self, context: Context, event: Any = None) -> Any:
        """Run again after the deferred wait for the daily reset (the trigger's ``method_name``).

        :param context: the task's context.
        :param event: the trigger's event (the moment it fired); unused.
        """
        # The figure that stopped the task was yesterday's: let a request learn today's.
        self.hook.forget_daily_figure(self.location_id)
        return self.execute(context)


class GHLContactOperator(GHLBaseOperator):
    """Base of operators on one contact.

    :param contact_id: the contact. (templated)
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "contact_id")

    def __init__(self, *, contact_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contact_id = contact_id

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "contact_id": require_id("contact_id", self.contact_id)}


class GHLMissingOkOperator(GHLBaseOperator):
    """Base of operators whose resource may not exist; list it before the base that names the resource.

    :param missing_ok: a resource that does not exist is not an error (see the operator), so a re-run is safe.
    """

    def __init__(self, *, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.missing_ok = missing_ok

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "missing_ok": require_bool("missing_ok", self.missing_ok)}

    def unless_missing(self, run: Callable[[], T], args: Mapping[str, Any], what: str) -> T | None:
        """``run()``; with ``missing_ok`` a resource that does not exist gives None (logged) instead of the error.

        :param run: the request(s).
        :param args: the validated arguments (``missing_ok``).
        :param what: the resource, for the log (``Contact abc``).
        """
        try:
            return run()
        except GHLNotFoundError:
            if not args["missing_ok"]:
                raise
            self.log.info("%s does not exist (missing_ok).", what)
            return None

    def run_delete(self, delete: Callable[[], Any], args: Mapping[str, Any], **ids: str) -> dict[str, Any]:
        """Run ``delete``; with ``missing_ok`` a resource that is already gone counts as done (safe re-runs).

        :return: ``ids`` and ``deleted`` (False: it was already gone).
        """
        done = self.unless_missing(lambda: delete() or True, args, str(ids))
        return {**ids, "deleted": done is not None}


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

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args["output_path"] = optional_output_location("output_path", self.output_path)
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
