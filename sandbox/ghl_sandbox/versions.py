"""What changes with the ``Version`` header: GHL's API v2 (``2021-07-28``) and v3 (``v3``), as contacts.json and
contacts-v3.json declare them.

Under ``Version: v3`` GHL:

- spells the success flag ``succeeded`` (and still sends the legacy ``succeded`` beside it, both declared),
  except on ``PUT /contacts/{contactId}``, which declares only ``succeeded``;
- names a contact's ``dndSettings`` channels in camelCase (``email``, ``sms``, ``whatsApp``...), in requests
  and in the contact it answers with;
- has ``DELETE /contacts/{contactId}/campaigns/remove-all`` instead of v2's ``.../removeAll``, and no
  ``GET /contacts/`` (the deprecated list);
- speaks OAuth in camelCase (oauth-v3.json): ``clientId``/``grantType``... in the token form (form-encoded or
  JSON), ``accessToken``/``expiresIn``... in the answer, and mints location tokens at
  ``/oauth/location-token`` (with a refresh token) instead of ``/oauth/locationToken``.

Routes keep one behaviour and ask this module how to say it in the caller's version.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from ghl_sandbox.data import DND_CHANNELS

V3 = "v3"
#: v2 channel name -> v3 channel name (``DndSettingsSchema`` -> ``DndSettingsSchemaV3``).
DND_V3_NAMES = {channel: "whatsApp" if channel == "WhatsApp" else channel.lower() for channel in DND_CHANNELS}
_DND_V2_NAMES = {v3: v2 for v2, v3 in DND_V3_NAMES.items()}


def is_v3(request: Request) -> bool:
    """Whether the caller speaks API v3.

    :param request: the request being answered.
    """
    return request.headers.get("version") == V3


def success(request: Request, flag: bool = True, *, v3_spelling_only: bool = False) -> dict[str, bool]:
    """The success flag in the caller's version.

    :param request: the request being answered.
    :param flag: the outcome.
    :param v3_spelling_only: the operation declares only ``succeeded`` in v3 (the contact update).
    """
    if not is_v3(request):
        return {"succeded": flag}
    return {"succeeded": flag} if v3_spelling_only else {"succeeded": flag, "succeded": flag}


def contact_out(request: Request, data: dict[str, Any]) -> dict[str, Any]:
    """A stored contact as the caller's version shows it.

    :param request: the request being answered.
    :param data: the contact as stored (v2 names).
    """
    dnd = data.get("dndSettings")
    if not is_v3(request) or not isinstance(dnd, dict):
        return data
    return {**data, "dndSettings": {DND_V3_NAMES.get(k, k): v for k, v in dnd.items()}}


def contact_fields_in(request: Request, fields: dict[str, Any]) -> dict[str, Any]:
    """Contact fields of a request, in the stored (v2) names.

    :param request: the request being answered.
    :param fields: the fields as the caller sent them.
    """
    dnd = fields.get("dndSettings")
    if not is_v3(request) or not isinstance(dnd, dict):
        return fields
    return {**fields, "dndSettings": {_DND_V2_NAMES.get(k, k): v for k, v in dnd.items()}}


#: v2 (snake_case) -> v3 (camelCase) names of the OAuth fields that differ.
OAUTH_V3_NAMES = {
    name: name.split("_")[0] + "".join(part.title() for part in name.split("_")[1:])
    for name in (
        "client_id", "client_secret", "grant_type", "code", "refresh_token", "user_type", "redirect_uri",
        "access_token", "token_type", "expires_in",
    )
}  # fmt: skip
_OAUTH_V2_NAMES = {v3: v2 for v2, v3 in OAUTH_V3_NAMES.items()}


def oauth_fields_in(request: Request, fields: dict[str, str]) -> dict[str, str]:
    """OAuth request fields in v2's snake_case names, whichever version sent them.

    :param request: the request being answered.
    :param fields: the fields as sent.
    """
    if not is_v3(request):
        return fields
    return {_OAUTH_V2_NAMES.get(k, k): v for k, v in fields.items()}


def oauth_field_names(request: Request) -> dict[str, str]:
    """How the caller's version names the OAuth fields, for validation messages.

    :param request: the request being answered.
    """
    return OAUTH_V3_NAMES if is_v3(request) else {}


def oauth_out(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """An OAuth answer in the caller's version's names.

    :param request: the request being answered.
    :param body: the answer in v2's names.
    """
    if not is_v3(request):
        return body
    return {OAUTH_V3_NAMES.get(k, k): v for k, v in body.items()}
