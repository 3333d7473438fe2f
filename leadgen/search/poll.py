"""Polling deferred operations: pending → fetched (raw XML saved) | failed | expired.

A failed or expired operation sends its query back to pending for another submit (attempts+1),
or to `failed` with the reason after YANDEX_MAX_ATTEMPTS, so no query stays `submitted` forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from leadgen.config import Settings
from leadgen.models import SerpOperation, SerpQuery
from leadgen.search.errors import (AuthError, OperationGone, PermanentError, QuotaExhausted,
                                   TransientError)
from leadgen.search.ratelimit import RateLimiter
from leadgen.search.submit import retry_or_fail, utcnow
from leadgen.search.yandex import YandexSearchClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollOutcome:
    operation_pk: int
    outcome: str  # fetched | pending | failed | expired | transient | rate_limited | not_claimed
    query_outcome: str | None = None  # retry | failed when the query was sent back
    detail: str | None = None


def _due(now: datetime):  # noqa: ANN202
    return (SerpOperation.status == "pending",
            or_(SerpOperation.next_poll_at.is_(None), SerpOperation.next_poll_at <= now),
            or_(SerpOperation.lease_until.is_(None), SerpOperation.lease_until < now))


def due_operation_pks(session: Session, now: datetime, limit: int) -> list[int]:
    stmt = (select(SerpOperation.id).where(*_due(now))
            .order_by(SerpOperation.next_poll_at, SerpOperation.id).limit(limit))
    return list(session.scalars(stmt))


def claim_operation(session: Session, settings: Settings, pk: int, now: datetime) -> bool:
    """Take a lease on a due operation (conditional UPDATE: one caller wins). Commits."""
    result = session.execute(
        update(SerpOperation).where(SerpOperation.id == pk, *_due(now))
        .values(lease_until=now + timedelta(seconds=settings.lease_seconds), updated_at=now)
        .execution_options(synchronize_session=False))
    session.commit()
    return result.rowcount == 1


def _give_up(session: Session, settings: Settings, operation: SerpOperation, status: str,
             reason: str, now: datetime) -> PollOutcome:
    operation.status = status
    operation.error = reason[:2000]
    operation.done_at = now
    operation.lease_until = None
    query = session.get(SerpQuery, operation.query_id, populate_existing=True)
    query_outcome = None
    if query is not None and query.status in ("submitted", "submitting"):
        query_outcome = retry_or_fail(query, settings, now,
                                      f"operation {operation.operation_id} {status}: {reason}")
    session.commit()
    log.warning("operation %s %s: %s (query %s → %s)", operation.operation_id, status, reason,
                operation.query_id, query_outcome)
    return PollOutcome(operation.id, status, query_outcome, reason)


def poll_operation(session: Session, settings: Settings, pk: int, client: YandexSearchClient,
                   limiter: RateLimiter, now: datetime | None = None) -> PollOutcome:
    """Poll one operation once. Safe to run twice: the lease claim lets one caller through."""
    now = now or utcnow()
    if not claim_operation(session, settings, pk, now):
        return PollOutcome(pk, "not_claimed")
    operation = session.get(SerpOperation, pk, populate_existing=True)
    assert operation is not None
    age = now - operation.submitted_at
    if age > timedelta(hours=settings.yandex_operation_timeout_hours):
        return _give_up(session, settings, operation, "expired",
                        f"no result after {age.total_seconds() / 3600:.1f} h", now)
    try:
        if not limiter.acquire("operations"):
            operation.lease_until = None
            session.commit()
            return PollOutcome(pk, "rate_limited")
    except QuotaExhausted as exc:
        operation.lease_until = None
        operation.next_poll_at = exc.retry_at
        session.commit()
        return PollOutcome(pk, "rate_limited", detail=str(exc))
    operation.polls = (operation.polls or 0) + 1
    try:
        result = client.get_operation(operation.operation_id)
    except OperationGone as exc:
        return _give_up(session, settings, operation, "expired", str(exc), now)
    except (TransientError, AuthError) as exc:
        # Rejected credentials are not the operation's fault: dropping it would discard a paid
        # result. The timeout above bounds how long either can keep an operation open.
        delay = max(settings.yandex_poll_interval_seconds, getattr(exc, "retry_after", 0) or 0)
        operation.next_poll_at = now + timedelta(seconds=delay)
        operation.lease_until = None
        operation.error = f"last poll: {exc}"[:2000]
        session.commit()
        return PollOutcome(pk, "transient", detail=str(exc))
    except PermanentError as exc:
        return _give_up(session, settings, operation, "failed", str(exc), now)
    except BaseException:
        operation.lease_until = None
        session.commit()
        raise
    if not result.done:
        operation.next_poll_at = now + timedelta(seconds=settings.yandex_poll_interval_seconds)
        operation.lease_until = None
        session.commit()
        return PollOutcome(pk, "pending")
    if result.error is not None or result.raw_xml is None:
        return _give_up(session, settings, operation, "failed", result.error or "no payload", now)
    operation.raw_xml = result.raw_xml.replace("\x00", "")
    operation.status = "fetched"
    operation.done_at = now
    operation.error = None
    operation.lease_until = None
    session.execute(update(SerpQuery).where(SerpQuery.id == operation.query_id)
                    .values(status="completed", completed_at=now, lease_until=None,
                            last_error=None, updated_at=now)
                    .execution_options(synchronize_session=False))
    session.commit()
    log.info("operation %s fetched (%d bytes of XML)", operation.operation_id, len(result.raw_xml))
    return PollOutcome(pk, "fetched")


def claim_stale_fetched(session: Session, settings: Settings, now: datetime,
                        limit: int) -> list[int]:
    """Fetched operations whose ingest never ran (the task was lost with a worker or the
    broker): leased for LEASE_SECONDS so each is handed to ingest again once. Commits."""
    stale = (SerpOperation.status == "fetched",
             SerpOperation.done_at < now - timedelta(seconds=settings.lease_seconds),
             or_(SerpOperation.lease_until.is_(None), SerpOperation.lease_until < now))
    pks = list(session.scalars(select(SerpOperation.id).where(*stale)
                               .order_by(SerpOperation.id).limit(limit)))
    claimed = []
    for pk in pks:
        result = session.execute(
            update(SerpOperation).where(SerpOperation.id == pk, *stale)
            .values(lease_until=now + timedelta(seconds=settings.lease_seconds))
            .execution_options(synchronize_session=False))
        if result.rowcount == 1:
            claimed.append(pk)
    session.commit()
    return claimed


def poll_due(session: Session, settings: Settings, client: YandexSearchClient, limiter: RateLimiter,
             now: datetime | None = None, limit: int | None = None) -> list[PollOutcome]:
    """Poll every due operation in this process (the CLI's and tests' loop)."""
    now = now or utcnow()
    return [poll_operation(session, settings, pk, client, limiter, now)
            for pk in due_operation_pks(session, now, limit or settings.search_poll_batch_size)]
