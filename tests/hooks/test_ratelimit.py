"""The limiter's bookkeeping, without the network: budget, headers, others' usage, pauses, daily reserve."""

from __future__ import annotations

import time

import pytest

from airflow_provider_ghl.exceptions import GHLDailyBudgetExhausted
from airflow_provider_ghl.hooks.ratelimit import RateLimiter, limiter_for


def _headers(max_requests: int, remaining: int, interval_ms: int = 10_000, daily: int | None = None) -> dict:
    headers = {
        "X-RateLimit-Max": str(max_requests),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Interval-Milliseconds": str(interval_ms),
    }
    if daily is not None:
        headers |= {"X-RateLimit-Daily-Remaining": str(daily), "X-RateLimit-Limit-Daily": "200000"}
    return headers


def _calibrated(max_requests: int, interval_ms: int) -> RateLimiter:
    """A limiter that has seen one response (headers without budget figures keep the configured budget)."""
    limiter = RateLimiter(max_requests, interval_ms)
    limiter.observe({"X-RateLimit-Max": str(max_requests)}, limiter.acquire())
    return limiter


def test_one_probe_until_the_budget_is_known() -> None:
    limiter = RateLimiter(100, 10_000)
    probe = limiter.acquire()
    assert limiter.reserve() > 0  # the probe is out: wait for its headers
    limiter.release(probe)  # the probe died without an answer: the next request probes
    sent = limiter.acquire()
    limiter.observe(_headers(25, 23, 10_000), sent)
    assert [limiter.reserve() for _ in range(23)] == [0.0] * 23
    assert limiter.reserve() > 0


def test_starts_from_the_configured_budget() -> None:
    limiter = _calibrated(3, 10_000)
    assert [limiter.reserve() for _ in range(2)] == [0.0, 0.0]
    wait = limiter.reserve()
    assert 10.0 < wait <= 10.5  # until the first slot leaves the window, plus the safety margin


def test_follows_the_headers() -> None:
    limiter = RateLimiter(100, 10_000)
    sent = limiter.acquire()
    limiter.observe(_headers(25, 24, 2000), sent)
    assert (limiter.max_requests, limiter.interval) == (25, 2.0)
    assert all(limiter.reserve() == 0.0 for _ in range(24))
    assert limiter.reserve() > 0


def test_counts_requests_made_by_other_processes() -> None:
    limiter = RateLimiter(10, 10_000)
    sent = limiter.acquire()
    # The server saw 8 requests in the window; we sent one: 7 came from elsewhere.
    assert limiter.observe(_headers(10, 2), sent) == 7  # what the hook counts towards its split-budget warning
    assert [limiter.reserve() for _ in range(2)] == [0.0, 0.0]
    assert limiter.reserve() > 0


def test_others_requests_are_reported_once_and_warned_of_once_they_matter() -> None:
    from airflow_provider_ghl.hooks.transport import RequestStats

    limiter = RateLimiter(10, 10_000)
    first = limiter.acquire()
    assert limiter.observe(_headers(10, 6), first) == 3
    second = limiter.acquire()
    assert limiter.observe(_headers(10, 5), second) == 0  # the same 3, already logged as if ours

    stats = RequestStats()
    for _ in range(20):
        stats.record(200)
    # 3 answers that showed others, 6 requests in all (at least 5, and a tenth of our 20): warn once.
    assert [stats.record_foreign(n) for n in (1, 2, 3, 4)] == [False, False, True, False]
    quiet = RequestStats()
    quiet.record(200)
    assert quiet.record_foreign(50) is False  # one answer: a task that ended just before this one


def test_a_header_that_is_no_count_is_ignored() -> None:
    limiter = _calibrated(10, 10_000)
    sent = limiter.acquire()
    assert limiter.observe({"X-RateLimit-Max": "inf", "X-RateLimit-Remaining": "nan"}, sent) == 0
    assert limiter.max_requests == 10


def test_stale_or_own_counts_add_nothing() -> None:
    limiter = RateLimiter(10, 10_000)
    first = limiter.acquire()
    limiter.observe(_headers(10, 9), first)
    later = [limiter.acquire() for _ in range(3)]
    limiter.observe(_headers(10, 8), later[0])  # an early answer: two later requests are still in flight
    assert sum(limiter.reserve() == 0.0 for _ in range(6)) == 6


def test_pause_holds_everyone() -> None:
    limiter = _calibrated(10, 1000)
    limiter.pause(5)
    assert 4.5 < limiter.reserve() <= 5


def test_daily_reserve() -> None:
    limiter = RateLimiter(100, 10_000)
    sent = limiter.acquire()
    limiter.observe(_headers(100, 99, daily=53), sent)
    assert limiter.daily_remaining == 53
    for _ in range(3):
        assert limiter.reserve(daily_reserve=50) == 0.0
    with pytest.raises(GHLDailyBudgetExhausted, match="50 of 200000 left") as info:
        limiter.reserve(daily_reserve=50)
    assert (info.value.remaining, info.value.reserve) == (50, 50)


def test_daily_figure_counts_requests_sent_after_the_observed_one() -> None:
    limiter = _calibrated(100, 10_000)
    first = limiter.acquire()
    limiter.acquire()
    limiter.acquire()
    limiter.observe(_headers(100, 99, daily=1000), first)
    assert limiter.daily_remaining == 998


def test_limiters_are_shared_per_budget() -> None:
    a = limiter_for(("pit", "abc"), 100, 10_000)
    assert limiter_for(("pit", "abc"), 5, 1) is a
    assert limiter_for(("pit", "other"), 100, 10_000) is not a


def test_acquire_returns_send_time() -> None:
    limiter = RateLimiter(1, 60_000)
    before = time.monotonic()
    assert limiter.acquire() >= before


def test_a_slow_round_trip_holds_its_slot_longer_but_counts_once() -> None:
    limiter = _calibrated(3, 10_000)
    limiter.observe(_headers(3, 1, daily=100), limiter.acquire())  # the usual, fast round trip
    sent = limiter.acquire()
    time.sleep(0.03)  # a slow answer: GHL may have counted the request late
    limiter.observe(_headers(3, 0, daily=99), sent)
    assert limiter.daily_remaining == 99  # the request still counts once
    assert limiter.reserve() > 10.0  # the window is full...
    assert limiter._log[-1] > sent + 0.02  # ...and the slow request's slot was moved to when it may have landed
