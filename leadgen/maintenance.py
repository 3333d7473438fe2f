"""The lease sweeper: frees work whose worker died mid-task.

A claimed row carries `lease_until`. When the lease has run out, the claim is released so that
another worker can pick the row up — except an email in `sending`, which may already have left:
it becomes `unknown` and waits for a person (`leadgen outbox review`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from leadgen.config import get_settings
from leadgen.models import Company, SerpOperation, SerpQuery, utcnow
from leadgen.outreach.deliver import sweep_stuck_sending


@dataclass
class SweepReport:
    queries: int = 0
    operations: int = 0
    companies: int = 0
    messages_unknown: int = 0


def sweep_leases(session: Session, now: datetime | None = None,
                 settings: Any = None) -> SweepReport:
    now = now or utcnow()
    settings = settings or get_settings()
    report = SweepReport()
    # A lost submit counts as an attempt, so a query that keeps killing its worker fails with
    # the reason instead of going back to `pending` forever.
    lost_submit = (SerpQuery.status == "submitting", SerpQuery.lease_until < now)
    last_try = SerpQuery.attempts + 1 >= settings.yandex_max_attempts
    report.queries = session.execute(
        update(SerpQuery).where(*lost_submit, last_try)
        .values(status="failed", attempts=SerpQuery.attempts + 1, lease_until=None,
                next_attempt_at=None, updated_at=now,
                last_error="lease expired on the last attempt: the worker stopped while submitting")
    ).rowcount
    report.queries += session.execute(
        update(SerpQuery).where(*lost_submit, ~last_try)
        .values(status="pending", attempts=SerpQuery.attempts + 1, lease_until=None,
                next_attempt_at=now, updated_at=now,
                last_error="lease expired: the worker stopped while submitting")
    ).rowcount
    report.operations = session.execute(
        update(SerpOperation)
        .where(SerpOperation.lease_until < now)
        .values(lease_until=None)
    ).rowcount
    # Every claim counted an attempt: a site that keeps killing its worker is given up on
    # instead of going back to `new` forever.
    spent = Company.attempts >= settings.enrich_max_attempts
    report.companies = session.execute(
        update(Company)
        .where(Company.status == "enriching", Company.lease_until < now, spent)
        .values(status="contacts_not_found", status_reason="unreachable", lease_until=None,
                next_attempt_at=None, updated_at=now,
                last_error="lease expired on the last attempt: the worker stopped while crawling")
    ).rowcount
    report.companies += session.execute(
        update(Company)
        .where(Company.status == "enriching", Company.lease_until < now, ~spent)
        .values(status="new", lease_until=None,
                last_error="lease expired: the worker stopped while crawling")
    ).rowcount
    report.messages_unknown = sweep_stuck_sending(session, now)
    return report
