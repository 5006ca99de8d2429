"""Operator that rotates the OAuth token set of a ``ghl`` connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_ghl.hooks.ghl import GHLHook
from airflow_provider_ghl.hooks.mixin import GHLHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context


class GHLRefreshTokenOperator(GHLHookMixin, BaseOperator):
    """Refresh the OAuth token set of a ``ghl`` connection and persist it to its token Variable.

    Schedule it (e.g. every 6-12 hours, ``max_active_runs=1``, a one-slot pool) to be the single writer of
    the token set: the access token then stays fresh and other tasks never need to refresh inline. GHL refresh
    tokens are single-use; the new set is saved before anything else happens. If another worker rotated the
    set moments before, its newer set is kept instead of spending another refresh.

    Returns non-secret facts only (expiry, scope, location), never a token.

    :param ghl_conn_id: the ``ghl`` connection (``auth_type=oauth``). (templated)
    :param hook_params: extra keyword arguments for :class:`~airflow_provider_ghl.hooks.ghl.GHLHook`; as for
        every GHL operator they win over what the operator derives (see
        :func:`~airflow_provider_ghl.hooks.mixin.hook_kwargs`).
    """

    template_fields: Sequence[str] = ("ghl_conn_id",)

    def __init__(
        self, *, ghl_conn_id: str = GHLHook.default_conn_name, hook_params: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        # The token set is the connection's, whatever the location: this operator takes no location_id (passing
        # one is a TypeError, as before).
        super().__init__(ghl_conn_id=ghl_conn_id, location_id=None, hook_params=hook_params, **kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        """Rotate the connection's token set and return non-secret facts about the set now stored.

        :return: ``{"conn_id", "token_variable", "expires_at", "refreshed_at", "scope", "user_type", "location_id",
            "company_id"}``, never a token, of the set now stored (another worker's newer set when it rotated
            first); ``expires_at`` and ``refreshed_at`` are ISO-8601 UTC times, ``refreshed_at`` None when unknown.
        """
        tokens = self.hook.refresh_oauth_token()
        facts = tokens.describe()
        self.log.info(
            "GHL token set of %s rotated; access token valid until %s.", self.ghl_conn_id, facts["expires_at"]
        )
        return {"conn_id": self.ghl_conn_id, "token_variable": self.hook.config.token_variable, **facts}
