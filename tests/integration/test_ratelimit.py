"""The shared rate limiter on the real Redis (db 15)."""

from __future__ import annotations

import threading
import uuid
from zoneinfo import ZoneInfo

import pytest
import redis

from leadgen.search.errors import QuotaExhausted
from leadgen.search.ratelimit import Limits, RateLimiter

pytestmark = pytest.mark.redis


@pytest.fixture
def client():
    conn = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    try:
        conn.ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not reachable at 127.0.0.1:6379")
    prefix = f"leadgen-test:{uuid.uuid4().hex}"
    yield conn, prefix
    for key in conn.scan_iter(f"{prefix}:*"):
        conn.delete(key)
    conn.close()


def limiter(conn, prefix, **limits) -> RateLimiter:
    return RateLimiter({"search": Limits(**limits), "operations": Limits(rps=2)},
                       tz=ZoneInfo("Europe/Moscow"), redis_client=conn, prefix=prefix, max_wait=0)


def test_rps_is_shared_between_workers(client) -> None:
    conn, prefix = client
    a, b = limiter(conn, prefix, rps=4), limiter(conn, prefix, rps=4)
    results = []
    barrier = threading.Barrier(10)

    def take(lim):
        barrier.wait()
        results.append(lim.acquire("search"))

    threads = [threading.Thread(target=take, args=(a if i % 2 else b,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 6 + [True] * 4
    assert a.acquire("search", max_wait=3) is True  # waits for the window to slide
    assert a.acquire("operations") and a.acquire("operations") and not a.acquire("operations")


def test_hourly_and_daily_quotas(client) -> None:
    conn, prefix = client
    lim = limiter(conn, prefix, rps=100, hourly=3, daily=100)
    assert all(lim.acquire("search") for _ in range(3))
    with pytest.raises(QuotaExhausted) as info:
        limiter(conn, prefix, rps=100, hourly=3, daily=100).acquire("search")
    assert info.value.window == "hourly"
    assert lim.usage("search") == {"hour": 3, "day": 3}

    daily = limiter(conn, prefix + ":d", rps=100, hourly=100, daily=2)
    daily.acquire("search")
    daily.acquire("search")
    with pytest.raises(QuotaExhausted, match="daily") as info:
        daily.acquire("search")
    assert info.value.retry_at.astimezone(ZoneInfo("Europe/Moscow")).hour == 0


def test_in_process_fallback() -> None:
    lim = RateLimiter({"search": Limits(rps=2, hourly=3)}, tz=ZoneInfo("UTC"), max_wait=0)
    assert lim.acquire("search") and lim.acquire("search")
    assert lim.acquire("search") is False
    assert lim.acquire("search", max_wait=3) is True
    with pytest.raises(QuotaExhausted):
        lim.acquire("search", max_wait=3)
