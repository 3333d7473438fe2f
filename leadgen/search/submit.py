"""Deferred submit: claim due queries, call `searchAsync`, record the operation.

Query states: pending → submitting (claimed, with a lease) → submitted → completed | failed.
The operation row and the `submitted` state are written in one transaction right after the API
call; if that write fails the operation id is logged loudly (it was paid for).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from leadgen.config import Settings
from leadgen.db import is_postgres
from leadgen.models import SerpOperation, SerpQuery
from leadgen.search.errors import PermanentError, QuotaExhausted, TransientError
from leadgen.search.ratelimit import RateLimiter
from leadgen.search.yandex import YandexSearchClient
from leadgen.windows import night_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubmitOutcome:
    query_id: int
    outcome: str  # submitted | retry | failed | not_claimed | outside_window | rate_limited | quota
    operation_id: str | None = None
    detail: str | None = None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def in_submit_window(settings: Settings, now: datetime) -> bool:
    return not settings.yandex_enforce_night_window or night_window(settings).contains(now)


def _due(now: datetime):  # noqa: ANN202 - a SQL condition
    return (SerpQuery.status == "pending", SerpQuery.scheduled_for <= now,
            or_(SerpQuery.next_attempt_at.is_(None), SerpQuery.next_attempt_at <= now))


def due_query_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of due pending queries, oldest schedule first (the dispatcher's cheap read)."""
    stmt = select(SerpQuery.id).where(*_due(now)).order_by(SerpQuery.scheduled_for, SerpQuery.id)
    return list(session.scalars(stmt.limit(limit)))


def claim_due_queries(session: Session, settings: Settings, now: datetime, *, limit: int = 50,
                      ids: list[int] | None = None) -> list[int]:
    """pending → submitting with a lease, atomically per row; returns the ids this caller won.

    PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED; SQLite: a conditional UPDATE per row.
    Commits.
    """
    lease = now + timedelta(seconds=settings.lease_seconds)
    stmt = select(SerpQuery.id).where(*_due(now))
    if ids is not None:
        stmt = stmt.where(SerpQuery.id.in_(ids))
    stmt = stmt.order_by(SerpQuery.scheduled_for, SerpQuery.id).limit(limit if ids is None else len(ids))
    claimed: list[int] = []
    if is_postgres(session):
        candidates = list(session.scalars(stmt.with_for_update(skip_locked=True)))
        if candidates:
            session.execute(
                update(SerpQuery).where(SerpQuery.id.in_(candidates))
                .values(status="submitting", lease_until=lease, updated_at=now)
                .execution_options(synchronize_session=False))
        claimed = candidates
    else:
        for query_id in session.scalars(stmt).all():
            result = session.execute(
                update(SerpQuery).where(SerpQuery.id == query_id, *_due(now))
                .values(status="submitting", lease_until=lease, updated_at=now)
                .execution_options(synchronize_session=False))
            if result.rowcount == 1:
                claimed.append(query_id)
    session.commit()
    return claimed


def backoff_seconds(settings: Settings, attempts: int) -> float:
    """Exponential: base · 2^(attempts-1), capped, with ±10 % jitter."""
    delay = min(settings.yandex_backoff_max_seconds,
                settings.yandex_backoff_base_seconds * (2 ** max(0, attempts - 1)))
    return delay * random.uniform(0.9, 1.1)


def retry_or_fail(query: SerpQuery, settings: Settings, now: datetime, reason: str,
                  *, min_delay: float | None = None) -> str:
    """Count a failed attempt: back to pending with backoff, or `failed` after the limit."""
    query.attempts = (query.attempts or 0) + 1
    query.last_error = reason[:2000]
    query.lease_until = None
    if query.attempts >= settings.yandex_max_attempts:
        query.status = "failed"
        query.completed_at = now
        query.next_attempt_at = None
        log.warning("query %s failed after %d attempts: %s", query.id, query.attempts, reason)
        return "failed"
    delay = max(backoff_seconds(settings, query.attempts), min_delay or 0.0)
    query.status = "pending"
    query.next_attempt_at = now + timedelta(seconds=delay)
    log.info("query %s: attempt %d failed (%s); retry at %s", query.id, query.attempts, reason,
             query.next_attempt_at.isoformat())
    return "retry"


def release(query: SerpQuery, retry_at: datetime | None, reason: str | None = None) -> None:
    """Back to pending without counting an attempt (no API call was made)."""
    query.status = "pending"
    query.lease_until = None
    query.next_attempt_at = retry_at
    if reason:
        query.last_error = reason[:2000]


def fail(query: SerpQuery, now: datetime, reason: str) -> str:
    query.attempts = (query.attempts or 0) + 1
    query.status = "failed"
    query.last_error = reason[:2000]
    query.lease_until = None
    query.next_attempt_at = None
    query.completed_at = now
    log.warning("query %s failed: %s", query.id, reason)
    return "failed"


def record_operation(session: Session, settings: Settings, query_id: int, operation_id: str,
                     now: datetime) -> None:
    """Operation row + query `submitted`, one transaction; a failed write is retried once on a
    fresh session, then logged loudly with both ids."""

    def write(db: Session) -> None:
        db.add(SerpOperation(query_id=query_id, operation_id=operation_id, status="pending",
                             submitted_at=now,
                             next_poll_at=now + timedelta(seconds=settings.yandex_poll_interval_seconds)))
        db.execute(update(SerpQuery).where(SerpQuery.id == query_id)
                   .values(status="submitted", submitted_at=now, lease_until=None,
                           next_attempt_at=None, updated_at=now)
                   .execution_options(synchronize_session=False))
        db.commit()

    try:
        write(session)
        return
    except Exception as first:
        session.rollback()
        log.critical("LOST-OPERATION-RISK: Yandex operation %s for query %s was created but not "
                     "stored (%s); retrying the write", operation_id, query_id, first)
    try:
        with Session(bind=session.get_bind()) as fresh:
            write(fresh)
        log.warning("operation %s for query %s stored on the second try", operation_id, query_id)
    except Exception as second:
        log.critical("LOST-OPERATION: Yandex operation %s for query %s could not be stored: %s. "
                     "Fetch it by hand within 12 h (GET /operations/%s).",
                     operation_id, query_id, second, operation_id)
        raise
    finally:
        session.expire_all()


def submit_query(session: Session, settings: Settings, query_id: int, client: YandexSearchClient,
                 limiter: RateLimiter, now: datetime | None = None) -> SubmitOutcome:
    """Claim one due query and submit it. Safe to run twice: only one caller wins the claim."""
    now = now or utcnow()
    if not in_submit_window(settings, now):
        return SubmitOutcome(query_id, "outside_window")
    if not claim_due_queries(session, settings, now, ids=[query_id]):
        return SubmitOutcome(query_id, "not_claimed")
    query = session.get(SerpQuery, query_id, populate_existing=True)
    assert query is not None
    try:
        if not limiter.acquire("search"):
            release(query, now + timedelta(seconds=1))
            session.commit()
            return SubmitOutcome(query_id, "rate_limited")
    except QuotaExhausted as exc:
        release(query, exc.retry_at, str(exc))
        session.commit()
        log.warning("query %s deferred: %s", query_id, exc)
        return SubmitOutcome(query_id, "quota", detail=str(exc))
    try:
        operation_id = client.search_async(query.query_text, query.region_id, query.page)
    except TransientError as exc:
        outcome = retry_or_fail(query, settings, now, f"searchAsync: {exc}",
                                min_delay=exc.retry_after)
        session.commit()
        return SubmitOutcome(query_id, outcome, detail=str(exc))
    except PermanentError as exc:
        outcome = fail(query, now, f"searchAsync: {exc}")
        session.commit()
        return SubmitOutcome(query_id, outcome, detail=str(exc))
    except BaseException:
        release(query, None)  # e.g. a configuration error: nothing was sent
        session.commit()
        raise
    record_operation(session, settings, query_id, operation_id, now)
    log.info("query %s submitted: operation %s", query_id, operation_id)
    return SubmitOutcome(query_id, "submitted", operation_id)


def submit_due(session: Session, settings: Settings, client: YandexSearchClient,
               limiter: RateLimiter, now: datetime | None = None,
               limit: int | None = None) -> list[SubmitOutcome]:
    """Submit every due query in this process (the CLI's and tests' loop; Celery fans out)."""
    now = now or utcnow()
    if not in_submit_window(settings, now):
        return []
    outcomes = []
    for query_id in due_query_ids(session, now, limit or settings.search_submit_batch_size):
        outcome = submit_query(session, settings, query_id, client, limiter, now)
        outcomes.append(outcome)
        if outcome.outcome == "quota":
            break
    return outcomes
