"""Operators on what a contact is linked to: appointments, followers, campaigns and workflows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ghl.checks import optional_datetime, require_id, require_id_list
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.operators.base import GHLContactListOperator, GHLContactOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class GHLGetAppointmentsOperator(GHLContactListOperator):
    """List a contact's appointments; returns ``count`` and ``ids`` (see :meth:`perform`), records to ``output_path``.

    :param contact_id: the contact. (templated)
    :param output_path: JSON Lines file for the appointments. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Read the contact's appointments, write them to ``output_path`` when given, return the summary.

        :return: ``{"count", "ids"}``: how many appointments, and the first
            :data:`~airflow_provider_ghl.operators.base.MAX_XCOM_IDS` of their ids (plus ``ids_truncated: True`` when
            ``ids`` holds fewer than ``count``); with ``output_path`` also ``output_path`` and ``bytes`` (the file's
            size).
        """
        return self.publish(hook.get_appointments(args["contact_id"]), args["output_path"])


class _GHLFollowersOperator(GHLContactOperator):
    """A contact and a list of user ids."""

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "followers")
    template_fields_renderers: ClassVar[dict[str, str]] = {"followers": "json"}

    def __init__(self, *, followers: list[str] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.followers = followers

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "followers": require_id_list("followers", self.followers)}


class GHLAddFollowersOperator(_GHLFollowersOperator):
    """Add followers (user ids) to a contact; returns ``{"contact_id", "followers", "added"}``.

    :param contact_id: the contact. (templated)
    :param followers: user ids. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Add the followers to the contact.

        :return: ``{"contact_id", "followers", "added"}``: GHL's ``followers`` and ``followersAdded`` (``added`` is
            empty when GHL leaves it out).
        """
        result = hook.add_followers(args["contact_id"], args["followers"])
        return {
            "contact_id": args["contact_id"],
            "followers": result.get("followers", []),
            "added": result.get("followersAdded", []),
        }


class GHLRemoveFollowersOperator(_GHLFollowersOperator):
    """Remove followers from a contact; returns ``{"contact_id", "followers", "removed"}``.

    :param contact_id: the contact. (templated)
    :param followers: user ids. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Remove the followers from the contact.

        :return: ``{"contact_id", "followers", "removed"}``: GHL's ``followers`` and ``followersRemoved``
            (``removed`` is empty when GHL leaves it out).
        """
        result = hook.remove_followers(args["contact_id"], args["followers"])
        return {
            "contact_id": args["contact_id"],
            "followers": result.get("followers", []),
            "removed": result.get("followersRemoved", []),
        }


class _GHLCampaignOperator(GHLContactOperator):
    """A contact and a campaign."""

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "campaign_id")

    def __init__(self, *, campaign_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.campaign_id = campaign_id

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "campaign_id": require_id("campaign_id", self.campaign_id)}


class GHLAddToCampaignOperator(_GHLCampaignOperator):
    """Add a contact to a campaign; returns ``{"contact_id", "campaign_id", "member": true}``.

    :param contact_id: the contact. (templated)
    :param campaign_id: the campaign. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Add the contact to the campaign.

        :return: ``{"contact_id", "campaign_id", "member": True}``; GHL's answer adds nothing.
        """
        hook.add_to_campaign(args["contact_id"], args["campaign_id"])
        return {"contact_id": args["contact_id"], "campaign_id": args["campaign_id"], "member": True}


class GHLRemoveFromCampaignOperator(_GHLCampaignOperator):
    """Remove a contact from a campaign; returns ``{"contact_id", "campaign_id", "member": false}``.

    :param contact_id: the contact. (templated)
    :param campaign_id: the campaign. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Remove the contact from the campaign.

        :return: ``{"contact_id", "campaign_id", "member": False}``; GHL's answer adds nothing.
        """
        hook.remove_from_campaign(args["contact_id"], args["campaign_id"])
        return {"contact_id": args["contact_id"], "campaign_id": args["campaign_id"], "member": False}


class GHLRemoveFromAllCampaignsOperator(GHLContactOperator):
    """Remove a contact from every campaign; returns ``{"contact_id", "removed_from_all_campaigns": true}``.

    :param contact_id: the contact. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Remove the contact from every campaign.

        :return: ``{"contact_id", "removed_from_all_campaigns": True}``; GHL's answer adds nothing.
        """
        hook.remove_from_all_campaigns(args["contact_id"])
        return {"contact_id": args["contact_id"], "removed_from_all_campaigns": True}


class _GHLWorkflowOperator(GHLContactOperator):
    """A contact, a workflow and an optional event start time."""

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "workflow_id", "event_start_time")

    def __init__(self, *, workflow_id: str, event_start_time: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.workflow_id = workflow_id
        self.event_start_time = event_start_time

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args.update(
            workflow_id=require_id("workflow_id", self.workflow_id),
            event_start_time=optional_datetime("event_start_time", self.event_start_time),
        )
        return args


class GHLAddToWorkflowOperator(_GHLWorkflowOperator):
    """Add a contact to a workflow; returns ``{"contact_id", "workflow_id", "member": true}``.

    :param contact_id: the contact. (templated)
    :param workflow_id: the workflow. (templated)
    :param event_start_time: when the workflow's event starts (datetime or ISO-8601). (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Add the contact to the workflow.

        :return: ``{"contact_id", "workflow_id", "member": True}``; GHL's answer adds nothing.
        """
        hook.add_to_workflow(args["contact_id"], args["workflow_id"], event_start_time=args["event_start_time"])
        return {"contact_id": args["contact_id"], "workflow_id": args["workflow_id"], "member": True}


class GHLRemoveFromWorkflowOperator(_GHLWorkflowOperator):
    """Remove a contact from a workflow; returns ``{"contact_id", "workflow_id", "member": false}``.

    :param contact_id: the contact. (templated)
    :param workflow_id: the workflow. (templated)
    :param event_start_time: the event start time the contact was added with. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Remove the contact from the workflow.

        :return: ``{"contact_id", "workflow_id", "member": False}``; GHL's answer adds nothing.
        """
        hook.remove_from_workflow(args["contact_id"], args["workflow_id"], event_start_time=args["event_start_time"])
        return {"contact_id": args["contact_id"], "workflow_id": args["workflow_id"], "member": False}
