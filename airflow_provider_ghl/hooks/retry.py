"""Which failed attempts of a call are repeated, how long to wait between them, and when to stop.

A 401 answered with a fresh token, and a 429, are always repeated (GHL did nothing) and use up no attempt; a
connection that never reached GHL always; a 5xx, a lost answer or a wrong-shaped 2xx only where the endpoint
row says a repeat cannot duplicate a write. Every call is bounded by ``retry_max_seconds`` as a whole.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

from tenacity import (
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from airflow_provider_ghl import metrics
from airflow_provider_ghl.exceptions import (
    GHLApiError,
    GHLConnectionError,
    GHLRateLimitError,
)
from airflow_provider_ghl.hooks.transport import TokenRecovered


class WarningLogger(Protocol):
    """The one logging method the policy uses (stdlib loggers and Airflow's structlog loggers both have it)."""

    def warning(self, event: Any, *args: Any, **kwargs: Any) -> Any: ...


class RetryPolicy:
    """Which failed attempts to repeat, how long to wait, when to stop; tenacity arguments for one call.

    :param backoff: scale of the exponential backoff with jitter, in seconds.
    :param max_seconds: give up retrying a call after this much time.
    :param log: where retries are logged.
    """

    def __init__(self, *, backoff: float, max_seconds: float, log: WarningLogger) -> None:
        self.backoff = wait_random_exponential(multiplier=backoff, max=30)
        self.max_seconds = max_seconds
        self.log = log

    @staticmethod
    def _should_retry(retry_safe: bool) -> retry_if_exception:
        def predicate(exc: BaseException) -> bool:
            if isinstance(exc, TokenRecovered | GHLRateLimitError):
                return True  # a 401 or 429 means GHL did nothing: always safe to repeat
            if isinstance(exc, GHLConnectionError) and not exc.sent:
                return True
            return isinstance(exc, GHLApiError) and exc.transient and retry_safe

        return retry_if_exception(predicate)

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TokenRecovered):
            return 0.0
        if isinstance(exc, GHLRateLimitError) and exc.retry_after is not None:
            # The shared limiter is paused for the window; just avoid every thread waking at the same instant.
            return random.uniform(0, 0.1)
        return float(self.backoff(retry_state))

    def _log_retry(self, retry_state: RetryCallState) -> None:
        metrics.count("retries")
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TokenRecovered):
            return
        self.log.warning(
            "GHL request failed (attempt %d): %s; retrying in %.2f s",
            retry_state.attempt_number,
            exc,
            retry_state.upcoming_sleep,
        )

    def _stop(self, attempts: int) -> Callable[[RetryCallState], bool]:
        """Stop after ``attempts`` failed attempts or ``max_seconds``. A 429 or a token recovery does not use up
        an attempt: GHL did nothing, and the limiter already waits the window; only time bounds them."""
        failures = 0
        out_of_time = stop_after_delay(self.max_seconds)

        def stop(retry_state: RetryCallState) -> bool:
            nonlocal failures
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            if not isinstance(exc, GHLRateLimitError | TokenRecovered):
                failures += 1
            return failures >= attempts or out_of_time(retry_state)

        return stop

    def tenacity_kwargs(self, *, retry_safe: bool, attempts: int) -> dict[str, Any]:
        """Arguments of ``Retrying`` / ``AsyncRetrying`` for one call of at most ``attempts`` failed attempts."""
        return {
            "retry": self._should_retry(retry_safe),
            "wait": self._wait,
            "stop": self._stop(attempts),
            "before_sleep": self._log_retry,
            "reraise": True,
        }
