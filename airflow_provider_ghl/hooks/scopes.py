"""Which OAuth scope each operation needs, and which reads the provider can do without (accelerators).

GHL's OpenAPI files declare one scope per operation (``security``): contact reads need ``contacts.readonly``,
contact writes ``contacts.write``, and the two location-level reads their own scopes. A token made without a
scope gets ``401 "The token is not authorized for this scope."``, which the funnel raises as
:class:`~airflow_provider_ghl.exceptions.GHLScopeError` naming the scope, without spending a refresh token.

The provider needs only ``contacts.readonly`` to read: the custom-field definitions and the location-wide task
search make an export nicer or cheaper, and :class:`ScopeDegradations` lets a task go on without them, warning
once per read and recording what was lost for the manifest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_ghl.exceptions import GHLScopeError
from airflow_provider_ghl.hooks.endpoints import ENDPOINTS, Endpoint

if TYPE_CHECKING:
    from airflow_provider_ghl.hooks.retry import WarningLogger

READ_SCOPE = "contacts.readonly"
WRITE_SCOPE = "contacts.write"
#: Location- and agency-level operations and their scopes (locations.json, oauth.json ``security``).
SCOPES_BY_OPERATION = {
    "get_custom_fields": "locations/customFields.readonly",
    "search_location_tasks": "locations/tasks.readonly",
    # The agency's listing of the app's installs (oauth.json ``security``).
    "get_installed_locations": "oauth.readonly",
}
#: GHL's message of a scope refusal (401).
SCOPE_REFUSAL = "the token is not authorized for this scope"

#: The reads a task can do without, and what it loses then (for the warning and the manifest).
OPTIONAL_READS = {
    "get_custom_fields": (
        "custom-field names: records keep the raw customFields (by field id), without customFieldsByKey"
    ),
    "search_location_tasks": (
        "the location-wide task search: tasks are read per contact (one request per changed contact)"
    ),
}


def operation_scope(operation: str, endpoint: Endpoint | None = None) -> str:
    """The scope ``operation`` needs.

    :param operation: a name of :data:`~airflow_provider_ghl.hooks.endpoints.ENDPOINTS`.
    :param endpoint: its row, when the caller has it at hand.
    """
    if operation in SCOPES_BY_OPERATION:
        return SCOPES_BY_OPERATION[operation]
    return READ_SCOPE if (endpoint or ENDPOINTS[operation]).is_read else WRITE_SCOPE


def is_scope_refusal(status: int, message: str | None) -> bool:
    """Whether an answer is GHL's scope refusal (a 401 a token refresh cannot cure)."""
    return status == 401 and SCOPE_REFUSAL in (message or "").lower()


class ScopeDegradations:
    """The optional reads one task went without for lack of a scope: each warned about once, all recorded.

    :param log: where the warning goes (the task's logger).
    """

    def __init__(self, log: WarningLogger) -> None:
        self.log = log
        self._missing: dict[str, dict[str, str]] = {}

    def lacks(self, operation: str) -> bool:
        """Whether this task already met the scope refusal of ``operation`` (so it need not ask again)."""
        return operation in self._missing

    def without(self, operation: str, err: GHLScopeError, *, lost: str | None = None) -> None:
        """Go on without the optional read ``operation``, which ``err`` refused: warn the first time.

        :param operation: one of :data:`OPTIONAL_READS`.
        :param err: the refusal.
        :param lost: what this task loses, when it is not what :data:`OPTIONAL_READS` says (an export's loss).
        """
        if operation in self._missing:
            return
        scope = err.scope or operation_scope(operation)
        lost = lost or OPTIONAL_READS[operation]
        self._missing[operation] = {"operation": operation, "missing_scope": scope, "lost": lost}
        self.log.warning(
            "The token lacks the scope %s; going on without %s. Add the scope to the token (or the app) to get it.",
            scope,
            lost,
        )

    def as_manifest(self) -> list[dict[str, str]]:
        """What was degraded, for the manifest (empty when nothing was)."""
        return list(self._missing.values())
