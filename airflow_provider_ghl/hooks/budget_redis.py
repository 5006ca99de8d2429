"""The ``redis`` budget backend: every process on every machine shares a budget through one Redis server.

The window is the process limiter's (:class:`~airflow_provider_ghl.hooks.ratelimit.RateLimiter`), run as Lua
scripts on the server so that each step is atomic and stamped by the server's clock (machines' clocks
differ): a sorted set of slot stamps, and a hash of the budget GHL's headers describe and of the share of the
window kept while spenders outside the backend show up in ``X-RateLimit-Remaining``. The scripts do the
Python steps in the same order and are given its constants as arguments (one definition, in ``ratelimit.py``);
the backend-parametrized tests in ``tests/hooks/test_budget_wire.py`` hold both to the same behaviour.
``limits`` has a Redis moving window too, but a fixed rate per call and no way to record others' requests or a
pause; GHL's headers change the window's size and length at run time, so the few lines of window logic are
ours. What stays local: the round trips this process measured, turned into how far a slow request's slot moves.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

import redis

from airflow_provider_ghl.exceptions import GHLBudgetBackendError, GHLDailyBudgetExhausted
from airflow_provider_ghl.hooks.ratelimit import (
    DAILY_FIGURE_TTL,
    PROBE_LEASE,
    SHARE_CUT_SPACING,
    SHARE_FULL_PART,
    SHARE_ROOM_PART,
    WINDOW_MARGIN_MIN,
    WINDOW_MARGIN_PART,
    RateLimiter,
    header_int,
)

#: The process limiter's constants, the first arguments of every script (one definition, in ratelimit.py).
_CONSTANTS = (WINDOW_MARGIN_MIN, WINDOW_MARGIN_PART, SHARE_FULL_PART, SHARE_CUT_SPACING, SHARE_ROOM_PART)

# Shared by every script: the budget hash and the slot log, the server's clock, the process limiter's
# constants (ARGV starts with :data:`_CONSTANTS`; the script's own arguments follow, in A), the margin, the cap.
_PRELUDE = """
local h, log = KEYS[1], KEYS[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local MARGIN_MIN, MARGIN_PART = tonumber(ARGV[1]), tonumber(ARGV[2])
local FULL_PART, CUT_SPACING, ROOM_PART = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local A = {unpack(ARGV, 6)}
local function num(field) return tonumber(redis.call('HGET', h, field)) end
local function margin(interval) return math.max(MARGIN_MIN, MARGIN_PART * interval) end
local function keep() redis.call('EXPIRE', h, 172800); redis.call('EXPIRE', log, 172800) end
local function share() return num('share') or 1 end
-- RateLimiter._cap: max(1, round(max * share)), rounding a half to even as Python's round() does.
local function cap(max)
  local x = max * share()
  local whole = math.floor(x)
  if x - whole > 0.5 or (x - whole == 0.5 and whole % 2 == 1) then whole = whole + 1 end
  return math.max(1, whole)
end
"""

# A: daily_reserve, starting max, starting interval (s), daily TTL, probe lease.
_TAKE = (
    _PRELUDE
    + """
redis.call('HSETNX', h, 'max', A[2]); redis.call('HSETNX', h, 'interval', A[3])
local max, interval = num('max'), num('interval')
local daily = num('daily_remaining')
if daily and now - (num('daily_seen_at') or 0) > tonumber(A[4]) then
  redis.call('HDEL', h, 'daily_remaining'); daily = nil
end
if daily and daily <= tonumber(A[1]) then
  return {'exhausted', tostring(daily), redis.call('HGET', h, 'daily_limit') or '?'}
end
local function wait(seconds)
  return {'wait', tostring(seconds), tostring(max), tostring(interval), redis.call('HGET', h, 'share') or '1'}
end
local paused = num('paused_until') or 0
if now < paused then return wait(paused - now) end
local calibrated = redis.call('HGET', h, 'calibrated') == '1'
if not calibrated and now < (num('probe_until') or 0) then return wait(0.02) end
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - 2 * (interval + margin(interval)))
local used, slots = redis.call('ZCOUNT', log, now - interval - margin(interval), '+inf'), cap(max)
if used < slots then
  local member = tostring(redis.call('HINCRBY', h, 'seq', 1))
  redis.call('ZADD', log, now, member)
  if not calibrated then redis.call('HSET', h, 'probe_until', now + tonumber(A[5])) end
  if daily then redis.call('HSET', h, 'daily_remaining', daily - 1) end
  keep()
  return {'taken', member, tostring(max), tostring(interval), tostring(daily and daily - 1 or ''),
          redis.call('HGET', h, 'share') or '1'}
end
-- The slot of the oldest request in the window frees when it leaves the window.
local oldest = tonumber(redis.call('ZRANGE', log, -slots, -slots, 'WITHSCORES')[2])
return wait(math.max(oldest + interval + margin(interval) - now, 0.001))
"""
)

# A: member, excess (s), then the headers or '': max, interval (ms), remaining, daily remaining, daily limit.
_OBSERVE = (
    _PRELUDE
    + """
local member, excess = A[1], tonumber(A[2])
local hmax, hinterval, remaining = tonumber(A[3]), tonumber(A[4]), tonumber(A[5])
local daily, daily_limit = tonumber(A[6]), tonumber(A[7])
redis.call('HSET', h, 'probe_until', 0)
if hmax then redis.call('HSET', h, 'calibrated', '1') end
if hmax and hmax > 0 then redis.call('HSET', h, 'max', hmax) end
if hinterval and hinterval > 0 then redis.call('HSET', h, 'interval', hinterval / 1000) end
if daily_limit then redis.call('HSET', h, 'daily_limit', daily_limit) end
local max, interval = num('max'), num('interval')
local sent = tonumber(redis.call('ZSCORE', log, member))
if daily then
  -- Requests sent after this one are not in the figure yet.
  -- By rank, not by score: a score written into a command loses digits, and would count this one too.
  local later = sent and (redis.call('ZCARD', log) - redis.call('ZRANK', log, member) - 1) or 0
  redis.call('HSET', h, 'daily_remaining', daily - later, 'daily_seen_at', now)
end
if remaining and sent then
  -- More requests in GHL's window than in ours: someone outside this backend spends the budget too.
  local foreign = (max - remaining) - redis.call('ZCOUNT', log, sent - interval - margin(interval), '+inf')
  for _ = 1, math.min(foreign, max) do
    redis.call('ZADD', log, sent, 'f' .. redis.call('HINCRBY', h, 'seq', 1))
  end
  -- RateLimiter._adapt_share: halve the backend's share while they fill the window, grow it back on room.
  if foreign > 0 and remaining <= math.max(1, math.floor(max / FULL_PART)) then
    if now - (num('share_cut_at') or 0) > interval * CUT_SPACING then
      redis.call('HSET', h, 'share', math.max(share() / 2, 1 / max), 'share_cut_at', now)
    end
  elseif remaining * ROOM_PART > max then
    redis.call('HSET', h, 'share', math.min(1, share() + 1 / max))
  end
end
if sent and excess > 0 then redis.call('ZADD', log, 'XX', sent + excess, member) end
keep()
return {tostring(max), tostring(interval), tostring(num('daily_remaining') or ''),
        redis.call('HGET', h, 'share') or '1'}
"""
)

# A: seconds.
_PAUSE = (
    _PRELUDE
    + """
redis.call('HSET', h, 'paused_until', math.max(num('paused_until') or 0, now + tonumber(A[1])))
keep()
return 1
"""
)

# A: member, excess (s).
_RELEASE = (
    _PRELUDE
    + """
redis.call('HSET', h, 'probe_until', 0)
local sent = tonumber(redis.call('ZSCORE', log, A[1]))
if sent and tonumber(A[2]) > 0 then redis.call('ZADD', log, 'XX', sent + tonumber(A[2]), A[1]) end
return 1
"""
)


class RedisRateLimiter(RateLimiter):
    """A :class:`RateLimiter` whose window lives on a Redis server, shared by every process that uses it.

    :param max_requests: starting burst budget, when the budget is new on the server.
    :param interval_ms: starting window length, when the budget is new on the server.
    :param client: a ``redis.Redis`` client (from the Airflow ``redis`` connection).
    :param budget_id: names the budget on the server (a digest; never a token).
    :param conn_id: the ``ghl`` connection, named in errors.
    :param redis_conn_id: the ``redis`` connection, named in errors.
    """

    #: Every step is a round trip to the server (up to ``REDIS_TIMEOUT``): off the event loop on the async path.
    blocking_steps = True

    def __init__(
        self, max_requests: int, interval_ms: int, *, client: Any, budget_id: str, conn_id: str, redis_conn_id: str
    ) -> None:
        super().__init__(max_requests, interval_ms)
        self.conn_id = conn_id
        self.redis_conn_id = redis_conn_id
        # One hash slot for both keys (the braces), so the scripts also run on a Redis Cluster.
        self._keys = [f"ghl:budget:{{{budget_id}}}", f"ghl:budget:{{{budget_id}}}:log"]
        self._client = client
        self._scripts = {name: client.register_script(body) for name, body in _SCRIPTS.items()}
        self._members: dict[float, str] = {}  # local send stamp -> the request's member in the server's log
        self._run("pause", 0)  # fail now, before any request, when the server cannot be reached

    def _error(self, err: redis.RedisError) -> GHLBudgetBackendError:
        return GHLBudgetBackendError(
            "redis", self.conn_id, f"Redis connection {self.redis_conn_id!r}: {type(err).__name__}: {err}"
        )

    def _run(self, script: str, *args: Any) -> Any:
        try:
            return self._scripts[script](keys=self._keys, args=[*_CONSTANTS, *args])
        except redis.RedisError as err:
            raise self._error(err) from None

    def _take(self, daily_reserve: int) -> tuple[float, float | None]:
        reply = [_text(v) for v in self._run("take", daily_reserve, self._max, self._interval,
                                              DAILY_FIGURE_TTL, PROBE_LEASE)]  # fmt: skip
        if reply[0] == "exhausted":
            remaining = int(float(reply[1]))
            raise GHLDailyBudgetExhausted(
                f"GHL daily request budget nearly spent: {remaining} of {reply[2]} left, reserve is "
                f"{daily_reserve}. Stopping until it resets.",
                remaining=remaining,
                reserve=daily_reserve,
            )
        self._max, self._interval = int(float(reply[2])), float(reply[3])
        if reply[0] == "wait":
            self._share = float(reply[4])
            return float(reply[1]), None
        self._share = float(reply[5])
        with self._lock:
            stamp = time.monotonic()
            while stamp in self._members:  # two threads within one clock tick
                stamp += 1e-9
            self._members[stamp] = reply[1]
        self._daily_remaining = int(float(reply[4])) if reply[4] else self._daily_remaining
        return 0.0, stamp

    def _finish(self, sent_at: float, *, record: bool) -> tuple[str, float]:
        with self._lock:
            member = self._members.pop(sent_at, "")
            return member, self._excess(sent_at, time.monotonic(), record=record)

    def observe(self, headers: Mapping[str, str], sent_at: float) -> int:
        """:meth:`RateLimiter.observe` on the server; the requests of other spenders are accounted there, and
        with every machine sharing the window none is expected: 0."""
        member, excess = self._finish(sent_at, record=True)
        names = ("Max", "Interval-Milliseconds", "Remaining", "Daily-Remaining", "Limit-Daily")
        values = [header_int(headers, f"X-RateLimit-{name}") for name in names]
        reply = [_text(v) for v in self._run("observe", member, excess, *("" if v is None else v for v in values))]
        self._max, self._interval = int(float(reply[0])), float(reply[1])
        self._daily_remaining = int(float(reply[2])) if reply[2] else None
        self._share = float(reply[3])
        if values[4] is not None:
            self._daily_limit = values[4]
        return 0

    def release(self, sent_at: float) -> None:
        member, excess = self._finish(sent_at, record=False)
        self._run("release", member, excess)

    def pause(self, seconds: float) -> None:
        self._run("pause", seconds)

    def forget_daily_figure(self) -> None:
        self._daily_remaining = None
        try:
            self._client.hdel(self._keys[0], "daily_remaining")  # one command: atomic on the server
        except redis.RedisError as err:
            raise self._error(err) from None

    def forget(self) -> None:
        with contextlib.suppress(redis.RedisError):  # best effort: the keys expire anyway
            self._client.delete(*self._keys)


_SCRIPTS = {"take": _TAKE, "observe": _OBSERVE, "pause": _PAUSE, "release": _RELEASE}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
