"""Operators on contacts: get, search, create, update, upsert, delete, duplicate lookup, by business, bulk."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ghl.checks import (
    email_or_phone,
    optional_datetime,
    optional_id,
    require_choice,
    require_id,
    require_id_list,
    require_int,
    require_window,
)
from airflow_provider_ghl.exceptions import GHLApiError, GHLDuplicateContactError, GHLInputError
from airflow_provider_ghl.hooks.ghl import SEARCH_MAX_PAGE_LIMIT, GHLHook
from airflow_provider_ghl.hooks.payloads import contact_fields
from airflow_provider_ghl.hooks.search import search_filters, search_query
from airflow_provider_ghl.operators.base import (
    MAX_XCOM_IDS,
    GHLBaseOperator,
    GHLContactOperator,
    GHLListOperator,
    GHLMissingOkOperator,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

IF_EXISTS = ("fail", "skip", "update")


class GHLGetContactOperator(GHLMissingOkOperator, GHLContactOperator):
    """Get one contact; returns the contact.

    :param contact_id: the contact. (templated)
    :param missing_ok: return None instead of failing when the contact does not exist.
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any] | None:
        """Get the contact.

        :return: the contact, as GHL returns it; None when it does not exist and ``missing_ok`` is set.
        """
        contact_id = args["contact_id"]
        return self.unless_missing(lambda: hook.get_contact(contact_id), args, f"Contact {contact_id}")


class GHLSearchContactsOperator(GHLListOperator):
    """Search a location's contacts (``POST /contacts/search``, every page via ``searchAfter``).

    Returns ``total``, ``count`` and ``ids`` (see :meth:`perform`); with ``output_path`` the contacts themselves
    go to that file. Without it the search may match at most
    :data:`~airflow_provider_ghl.operators.base.MAX_XCOM_IDS` contacts.

    :param query: full-text query (at most 75 characters). (templated)
    :param filters: GHL filter objects, e.g. ``[{"field": "tags", "operator": "contains", "value": "vip"}]``.
        (templated)
    :param since: only contacts whose ``date_field`` is at or after this time. (templated)
    :param until: only contacts whose ``date_field`` is before this time. (templated)
    :param date_field: ``dateUpdated`` or ``dateAdded``: the field ``since``/``until`` apply to. (templated)
    :param page_limit: contacts per request (1..500). (templated)
    """

    template_fields: Sequence[str] = (
        *GHLListOperator.template_fields,
        "query",
        "filters",
        "since",
        "until",
        "date_field",
        "page_limit",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"filters": "json"}

    def __init__(
        self,
        *,
        query: str | None = None,
        filters: list[dict[str, Any]] | str | None = None,
        since: Any = None,
        until: Any = None,
        date_field: str = "dateUpdated",
        page_limit: int = SEARCH_MAX_PAGE_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.filters = filters
        self.since = since
        self.until = until
        self.date_field = date_field
        self.page_limit = page_limit

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args.update(
            query=search_query("query", self.query),
            filters=search_filters("filters", self.filters),
            since=optional_datetime("since", self.since),
            until=optional_datetime("until", self.until),
            date_field=require_choice("date_field", self.date_field, ("dateUpdated", "dateAdded")),
            page_limit=require_int("page_limit", self.page_limit, minimum=1, maximum=SEARCH_MAX_PAGE_LIMIT),
        )
        require_window("since", args["since"], "until", args["until"])
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Read every page of the search, write the contacts to ``output_path`` when given, return the summary.

        :return: ``{"total", "count", "ids"}``: ``total`` is how many contacts GHL says match (from the first
            page; None when GHL does not say), ``count`` how many were read, ``ids`` the first
            :data:`~airflow_provider_ghl.operators.base.MAX_XCOM_IDS` of their ids (plus ``ids_truncated: True``
            when ``ids`` holds fewer than ``count``); with ``output_path`` also ``output_path`` and ``bytes`` (the
            file's size). Without ``output_path``, a ``total`` above ``MAX_XCOM_IDS`` fails the task instead.
        """
        pages = hook.iter_contact_pages(
            since=args["since"],
            until=args["until"],
            date_field=args["date_field"],
            query=args["query"],
            filters=args["filters"],
            page_limit=args["page_limit"],
            location_id=args["location_id"],
        )
        total: int | None = None

        def contacts() -> Any:
            nonlocal total
            for page in pages:
                if total is None:
                    total = page.total
                    if args["output_path"] is None and (total or 0) > MAX_XCOM_IDS:
                        raise GHLInputError(
                            "output_path",
                            f"{total} contacts match, more than the {MAX_XCOM_IDS} ids an XCom may carry; "
                            "set output_path to write them to a file",
                        )
                yield from page.contacts

        summary = self.publish(contacts(), args["output_path"])
        return {"total": total, **summary}


class GHLCreateContactOperator(GHLBaseOperator):
    """Create a contact, safely re-runnable: an existing contact with the same e-mail/phone is found first.

    Returns ``{"action": "created"|"skipped"|"updated", "contact": {...}}``.

    :param fields: the contact in GHL's field names (``firstName``, ``email``, ``phone``, ``tags``,
        ``customFields``...). (templated)
    :param if_exists: when a contact with this e-mail or phone exists (GHL's duplicate lookup): ``fail``,
        ``skip`` (return it unchanged) or ``update`` (update its fields; tags are added, never replaced).
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "fields")
    template_fields_renderers: ClassVar[dict[str, str]] = {"fields": "json"}

    def __init__(self, *, fields: dict[str, Any] | str, if_exists: str = "fail", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields = fields
        self.if_exists = if_exists

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        fields = contact_fields("fields", self.fields)
        args.update(fields=fields, if_exists=require_choice("if_exists", self.if_exists, IF_EXISTS))
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Create the contact (or find it) and return what was done.

        :return: ``{"action", "contact"}``: ``action`` is ``created`` (``contact``: the new contact, as GHL
            returns it), ``skipped`` (the existing contact with this e-mail/phone, read again, unchanged) or
            ``updated`` (that contact after the update; when ``fields`` has ``tags``, its ``tags`` are the list GHL
            reports once they are added). With ``if_exists="fail"`` an existing contact fails the task instead.
        """
        fields, location = args["fields"], args["location_id"]
        existing = None
        if fields.get("email") or fields.get("phone"):
            existing = hook.get_duplicate_contact(
                email=fields.get("email"), phone=fields.get("phone"), location_id=location
            )
        if existing is None:
            try:
                return {"action": "created", "contact": hook.create_contact(fields, location_id=location)}
            except GHLDuplicateContactError as err:
                # Created by someone else between the lookup and the create (or matched on another field).
                if not err.contact_id:
                    raise
                existing = {"id": err.contact_id}
        return self._existing(hook, existing["id"], fields, args["if_exists"])

    def _existing(self, hook: GHLHook, contact_id: str, fields: dict[str, Any], if_exists: str) -> dict[str, Any]:
        if if_exists == "fail":
            raise GHLDuplicateContactError(
                f"Contact {contact_id} already has this e-mail/phone; set if_exists='skip' or 'update' to re-run "
                "safely.",
                meta={"contactId": contact_id},
            )
        if if_exists == "skip":
            self.log.info("Contact %s already exists; skipped (if_exists='skip').", contact_id)
            return {"action": "skipped", "contact": hook.get_contact(contact_id)}
        update = {k: v for k, v in fields.items() if k != "tags"}
        contact = hook.update_contact(contact_id, update) if update else hook.get_contact(contact_id)
        if fields.get("tags"):
            contact["tags"] = hook.add_tags(contact_id, fields["tags"])
        self.log.info("Contact %s already existed; updated (if_exists='update').", contact_id)
        return {"action": "updated", "contact": contact}

    def linked_contact(self, args: Mapping[str, Any], result: Any) -> str | None:
        return result["contact"].get("id")


_UPDATE_FORBIDDEN = {
    "tags": "an update replaces every tag; use GHLAddTagsOperator or GHLRemoveTagsOperator",
    "locationId": "a contact cannot move to another location",
}


class GHLUpdateContactOperator(GHLContactOperator):
    """Update a contact's fields; returns the contact.

    ``tags`` are refused here because GHL's update replaces the whole tag list: use
    :class:`~airflow_provider_ghl.operators.tags.GHLAddTagsOperator` / ``GHLRemoveTagsOperator``.

    :param contact_id: the contact. (templated)
    :param fields: fields to change, in GHL's names. (templated)
    """

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "fields")
    template_fields_renderers: ClassVar[dict[str, str]] = {"fields": "json"}

    def __init__(self, *, fields: dict[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields = fields

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args["fields"] = contact_fields("fields", self.fields, _UPDATE_FORBIDDEN)
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Update the contact's fields.

        :return: the contact after the update, as GHL returns it.
        """
        return hook.update_contact(args["contact_id"], args["fields"])


class GHLUpsertContactOperator(GHLBaseOperator):
    """Create or update the contact matching the e-mail/phone (GHL's upsert, following the location's
    duplicate settings); returns ``{"action": "created"|"updated", "contact": {...}}``, as
    :class:`GHLCreateContactOperator` does.

    :param fields: the contact in GHL's field names; needs ``email`` or ``phone``. (templated)
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "fields")
    template_fields_renderers: ClassVar[dict[str, str]] = {"fields": "json"}

    def __init__(self, *, fields: dict[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields = fields

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args["fields"] = contact_fields("fields", self.fields, match_on_email_or_phone=True)
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Create or update the contact with GHL's upsert and return what was done.

        :return: ``{"action", "contact"}``: ``action`` is ``created`` when GHL says the contact is new (``new``),
            else ``updated``; ``contact`` is the contact as GHL returns it.
        """
        result = hook.upsert_contact(args["fields"], location_id=args["location_id"])
        return {"action": "created" if result.get("new") else "updated", "contact": result.get("contact") or {}}

    def linked_contact(self, args: Mapping[str, Any], result: Any) -> str | None:
        return result["contact"].get("id")


class GHLDeleteContactOperator(GHLMissingOkOperator, GHLContactOperator):
    """Delete a contact; returns ``{"contact_id", "deleted"}``.

    :param contact_id: the contact. (templated)
    :param missing_ok: succeed (``deleted: false``) when the contact does not exist, so a re-run is safe.
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Delete the contact.

        :return: ``{"contact_id", "deleted"}``: ``deleted`` is False when the contact was already gone
            (``missing_ok``).
        """
        return self.run_delete(lambda: hook.delete_contact(args["contact_id"]), args, contact_id=args["contact_id"])

    def linked_contact(self, args: Mapping[str, Any], result: Any) -> str | None:
        return None  # nothing left to open


class GHLGetDuplicateContactOperator(GHLBaseOperator):
    """Find the contact that has this e-mail or phone (GHL's duplicate lookup); returns it, or None.

    :param contact_email: e-mail to match (``email`` is Airflow's alert address). (templated)
    :param contact_phone: phone to match, E.164 (``+15550100``). (templated)

    At least one of ``contact_email`` and ``contact_phone`` is required; neither may contain a space.
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "contact_email", "contact_phone")

    def __init__(self, *, contact_email: str | None = None, contact_phone: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contact_email = contact_email
        self.contact_phone = contact_phone

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args["email"], args["phone"] = email_or_phone(self.contact_email, self.contact_phone)
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any] | None:
        """Look up the contact that has this e-mail or phone.

        :return: that contact, as GHL returns it, or None when there is none.
        """
        return hook.get_duplicate_contact(email=args["email"], phone=args["phone"], location_id=args["location_id"])

    def linked_contact(self, args: Mapping[str, Any], result: Any) -> str | None:
        return result.get("id") if result else None


class GHLGetContactsByBusinessOperator(GHLListOperator):
    """Every contact of a business; returns ``count`` and ``ids`` (see :meth:`perform`), records to ``output_path``.

    :param business_id: the business. (templated)
    :param query: text filter (at most 75 characters). (templated)
    """

    template_fields: Sequence[str] = (*GHLListOperator.template_fields, "business_id", "query")

    def __init__(self, *, business_id: str, query: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.business_id = business_id
        self.query = query

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args.update(business_id=require_id("business_id", self.business_id), query=search_query("query", self.query))
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Read every contact of the business, write them to ``output_path`` when given, return the summary.

        :return: ``{"count", "ids"}``: how many contacts, and the first
            :data:`~airflow_provider_ghl.operators.base.MAX_XCOM_IDS` of their ids (plus ``ids_truncated: True`` when
            ``ids`` holds fewer than ``count``); with ``output_path`` also ``output_path`` and ``bytes`` (the file's
            size).
        """
        contacts = hook.iter_contacts_by_business(
            args["business_id"], query=args["query"], location_id=args["location_id"]
        )
        return self.publish(contacts, args["output_path"])


class GHLBulkUpdateBusinessOperator(GHLBaseOperator):
    """Attach contacts to a business, or detach them (``business_id=None``); returns ``{"count", "business_id"}``.

    :param contact_ids: the contacts. (templated)
    :param business_id: the business, or None to remove the association. (templated)
    """

    template_fields: Sequence[str] = (*GHLBaseOperator.template_fields, "contact_ids", "business_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"contact_ids": "json"}

    def __init__(self, *, contact_ids: list[str] | str, business_id: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.contact_ids = contact_ids
        self.business_id = business_id

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args.update(
            contact_ids=require_id_list("contact_ids", self.contact_ids),
            business_id=optional_id("business_id", self.business_id),
        )
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Attach the contacts to the business, or detach them, in one request.

        :return: ``{"count", "business_id"}``: ``count`` is the number of contact ids sent, ``business_id`` is
            None when they were detached. GHL answering ``success: false`` fails the task instead.
        """
        result = hook.bulk_update_business(args["contact_ids"], args["business_id"], location_id=args["location_id"])
        if not result.get("success", True):
            raise GHLApiError("GHL reported the bulk business update as failed", meta=result)
        return {"count": len(args["contact_ids"]), "business_id": args["business_id"]}


__all__ = [
    "GHLBulkUpdateBusinessOperator",
    "GHLCreateContactOperator",
    "GHLDeleteContactOperator",
    "GHLGetContactOperator",
    "GHLGetContactsByBusinessOperator",
    "GHLGetDuplicateContactOperator",
    "GHLSearchContactsOperator",
    "GHLUpdateContactOperator",
    "GHLUpsertContactOperator",
]
