"""Exceptions of the HighLevel (GHL) provider.

Every error the provider raises is a :class:`GHLError`, itself an ``AirflowException``. Errors that come from a
GHL response carry the request method, the path (never the query string, which can hold e-mail addresses), the
HTTP status, GHL's own message and its ``traceId`` when GHL sent one. No token ever goes into an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class GHLError(AirflowException):
    """Base class of every error raised by the GHL provider."""


class GHLConfigError(GHLError, AirflowFailException):
    """The ``ghl`` connection (or a hook argument) is unusable; retrying the task cannot help."""


class GHLInputError(GHLConfigError, ValueError):
    """An argument (of an operator, a sensor or a hook method) is missing or has the wrong shape; raised before
    any request is sent. Also a ``ValueError``, the type Python code calling the hook would catch.

    :param field: the argument (or ``argument.key``) to fix.
    :param problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class GHLApiError(GHLError):
    """GHL answered with an error, or a request to GHL failed.

    :param message: human-readable summary; built from the other fields when omitted.
    :param method: HTTP method of the failed request.
    :param path: request path (no query string).
    :param status: HTTP status, or None when no response arrived.
    :param ghl_message: GHL's ``message`` (validation errors joined with "; ").
    :param ghl_error: GHL's ``error`` code or label (e.g. ``invalid_grant``, ``Unprocessable Entity``).
    :param trace_id: GHL's ``traceId``, when the response had one.
    :param errors: the individual validation messages of a 422.
    :param meta: GHL's ``meta`` object (e.g. the existing contact of a duplicate).
    """

    #: Whether repeating the same request may succeed (5xx, dropped connection).
    transient: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        status: int | None = None,
        ghl_message: str | None = None,
        ghl_error: str | None = None,
        trace_id: str | None = None,
        errors: Sequence[str] = (),
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.ghl_message = ghl_message
        self.ghl_error = ghl_error
        self.trace_id = trace_id
        self.errors = list(errors)
        self.meta = meta or {}
        super().__init__(message or self._default_message())

    def _default_message(self) -> str:
        where = f"{self.method} {self.path}" if self.method else "GHL request"
        text = f"{where} failed"
        if self.status is not None:
            text += f" with HTTP {self.status}"
        if self.ghl_message:
            text += f": {self.ghl_message}"
        if self.trace_id:
            text += f" (traceId {self.trace_id})"
        return text


class GHLServerError(GHLApiError):
    """A 5xx answer, or a response cut off mid-body: worth repeating when the request cannot duplicate a write."""

    transient = True


class GHLConnectionError(GHLServerError):
    """No usable response: connection refused or dropped mid-response, or a timeout.

    :param sent: False when the request surely never reached GHL (connect failure), so even a write may be
        repeated.
    """

    def __init__(self, message: str | None = None, *, sent: bool = True, **kwargs: Any) -> None:
        self.sent = sent
        super().__init__(message, **kwargs)


class GHLRedirectError(GHLApiError):
    """GHL (or something in between) answered with a redirect. The hook never follows one: the target could be
    another host, and a repeated request would carry the token, a search's filters or an OAuth secret there.

    :param target_host: the host the ``Location`` header pointed to (None when it was relative or missing).
    """

    def __init__(self, message: str | None = None, *, target_host: str | None = None, **kwargs: Any) -> None:
        self.target_host = target_host
        super().__init__(message, **kwargs)


class GHLUnexpectedResponseError(GHLApiError):
    """A 2xx whose body does not have the shape the endpoint documents (e.g. ``{"contacts": null}`` for a
    search page): usually a proxy or a GHL outage. Repeated like a 5xx where the call is safe to repeat."""

    transient = True


class GHLResponseTooLargeError(GHLApiError):
    """The answer was larger than the hook reads (a repeat would be as large, so it is not retried).

    :param limit: the cap in bytes.
    """

    def __init__(self, message: str | None = None, *, limit: int, **kwargs: Any) -> None:
        self.limit = limit
        super().__init__(message, **kwargs)


class GHLAuthError(GHLApiError):
    """The token was refused (401/403) or could not be obtained (OAuth refresh failed, app not authorized)."""


class GHLScopeError(GHLAuthError, AirflowFailException):
    """401 "The token is not authorized for this scope": the token is valid but was made without the scope the
    call needs. Refreshing cannot help; the token must be made (or the app authorized) with that scope.

    :param scope: the scope the call needs (from the provider's endpoint table; GHL does not say which).
    """

    def __init__(self, message: str | None = None, *, scope: str | None = None, **kwargs: Any) -> None:
        self.scope = scope
        super().__init__(message, **kwargs)


class GHLForbiddenError(GHLAuthError):
    """403: the token is valid but has no access to this location (or resource)."""


class GHLLocationNotInstalledError(GHLAuthError):
    """The app is no longer installed in a location, or GHL reports the location as not active: its token
    refresh answers 400 "Location is not active", or the agency cannot mint its token. Nothing can be read
    there until the app is installed again, so a task of that location skips with a warning (the other
    locations' tasks are not affected).

    :param location_id: the location.
    """

    def __init__(self, message: str | None = None, *, location_id: str | None = None, **kwargs: Any) -> None:
        self.location_id = location_id
        super().__init__(message, **kwargs)


class GHLNotFoundError(GHLApiError):
    """The contact, task, note or other resource does not exist (GHL answers 400 "... not found" or 404)."""


class GHLValidationError(GHLApiError):
    """422: GHL rejected the request body or parameters; :attr:`errors` lists its messages."""


class GHLDuplicateContactError(GHLApiError):
    """400 on create: the location does not allow duplicates; :attr:`contact_id` is the existing contact."""

    @property
    def contact_id(self) -> str | None:
        """Id of the contact that already has this e-mail or phone."""
        return self.meta.get("contactId")

    @property
    def matching_field(self) -> str | None:
        """The field that matched (``email`` or ``phone``)."""
        return self.meta.get("matchingField")


class GHLRateLimitError(GHLApiError):
    """429: the burst budget of the token and location is spent.

    :param retry_after: seconds to wait before the window has room again, as far as the response tells.
    """

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class GHLTaskStopped(GHLError):
    """The task was stopped (its ``on_kill``): the hook sends no further request. What a run committed before
    stays committed; a retried task resumes from it."""


class GHLDailyBudgetExhausted(GHLError):
    """The daily request budget is (nearly) spent: stop instead of burning retries until it resets.

    :param remaining: ``X-RateLimit-Daily-Remaining`` as last seen (minus requests sent since).
    :param reserve: the reserve the hook keeps untouched.
    """

    def __init__(self, message: str, *, remaining: int | None, reserve: int) -> None:
        self.remaining = remaining
        self.reserve = reserve
        super().__init__(message)


class GHLBudgetBackendError(GHLError):
    """The shared rate budget cannot be reached (Redis down, budget directory not writable).

    Raised instead of waiting or falling back to a per-process budget, which would storm the shared one.

    :param backend: the connection's ``budget_backend``.
    :param conn_id: the ``ghl`` connection.
    :param detail: what failed.
    """

    def __init__(self, backend: str, conn_id: str, detail: str) -> None:
        self.backend = backend
        self.conn_id = conn_id
        super().__init__(f"GHL rate budget backend {backend!r} of connection {conn_id!r} failed: {detail}")


class GHLWriteBackRowsFailed(GHLError, AirflowFailException):
    """A write-back ended with more failed rows (rejected or refused) than ``max_failed_ratio`` allows.

    The results and the dead-letter file are written before this is raised; a retry would fail the same way,
    so the task is not retried: fix the dead-letter rows and feed them again.

    :param counts: the run's counts (rows per action, failed, writes).
    :param ratio: the failed share of the rows.
    :param allowed: ``max_failed_ratio``.
    """

    def __init__(self, message: str, *, counts: dict[str, int], ratio: float, allowed: float) -> None:
        self.counts = counts
        self.ratio = ratio
        self.allowed = allowed
        super().__init__(message)


class GHLInstallError(GHLError):
    """The app's install flow refused a step: its ``state`` is unknown, used or expired, GHL refused the code,
    or the installation GHL granted is not the connection's. Nothing was stored."""


class GHLInboxError(GHLError):
    """The webhook inbox cannot be opened or used (bad URL, unreachable Redis, a batch that is not the open one).

    :param inbox: the inbox URL (``sqlite:///<path>`` or ``redis://<conn_id>``; no secret in either).
    :param detail: what failed.
    """

    def __init__(self, inbox: str, detail: str) -> None:
        self.inbox = inbox
        self.detail = detail
        super().__init__(f"GHL webhook inbox {inbox!r}: {detail}")


def __getattr__(name: str) -> Any:
    # Names of the previous release (one release, with a warning).
    from airflow_provider_ghl.deprecation import moved_names

    return moved_names(__name__, {"GHLSyncRowsFailed": "airflow_provider_ghl.exceptions:GHLWriteBackRowsFailed"})(name)
