"""Proactive client-side rate limiting that follows GHL's ``X-RateLimit-*`` headers.

GHL budgets requests per app (or Private Integration Token) and location: a burst of ``X-RateLimit-Max``
requests per ``X-RateLimit-Interval-Milliseconds`` and a daily allowance. One :class:`RateLimiter` per budget
is shared by every thread and every hook instance of the process (:func:`limiter_for`), so parallel work
stays inside the budget instead of discovering it through 429s. No rate-limit library fits (``limits`` and
``pyrate-limiter`` take a fixed rate at construction): the budget is not configured but learnt from responses,
its size and length change at run time, and other processes spending the same budget only show up in
``X-RateLimit-Remaining``.

This is the ``process`` budget backend; :mod:`~airflow_provider_ghl.hooks.budget` shares the same window
between processes (``host``: a locked state file; ``redis``: a script on a Redis server).
"""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import ClassVar

from airflow_provider_ghl.exceptions import GHLDailyBudgetExhausted

#: How long a daily-budget figure is trusted without a fresh response. GHL does not document when the daily
#: budget resets; after this long one request may go out to learn the new figure instead of stopping forever.
DAILY_FIGURE_TTL = 600.0
#: GHL does not document when the daily budget resets; the sandbox resets it at midnight UTC. A task waiting
#: for the reset resumes this long after midnight, so that clocks a little apart still agree it is a new day.
DAILY_RESET_SLACK = dt.timedelta(minutes=1)
#: How long the one probe request may stay unanswered before another caller may probe (its process may have
#: died: with a shared window, nobody else would ever clear it).
PROBE_LEASE = 60.0
#: GHL counts a request when it arrives, we when we send it: a stamp is held this long past the window, the
#: larger of a fixed floor (s) and a part of the window.
WINDOW_MARGIN_MIN = 0.05
WINDOW_MARGIN_PART = 0.02
#: Share of the window (see :meth:`RateLimiter._adapt_share`): with others seen and at most a
#: 1/``SHARE_FULL_PART`` of the window left (at least one slot), the window is all but full and our share is
#: halved, at most once per ``SHARE_CUT_SPACING`` of a window; while more than 1/``SHARE_ROOM_PART`` of it is
#: left, each answer grows the share by one slot. The Redis backend's scripts are given these same values.
SHARE_FULL_PART = 10
SHARE_CUT_SPACING = 0.25
SHARE_ROOM_PART = 3


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    """A whole-number ``X-RateLimit-*`` header (``"99"``, ``"99.0"``), or None when absent or not a number.

    :param headers: response headers (case-insensitive mapping).
    :param name: the header.
    """
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except (ValueError, OverflowError):  # "nan" and "inf" are floats, but no count
        return None


class RateLimiter:
    """A sliding-window log of request stamps, kept in step with GHL's own count (a sliding window too).

    * Until a response has described the budget, one request at a time (a probe).
    * ``X-RateLimit-Max`` / ``-Interval-Milliseconds`` replace the budget; ``-Remaining`` lower than our own
      count reveals another process on the same budget, whose requests are then logged as if ours.
    * GHL counts a request when it arrives, we when we send it: a margin (2% of the window, at least 50 ms)
      covers the usual gap, and a round trip slower than usual moves its stamp later by the excess.
    * A 429 pauses every caller for the window; the daily figure stops callers at a reserve.

    :param max_requests: starting burst budget.
    :param interval_ms: starting window length.
    """

    #: Whether a step may wait on something outside the process (a file lock, a server's answer): the async
    #: path then runs each step in a thread, off the event loop. This limiter's steps only take its own lock.
    blocking_steps: ClassVar[bool] = False

    def __init__(self, max_requests: int, interval_ms: int) -> None:
        self._lock = threading.Lock()
        self._max = max(1, int(max_requests))
        self._interval = max(1, int(interval_ms)) / 1000
        self._log: list[float] = []  # sorted slot stamps: our requests (restamped when slow) and others'
        self._sends: list[float] = []  # sorted original send stamps of our own requests
        self._paused_until = 0.0
        self._daily_remaining: int | None = None
        self._daily_limit: int | None = None
        self._daily_seen_at = 0.0
        # Until a response has described the budget, one request at a time: the configured budget may be
        # far above the real one (a 25/10 s trial token), and a first burst would only collect 429s.
        self._calibrated = False
        self._probe_until = 0.0  # while in the future, the probe is out
        self._share = 1.0  # of the window; lowered while others are seen spending the budget too
        self._share_cut_at = 0.0
        self._rtts: deque[float] = deque(maxlen=64)  # recent round trips; their minimum is the usual delay

    # -- introspection --------------------------------------------------------------------------------------
    @property
    def max_requests(self) -> int:
        return self._max

    @property
    def interval(self) -> float:
        """Window length in seconds."""
        return self._interval

    @property
    def daily_remaining(self) -> int | None:
        """Daily requests left, from the last response minus requests sent since (None before any)."""
        return self._daily_remaining

    @property
    def _margin(self) -> float:
        return max(WINDOW_MARGIN_MIN, WINDOW_MARGIN_PART * self._interval)

    def _prune(self, now: float) -> None:
        # Keep two windows of history: a response describes the window as it was when its request arrived,
        # and requests still in flight must be compared with entries that have since left our window.
        horizon = now - 2 * (self._interval + self._margin)
        for stamps in (self._log, self._sends):
            cut = bisect.bisect_right(stamps, horizon)
            if cut:
                del stamps[:cut]

    def _in_window(self, now: float) -> int:
        return len(self._log) - bisect.bisect_right(self._log, now - self._interval - self._margin)

    # -- taking slots ---------------------------------------------------------------------------------------
    def _take(self, daily_reserve: int) -> tuple[float, float | None]:
        """(0, send stamp) when a slot was taken, else (seconds to wait, None)."""
        with self._lock:
            now = time.monotonic()
            if self._daily_remaining is not None and now - self._daily_seen_at > DAILY_FIGURE_TTL:
                self._daily_remaining = None  # stale: let a request through to learn today's figure
            if self._daily_remaining is not None and self._daily_remaining <= daily_reserve:
                raise GHLDailyBudgetExhausted(
                    f"GHL daily request budget nearly spent: {self._daily_remaining} of "
                    f"{self._daily_limit or '?'} left, reserve is {daily_reserve}. Stopping until it resets.",
                    remaining=self._daily_remaining,
                    reserve=daily_reserve,
                )
            if now < self._paused_until:
                return self._paused_until - now, None
            if not self._calibrated and now < self._probe_until:
                return 0.02, None
            self._prune(now)
            cap = self._cap
            if self._in_window(now) < cap:
                self._log.append(now)
                self._sends.append(now)
                self._probe_until = 0.0 if self._calibrated else now + PROBE_LEASE
                if self._daily_remaining is not None:
                    self._daily_remaining -= 1
                return 0.0, now
            # The slot of the oldest request in the window frees when it leaves the window.
            return max(self._log[len(self._log) - cap] + self._interval + self._margin - now, 0.001), None

    def reserve(self, daily_reserve: int = 0) -> float:
        """Take a slot and return 0, or take nothing and return how long to wait before asking again.

        :param daily_reserve: raise :class:`GHLDailyBudgetExhausted` once the daily budget left is at or
            under this many requests.
        """
        return self._take(daily_reserve)[0]

    def acquire(self, daily_reserve: int = 0) -> float:
        """Block until a slot is free and take it; returns the slot's stamp, to pass to :meth:`observe`."""
        while True:
            wait, stamp = self._take(daily_reserve)
            if stamp is not None:
                return stamp
            time.sleep(min(wait, 1.0))  # re-check at least every second: a response may raise the budget

    async def acquire_async(self, daily_reserve: int = 0) -> float:
        """:meth:`acquire` for the event loop: same slots, ``asyncio.sleep`` instead of ``time.sleep``, and
        each try in a thread when the steps block (:attr:`blocking_steps`)."""
        while True:
            if self.blocking_steps:
                wait, stamp = await asyncio.to_thread(self._take, daily_reserve)
            else:
                wait, stamp = self._take(daily_reserve)
            if stamp is not None:
                return stamp
            await asyncio.sleep(min(wait, 1.0))

    # -- learning from responses ----------------------------------------------------------------------------
    def observe(self, headers: Mapping[str, str], sent_at: float) -> int:
        """Adopt the budget a response describes and account for requests made by others.

        :param headers: response headers (case-insensitive mapping).
        :param sent_at: the stamp :meth:`acquire` returned for this request.
        :return: how many requests GHL counted that no sharer of this limiter sent and that were not seen
            before (0 when the response says nothing of them).
        """
        foreign = 0
        max_requests = header_int(headers, "X-RateLimit-Max")
        interval_ms = header_int(headers, "X-RateLimit-Interval-Milliseconds")
        remaining = header_int(headers, "X-RateLimit-Remaining")
        daily_remaining = header_int(headers, "X-RateLimit-Daily-Remaining")
        daily_limit = header_int(headers, "X-RateLimit-Limit-Daily")
        with self._lock:
            now = time.monotonic()
            self._probe_until = 0.0
            if max_requests is not None:
                self._calibrated = True
            if max_requests and max_requests > 0:
                self._max = max_requests
            if interval_ms and interval_ms > 0:
                self._interval = interval_ms / 1000
            if daily_limit is not None:
                self._daily_limit = daily_limit
            if daily_remaining is not None:
                # Requests we sent after this one are not in the figure yet.
                later = len(self._sends) - bisect.bisect_right(self._sends, sent_at)
                self._daily_remaining = daily_remaining - later
                self._daily_seen_at = now
            if remaining is not None:
                # The server counted (max - remaining) requests in its window ending at this one's arrival. If
                # that is more than everything we sent since the window began (in flight included: requests
                # overtake each other), another process shares the budget: record its requests as ours.
                server_used = self._max - remaining
                ours = self._in_window(sent_at)
                foreign = server_used - ours
                if foreign > 0:
                    at = bisect.bisect_right(self._log, sent_at)
                    self._log[at:at] = [sent_at] * foreign
                self._adapt_share(foreign > 0, remaining, now)
            self._restamp(sent_at, now)
        return max(foreign, 0)

    @property
    def _cap(self) -> int:
        """Slots of the window this limiter may fill: all of them, until others were seen filling it too."""
        return max(1, round(self._max * self._share))

    def _adapt_share(self, others_seen: bool, remaining: int, now: float) -> None:
        """Additive increase, multiplicative decrease of our share of the window, from GHL's ``Remaining``.

        Logging others' requests only accounts for the past: their next burst lands in the slots our log
        shows free, the window overflows and every spender meets 429s at once, again after each pause. So when
        others are seen and the window is all but full, halve our share (once per quarter window); while a
        third of it stays free, grow by one slot per answer. Spenders that do this converge on sharing the
        window instead of storming it; one alone is back at the whole window within a window's answers.
        The constants are the ``SHARE_*`` ones; the Redis backend's Lua twin is given the same values.
        """
        if others_seen and remaining <= max(1, self._max // SHARE_FULL_PART):
            if now - self._share_cut_at > self._interval * SHARE_CUT_SPACING:
                self._share = max(self._share / 2, 1 / self._max)
                self._share_cut_at = now
        elif remaining * SHARE_ROOM_PART > self._max:
            self._share = min(1.0, self._share + 1 / self._max)

    def _restamp(self, sent_at: float, received_at: float, *, record: bool = True) -> None:
        """Move a request's stamp later by how much slower than usual its round trip was.

        GHL counts a request when it arrives. A round trip at the usual (minimum) duration arrived with the
        usual delay, which shifts every window alike and costs nothing. The excess of a slow round trip may
        have been spent before GHL counted the request (queueing, a busy host), so the slot is held that much
        longer: conservative exactly when delays vary.
        """
        excess = self._excess(sent_at, received_at, record=record)
        if excess <= 0:
            return
        i = bisect.bisect_left(self._log, sent_at)
        if i < len(self._log) and self._log[i] == sent_at:
            del self._log[i]
            bisect.insort(self._log, sent_at + excess)

    def _excess(self, sent_at: float, received_at: float, *, record: bool = True) -> float:
        """How much slower than the usual (minimum) round trip this one was; 0 when within 5 ms of it."""
        rtt = received_at - sent_at
        # With no usual round trip known yet (the first answer, often slowed by connection set-up), assume
        # the whole trip may have passed before GHL counted the request.
        excess = rtt - min(self._rtts, default=0.0)
        if record:  # failures do not teach the usual round trip
            self._rtts.append(rtt)
        return excess if excess > 0.005 else 0.0

    def release(self, sent_at: float) -> None:
        """The request got no response (dropped connection, timeout): free the probe, and hold its slot as
        long as if the failure had been its answer (GHL may well have counted it).

        :param sent_at: the stamp :meth:`acquire` returned for this request.
        """
        with self._lock:
            self._probe_until = 0.0
            self._restamp(sent_at, time.monotonic(), record=False)

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` (after a 429: the window is full, whatever our log says)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def forget_daily_figure(self) -> None:
        """Stop trusting the daily figure (the day has turned): the next request goes out and learns today's."""
        with self._lock:
            self._daily_remaining = None

    def forget(self) -> None:
        """Drop what this limiter shares with others (nothing for a per-process limiter)."""


def next_daily_reset(now: dt.datetime | None = None) -> dt.datetime:
    """When a task stopped by the daily reserve should try again: the next midnight UTC, plus the slack.

    :param now: the current time (aware); default: now.
    """
    now = now or dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(now.astimezone(dt.UTC).date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    return midnight + DAILY_RESET_SLACK


_LIMITERS: dict[Hashable, RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(
    key: Hashable, max_requests: int, interval_ms: int, *, make: Callable[[], RateLimiter] | None = None
) -> RateLimiter:
    """The process-wide limiter of one budget (token principal + location), created on first use.

    :param key: identifies the budget; never the raw token (use a digest).
    :param max_requests: starting budget when the limiter is new; later values come from headers.
    :param interval_ms: starting window when the limiter is new.
    :param make: builds a new limiter (a shared backend's); default: a per-process :class:`RateLimiter`.
    """
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(key)
        if limiter is None:
            limiter = _LIMITERS[key] = make() if make else RateLimiter(max_requests, interval_ms)
        return limiter


def reset_limiters() -> None:
    """Forget every limiter of the process and what they share (tests, or after a token was rotated by hand)."""
    with _LIMITERS_LOCK:
        for limiter in _LIMITERS.values():
            limiter.forget()
        _LIMITERS.clear()
