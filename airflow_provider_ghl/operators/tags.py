"""Operators on contact tags: add, remove, bulk add/remove."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ghl.checks import require_bool, require_id_list, require_str_list
from airflow_provider_ghl.exceptions import GHLApiError
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.payloads import bulk_tag_change
from airflow_provider_ghl.operators.base import MAX_XCOM_IDS, GHLBaseOperator, GHLContactOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class _GHLContactTagsOperator(GHLContactOperator):
    """Shared shape of add/remove tags: a contact and a list of tags; returns ``{"contact_id", "tags"}``."""

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "tags")
    template_fields_renderers: ClassVar[dict[str, str]] = {"tags": "json"}

    def __init__(self, *, tags: list[str] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tags = tags

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "tags": require_str_list("tags", self.tags)}


class GHLAddTagsOperator(_GHLContactTagsOperator):
    """Add tags to a contact (others are kept); returns ``{"contact_id", "tags"}`` with the tags GHL reports.

    :param contact_id: the contact. (templated)
    :param tags: tags to add. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Add the tags to the contact.

        :return: ``{"contact_id", "tags"}``: ``tags`` is the list GHL reports in its answer.
        """
        return {"contact_id": args["contact_id"], "tags": hook.add_tags(args["contact_id"], args["tags"])}


class GHLRemoveTagsOperator(_GHLContactTagsOperator):
    """Remove tags from a contact; returns ``{"contact_id", "tags"}`` with the tags GHL reports.

    :param contact_id: the contact. (templated)
    :param tags: tags to remove. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Remove the tags from the contact.

        :return: ``{"contact_id", "tags"}``: ``tags`` is the list GHL reports in its answer.
        """
        return {"contact_id": args["contact_id"], "tags": hook.remove_tags(args["contact_id"], args["tags"])}


class GHLBulkUpdateTagsOperator(GHLBaseOperator):
    """Add or remove tags on many contacts in one request.

    Returns ``{"action", "succeeded", "failed": [{"contactId", "message"}]}`` (at most
    :data:`~airflow_provider_ghl.operators.base.MAX_XCOM_IDS` failures listed). GHL applies the change per contact;
    with ``fail_on_error`` a contact it could not change fails the task after the others were changed (re-running
    is safe: adding or removing a tag twice changes nothing).

    :param contact_ids: the contacts. (templated)
    :param tags: tags to add or remove. (templated)
    :param action: ``add`` or ``remove``. (templated)
    :param remove_all_tags: with ``remove``: remove every tag (then ``tags`` may be empty).
    :param fail_on_error: fail when GHL reports contacts it could not change.
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "contact_ids", "tags", "action")
    template_fields_renderers: ClassVar[dict[str, str]] = {"contact_ids": "json", "tags": "json"}

    def __init__(
        self,
        *,
        contact_ids: list[str] | str,
        tags: list[str] | str,
        action: str = "add",
        remove_all_tags: bool = False,
        fail_on_error: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.contact_ids = contact_ids
        self.tags = tags
        self.action = action
        self.remove_all_tags = remove_all_tags
        self.fail_on_error = fail_on_error

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args.update(bulk_tag_change(self.action, self.remove_all_tags, self.tags))
        args.update(
            contact_ids=require_id_list("contact_ids", self.contact_ids),
            fail_on_error=require_bool("fail_on_error", self.fail_on_error),
        )
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Add or remove the tags on every contact in one request and return GHL's per-contact outcome.

        :return: ``{"action", "succeeded", "failed"}``: ``succeeded`` counts GHL's per-contact responses that are
            not errors, ``failed`` lists the errors as ``{"contactId", "message"}`` (the first
            :data:`~airflow_provider_ghl.operators.base.MAX_XCOM_IDS`). With ``fail_on_error`` any error fails the
            task instead, so ``failed`` can be non-empty only without it.
        """
        result = hook.bulk_update_tags(
            args["contact_ids"],
            args["tags"],
            args["action"],
            remove_all_tags=args["remove_all_tags"] or None,
            location_id=args["location_id"],
        )
        responses = result.get("responses") or []
        failed = [
            {"contactId": r.get("contactId"), "message": r.get("message")}
            for r in responses
            if r.get("type") == "error"
        ]
        summary = {"action": args["action"], "succeeded": len(responses) - len(failed), "failed": failed[:MAX_XCOM_IDS]}
        if failed and args["fail_on_error"]:
            shown = "; ".join(f"{f['contactId']}: {f['message']}" for f in failed[:5])
            raise GHLApiError(f"GHL could not {args['action']} tags on {len(failed)} contact(s): {shown}", meta=summary)
        return summary
