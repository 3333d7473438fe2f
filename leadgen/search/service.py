"""One Yandex client (keep-alive connection, cached IAM token) and one rate limiter per process
and configuration; a forked worker builds its own."""

from __future__ import annotations

import os
import threading

from leadgen.config import Settings
from leadgen.search.ratelimit import RateLimiter
from leadgen.search.yandex import YandexSearchClient

_lock = threading.Lock()
_clients: dict[tuple[int, int], YandexSearchClient] = {}
_limiters: dict[tuple[int, int], RateLimiter] = {}


def client_for(settings: Settings) -> YandexSearchClient:
    """Raises AuthConfigError (a ConfigError) when the credentials are unusable."""
    key = (os.getpid(), id(settings))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = YandexSearchClient(settings)
        return client


def limiter_for(settings: Settings) -> RateLimiter:
    key = (os.getpid(), id(settings))
    with _lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = _limiters[key] = RateLimiter.from_settings(settings)
        return limiter


def reset() -> None:
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()
        _limiters.clear()
