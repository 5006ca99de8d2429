"""Operators on a contact's notes: list, get, create, update, delete."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_ghl.checks import optional_id, optional_text, require_bool, require_id
from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.payloads import note_fields
from airflow_provider_ghl.operators.base import GHLContactListOperator, GHLContactOperator, GHLMissingOkOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class GHLGetNotesOperator(GHLContactListOperator):
    """List a contact's notes; returns ``count`` and ``ids`` (see :meth:`perform`); the notes go to ``output_path``.

    :param contact_id: the contact. (templated)
    :param output_path: JSON Lines file for the notes. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Read the contact's notes, write them to ``output_path`` when given, return the summary.

        :return: ``{"count", "ids"}``: how many notes, and the first
            :data:`~airflow_provider_ghl.operators.base.MAX_XCOM_IDS` of their ids (plus ``ids_truncated: True`` when
            ``ids`` holds fewer than ``count``); with ``output_path`` also ``output_path`` and ``bytes`` (the file's
            size).
        """
        return self.publish(hook.get_notes(args["contact_id"]), args["output_path"])


class _GHLNoteOperator(GHLContactOperator):
    """A contact and one of its notes."""

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "note_id")

    def __init__(self, *, note_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.note_id = note_id

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "note_id": require_id("note_id", self.note_id)}


class GHLGetNoteOperator(_GHLNoteOperator):
    """Get one note; returns the note.

    :param contact_id: the contact. (templated)
    :param note_id: the note. (templated)
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Get the note.

        :return: the note, as GHL returns it.
        """
        return hook.get_note(args["contact_id"], args["note_id"])


class GHLCreateNoteOperator(GHLContactOperator):
    """Add a note to a contact; returns the note.

    :param contact_id: the contact. (templated)
    :param body: the note text. (templated)
    :param title: note title. (templated)
    :param user_id: author (user id). (templated)
    :param color: note color.
    :param pinned: whether the note is pinned.
    """

    template_fields: Sequence[str] = (*GHLContactOperator.template_fields, "body", "title", "user_id")

    def __init__(
        self,
        *,
        body: str,
        title: str | None = None,
        user_id: str | None = None,
        color: str | None = None,
        pinned: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.body = body
        self.title = title
        self.user_id = user_id
        self.color = color
        self.pinned = pinned

    def validate(self, context: Context) -> dict[str, Any]:
        args = super().validate(context)
        args.update(
            body=optional_text("body", self.body, required=True),
            title=optional_text("title", self.title),
            user_id=optional_id("user_id", self.user_id),
            color=optional_text("color", self.color),
            pinned=None if self.pinned is None else require_bool("pinned", self.pinned),
        )
        return args

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Add the note to the contact.

        :return: the new note, as GHL returns it.
        """
        return hook.create_note(
            args["contact_id"],
            args["body"],
            user_id=args["user_id"],
            title=args["title"],
            color=args["color"],
            pinned=args["pinned"],
        )


class GHLUpdateNoteOperator(_GHLNoteOperator):
    """Update a note; returns the note.

    :param contact_id: the contact. (templated)
    :param note_id: the note. (templated)
    :param fields: any of ``body``, ``userId``, ``title``, ``color``, ``pinned``. (templated)
    """

    template_fields: Sequence[str] = (*_GHLNoteOperator.template_fields, "fields")
    template_fields_renderers: ClassVar[dict[str, str]] = {"fields": "json"}

    def __init__(self, *, fields: Mapping[str, Any] | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fields = fields

    def validate(self, context: Context) -> dict[str, Any]:
        return {**super().validate(context), "fields": note_fields("fields", self.fields)}

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Update the note's fields.

        :return: the note after the update, as GHL returns it.
        """
        return hook.update_note(args["contact_id"], args["note_id"], args["fields"])


class GHLDeleteNoteOperator(GHLMissingOkOperator, _GHLNoteOperator):
    """Delete a note; returns ``{"contact_id", "note_id", "deleted"}``.

    :param contact_id: the contact. (templated)
    :param note_id: the note. (templated)
    :param missing_ok: succeed (``deleted: false``) when the note does not exist, so a re-run is safe.
    """

    def perform(self, hook: GHLHook, args: dict[str, Any], context: Context) -> dict[str, Any]:
        """Delete the note.

        :return: ``{"contact_id", "note_id", "deleted"}``: ``deleted`` is False when the note was already gone
            (``missing_ok``).
        """
        contact_id, note_id = args["contact_id"], args["note_id"]
        return self.run_delete(
            lambda: hook.delete_note(contact_id, note_id), args, contact_id=contact_id, note_id=note_id
        )
