"""Errors of the search stage, grouped by what the caller should do next."""

from __future__ import annotations

from datetime import datetime

from leadgen.config import ConfigError


class YandexError(Exception):
    """Base class of the Yandex Search API client errors."""


class TransientError(YandexError):
    """May succeed later (429, 5xx, network): retry with backoff."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PermanentError(YandexError):
    """Will fail again unchanged (4xx): fail the query with the reason."""

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class OperationGone(YandexError):
    """The operation id is unknown or its results expired (404): submit the query again."""


class AuthError(PermanentError):
    """Credentials were rejected (after one refresh) or the IAM exchange failed."""


class AuthConfigError(ConfigError):
    """The configured Yandex credentials cannot be used (missing file, not JSON, no fields)."""


class QuotaExhausted(Exception):
    """The hourly or daily request quota is used up until `retry_at`."""

    def __init__(self, kind: str, window: str, retry_at: datetime) -> None:
        super().__init__(f"{kind}: {window} quota exhausted until {retry_at.isoformat()}")
        self.kind = kind
        self.window = window
        self.retry_at = retry_at


class IntakeError(RuntimeError):
    """The sheet or CSV cannot be read or written as a whole (not a single bad row)."""
