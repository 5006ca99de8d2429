"""GHL's rate budget: a sliding burst window and a daily allowance per token principal and location."""

from __future__ import annotations

import time
from collections import deque
from datetime import UTC, datetime


class RateLimiter:
    """Counts accepted requests per key; a refused request (429) does not use budget.

    :param max_requests: requests allowed in any window of ``interval_ms``.
    :param interval_ms: window length.
    :param daily_limit: requests allowed per key per UTC day.
    """

    def __init__(self, max_requests: int, interval_ms: int, daily_limit: int) -> None:
        self.max_requests = max_requests
        self.interval_ms = interval_ms
        self.daily_limit = daily_limit
        self._windows: dict[str, deque[float]] = {}
        self._daily: dict[str, tuple[str, int]] = {}

    def configure(
        self, *, max_requests: int | None = None, interval_ms: int | None = None, daily_limit: int | None = None
    ) -> None:
        if max_requests is not None:
            self.max_requests = max_requests
        if interval_ms is not None:
            self.interval_ms = interval_ms
        if daily_limit is not None:
            self.daily_limit = daily_limit

    def take(self, key: str, *, spend: bool = True) -> tuple[bool, dict[str, str]]:
        """Try to spend one request for ``key``; returns (allowed, X-RateLimit-* headers).

        ``spend=False`` only reads the budget: for a request refused anyway (an injected 429 storm).
        """
        now = time.monotonic()
        window = self._windows.setdefault(key, deque())
        horizon = now - self.interval_ms / 1000
        while window and window[0] <= horizon:
            window.popleft()
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        day, used_today = self._daily.get(key, (today, 0))
        if day != today:
            used_today = 0
        allowed = len(window) < self.max_requests and used_today < self.daily_limit
        if allowed and spend:
            window.append(now)
            used_today += 1
            self._daily[key] = (today, used_today)
        return allowed, self.headers(remaining=self.max_requests - len(window), daily_used=used_today)

    def headers(self, *, remaining: int | None = None, daily_used: int = 0) -> dict[str, str]:
        return {
            "X-RateLimit-Max": str(self.max_requests),
            "X-RateLimit-Remaining": str(max(self.max_requests if remaining is None else remaining, 0)),
            "X-RateLimit-Interval-Milliseconds": str(self.interval_ms),
            "X-RateLimit-Limit-Daily": str(self.daily_limit),
            "X-RateLimit-Daily-Remaining": str(max(self.daily_limit - daily_used, 0)),
        }
