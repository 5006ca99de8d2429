"""Unconfigured per-process limiters converge: others seen filling the window halve our share of it."""

from __future__ import annotations

import time

from airflow_provider_ghl.hooks.ratelimit import RateLimiter
from tests.hooks.test_ratelimit import _calibrated, _headers


def _answer(limiter: RateLimiter, remaining: int) -> None:
    limiter.observe(_headers(limiter.max_requests, remaining), limiter.acquire())


def test_others_filling_the_window_halve_our_share_then_room_grows_it_back() -> None:
    limiter = _calibrated(10, 10_000)
    assert limiter._cap == 10
    _answer(limiter, 0)  # GHL counted 10; we sent 2: others fill the window
    assert limiter._cap == 5
    limiter.observe(_headers(10, 0), time.monotonic())  # an answer in flight: one cut per reaction, not per answer
    assert limiter._cap == 5

    grower = _calibrated(10, 1)  # a 1 ms window: every slot is free again at once
    grower._share = 0.5
    for _ in range(5):
        _answer(grower, 9)  # room: one slot more per answer
    assert grower._cap == 10


def test_a_limiter_alone_keeps_the_whole_window() -> None:
    limiter = _calibrated(3, 10_000)
    _answer(limiter, 1)
    _answer(limiter, 0)  # our own requests filled it: nobody else is there
    assert limiter._cap == 3
    assert limiter.reserve() > 0
