"""Request rate limits shared by every worker: requests per second (a sliding one-second log),
per clock hour and per local day (counters), kept per method (`search`, `operations`).

With REDIS_URL set, one Lua script checks and takes a slot atomically, so all workers on all
hosts share the limits; without Redis an in-process limiter does the same for one process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from leadgen.config import Settings
from leadgen.search.errors import QuotaExhausted

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    rps: int
    hourly: int = 0  # 0 = no limit
    daily: int = 0


def limits_from_settings(settings: Settings) -> dict[str, Limits]:
    return {
        "search": Limits(settings.yandex_rps, settings.yandex_hourly_quota, settings.yandex_daily_quota),
        # Operation.Get has its own 10 rps quota and no hourly/daily budget.
        "operations": Limits(settings.yandex_rps),
    }


# KEYS: rps log (zset), hour counter, day counter.
# ARGV: rps, hourly, daily, member, hour ttl, day ttl.
# Returns {1, 0} when taken, {0, wait_ms} when the rps window is full, {-1, 0} hourly, {-2, 0} daily.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rps, hourly, daily = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if hourly > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= hourly then return {-1, 0} end
if daily > 0 and tonumber(redis.call('GET', KEYS[3]) or '0') >= daily then return {-2, 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 1000)
if redis.call('ZCARD', KEYS[1]) >= rps then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(1, tonumber(oldest[2]) + 1000 - now)}
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], 2000)
if hourly > 0 then redis.call('INCR', KEYS[2]); redis.call('EXPIRE', KEYS[2], ARGV[5]) end
if daily > 0 then redis.call('INCR', KEYS[3]); redis.call('EXPIRE', KEYS[3], ARGV[6]) end
return {1, 0}
"""


class RateLimiter:
    """`acquire(kind)`: True when a slot is taken; False when no rps slot freed up within
    `max_wait` seconds; raises QuotaExhausted when the hourly or daily quota is used."""

    def __init__(self, limits: dict[str, Limits], *, tz: ZoneInfo, redis_client: Any = None,
                 prefix: str = "leadgen:ratelimit", max_wait: float = 5.0) -> None:
        self.limits = limits
        self.tz = tz
        self.redis = redis_client
        self.prefix = prefix
        self.max_wait = max_wait
        self._script = redis_client.register_script(_LUA) if redis_client is not None else None
        self._lock = threading.Lock()
        self._log: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, redis_client: Any = None) -> RateLimiter:
        if redis_client is None and settings.redis_url:
            import redis

            redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        return cls(limits_from_settings(settings), tz=settings.tz, redis_client=redis_client,
                   max_wait=settings.yandex_rate_wait_seconds)

    # --- buckets ------------------------------------------------------------------------------
    def _buckets(self, now: datetime) -> tuple[str, str, datetime, datetime]:
        hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
        local = now.astimezone(self.tz)
        day_start = datetime.combine(local.date(), datetime.min.time(), self.tz)
        return (hour.strftime("%Y%m%d%H"), local.strftime("%Y%m%d"), hour + timedelta(hours=1),
                (day_start + timedelta(days=1)).astimezone(timezone.utc))

    def acquire(self, kind: str, max_wait: float | None = None) -> bool:
        limits = self.limits[kind]
        deadline = time.monotonic() + (self.max_wait if max_wait is None else max_wait)
        while True:
            now = datetime.now(timezone.utc)
            hour_key, day_key, next_hour, next_day = self._buckets(now)
            state, wait_ms = (self._try_redis if self.redis is not None else self._try_local)(
                kind, limits, hour_key, day_key)
            if state == 1:
                return True
            if state == -1:
                raise QuotaExhausted(kind, "hourly", next_hour)
            if state == -2:
                raise QuotaExhausted(kind, "daily", next_day)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(wait_ms / 1000.0, remaining))

    def _keys(self, kind: str, hour_key: str, day_key: str) -> list[str]:
        base = f"{self.prefix}:{kind}"
        return [f"{base}:rps", f"{base}:h:{hour_key}", f"{base}:d:{day_key}"]

    def _try_redis(self, kind: str, limits: Limits, hour_key: str, day_key: str) -> tuple[int, int]:
        result = self._script(
            keys=self._keys(kind, hour_key, day_key),
            args=[limits.rps, limits.hourly, limits.daily, uuid.uuid4().hex, 7200, 2 * 86400],
        )
        return int(result[0]), int(result[1])

    def _try_local(self, kind: str, limits: Limits, hour_key: str, day_key: str) -> tuple[int, int]:
        keys = self._keys(kind, hour_key, day_key)
        with self._lock:
            hour_count = self._counts.get(keys[1], 0)
            day_count = self._counts.get(keys[2], 0)
            if limits.hourly and hour_count >= limits.hourly:
                return -1, 0
            if limits.daily and day_count >= limits.daily:
                return -2, 0
            now = time.monotonic()
            window = self._log.setdefault(kind, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limits.rps:
                return 0, max(1, int((window[0] + 1.0 - now) * 1000))
            window.append(now)
            self._counts[keys[1]] = hour_count + 1
            self._counts[keys[2]] = day_count + 1
            return 1, 0

    def usage(self, kind: str) -> dict[str, int]:
        """Requests counted in the current hour and day (for reports and tests)."""
        hour_key, day_key, _h, _d = self._buckets(datetime.now(timezone.utc))
        keys = self._keys(kind, hour_key, day_key)
        if self.redis is not None:
            hour, day = self.redis.mget(keys[1], keys[2])
            return {"hour": int(hour or 0), "day": int(day or 0)}
        with self._lock:
            return {"hour": self._counts.get(keys[1], 0), "day": self._counts.get(keys[2], 0)}
