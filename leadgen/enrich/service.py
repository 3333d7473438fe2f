"""The enrich stage on the database: claim companies, crawl them (outside any transaction),
store what was found in one short transaction per company.

Retry policy (company `contacts_not_found`, `next_attempt_at`):
- unreachable / blocked: transient; retried after ENRICH_RETRY_AFTER_HOURS × 2^(attempts-1)
  while attempts < ENRICH_MAX_ATTEMPTS;
- robots / no_email: the site answered; one more look after 7 × ENRICH_RETRY_AFTER_HOURS (sites
  change), then final;
- every claim counts an attempt; a company at ENRICH_MAX_ATTEMPTS stays `contacts_not_found`.

Contacts: every candidate is kept (ON CONFLICT (company_id, email) DO NOTHING), exactly one is
primary. An address already held by another company is never moved: both rows stay, and this
company's primary is another address; with no other address the company is contacts_not_found
(no_email, last_error names the sharing company) so dedupe can see the shared address.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from leadgen.config import Settings
from leadgen.db import is_postgres
from leadgen.enrich.crawl import NO_EMAIL, OK, ROBOTS, CompanyRef, SiteResult
from leadgen.enrich.extract import clean_text
from leadgen.enrich.mx import MxChecker
from leadgen.models import Company, Contact, utcnow

log = logging.getLogger(__name__)

READY, NOT_FOUND, ENRICHING = "contacts_ready", "contacts_not_found", "enriching"


@dataclass(frozen=True)
class StoreOutcome:
    company_id: int
    status: str  # contacts_ready | contacts_not_found | skipped
    reason: str | None = None
    primary: str | None = None


def _due_filter(settings: Settings, now: datetime):  # type: ignore[no-untyped-def]
    return and_(
        Company.opt_out.is_(False),
        or_(
            Company.status == "new",
            and_(
                Company.status == NOT_FOUND,
                Company.next_attempt_at.is_not(None),
                Company.next_attempt_at <= now,
                Company.attempts < settings.enrich_max_attempts,
            ),
        ),
    )


def due_company_ids(*, session: Session, settings: Settings, limit: int,
                    now: datetime | None = None) -> list[int]:
    """Ids due for enrichment (no claim: the batch task claims)."""
    now = now or utcnow()
    rows = session.execute(
        select(Company.id).where(_due_filter(settings, now)).order_by(Company.id).limit(limit)
    )
    return [row[0] for row in rows]


def claim_companies(*, session: Session, settings: Settings, company_ids: Sequence[int] | None = None,
                    limit: int | None = None, now: datetime | None = None) -> list[CompanyRef]:
    """Move due companies to `enriching` with a lease; returns those this caller won.

    PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the conditional UPDATE itself is the claim."""
    now = now or utcnow()
    limit = limit or settings.enrich_batch_size
    chosen = select(Company.id).where(_due_filter(settings, now))
    if company_ids is not None:
        if not company_ids:
            return []
        chosen = chosen.where(Company.id.in_(list(company_ids)))
    chosen = chosen.order_by(Company.id).limit(limit)
    if is_postgres(session):
        chosen = chosen.with_for_update(skip_locked=True)
    ids = [row[0] for row in session.execute(chosen)]
    if not ids:
        return []
    lease = now + timedelta(seconds=settings.lease_seconds)
    rows = session.execute(
        update(Company)
        .where(Company.id.in_(ids), _due_filter(settings, now))
        .values(status=ENRICHING, lease_until=lease, attempts=Company.attempts + 1,
                updated_at=now)
        .returning(Company.id, Company.domain, Company.homepage_url)
        .execution_options(synchronize_session=False)
    ).all()
    session.commit()
    return sorted((CompanyRef(r[0], r[1], r[2]) for r in rows), key=lambda ref: ref.id)


def _insert_contacts(session: Session, company_id: int, result: SiteResult, now: datetime) -> None:
    if not result.emails:
        return
    rows = [
        {"company_id": company_id, "email": c.email, "source_url": c.source_url[:2000] or None,
         "method": c.method, "confidence": c.confidence, "is_primary": False, "status": "ok",
         "created_at": now, "updated_at": now}
        for c in result.emails
    ]
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    statement = insert(Contact).values(rows).on_conflict_do_nothing(
        index_elements=["company_id", "email"]
    )
    session.execute(statement)


def _retry_at(reason: str, attempts: int, settings: Settings, now: datetime) -> datetime | None:
    hours = settings.enrich_retry_after_hours
    if reason in {ROBOTS, NO_EMAIL}:
        return now + timedelta(hours=7 * hours) if attempts < min(2, settings.enrich_max_attempts) else None
    if attempts >= settings.enrich_max_attempts:
        return None
    return now + timedelta(hours=hours * 2 ** max(attempts - 1, 0))


def store_result(*, session: Session, settings: Settings, result: SiteResult,
                 mx: MxChecker | None = None, now: datetime | None = None) -> StoreOutcome:
    """Write one crawl result. Only a company still `enriching` (our claim) is updated."""
    now = now or utcnow()
    query = select(Company).where(Company.id == result.company_id).execution_options(
        populate_existing=True)
    if is_postgres(session):
        query = query.with_for_update()
    company = session.execute(query).scalar_one_or_none()
    if company is None or company.status != ENRICHING:
        return StoreOutcome(result.company_id, "skipped")
    _insert_contacts(session, company.id, result, now)
    session.flush()

    contacts = {c.email: c for c in session.scalars(
        select(Contact).where(Contact.company_id == company.id)
        .execution_options(populate_existing=True))}
    shared: dict[str, int] = {}
    if contacts:
        for email, other_id in session.execute(
            select(Contact.email, Contact.company_id).where(
                Contact.email.in_(list(contacts)), Contact.company_id != company.id)
        ):
            shared.setdefault(email, other_id)

    ranked = [c.email for c in result.emails if c.email in contacts]
    ranked += sorted((e for e in contacts if e not in ranked),
                     key=lambda e: -contacts[e].confidence)
    primary: str | None = None
    notes: list[str] = []
    for email in ranked:
        if email in shared:
            notes.append(f"{email} is also a contact of company {shared[email]}")
            continue
        contact = contacts[email]
        if settings.mx_check_enabled and mx is not None and contact.status != "undeliverable":
            verdict = mx.check(email.rsplit("@", 1)[1])
            contact.mx_ok = verdict
            if verdict is False:
                contact.status = "undeliverable"
                notes.append(f"{email}: the domain accepts no mail")
                continue
        elif contact.status == "undeliverable":
            continue
        primary = email
        break
    for email, contact in contacts.items():
        contact.is_primary = email == primary

    company.lease_until = None
    company.enriched_at = now
    company.pages_fetched = result.pages_fetched
    if result.excerpt:
        company.homepage_excerpt = clean_text(result.excerpt)[: settings.homepage_excerpt_limit]
    if primary is not None:
        company.status, company.status_reason = READY, None
        company.next_attempt_at, company.last_error = None, None
        session.flush()
        return StoreOutcome(company.id, READY, None, primary)
    reason = result.outcome if result.outcome != OK else NO_EMAIL
    company.status, company.status_reason = NOT_FOUND, reason
    company.next_attempt_at = _retry_at(reason, company.attempts, settings, now)
    company.last_error = clean_text("; ".join(notes) or result.detail)[:1000] or None
    session.flush()
    return StoreOutcome(company.id, NOT_FOUND, reason)


def store_results(*, session_factory, settings: Settings, results: Sequence[SiteResult],  # type: ignore[no-untyped-def]
                  mx: MxChecker | None = None) -> list[StoreOutcome]:
    """One short transaction per company; a failure on one company leaves the others stored
    (the failed one keeps its lease and is freed by the sweeper)."""
    outcomes = []
    for result in results:
        try:
            with session_factory() as session:
                outcomes.append(store_result(session=session, settings=settings, result=result,
                                             mx=mx))
        except Exception:  # noqa: BLE001
            log.exception("storing enrichment of company %s failed", result.company_id)
    return outcomes


def enrich_companies(company_ids: Sequence[int] | None, settings: Settings, *,
                     session_factory=None, limit: int | None = None) -> list[StoreOutcome]:  # type: ignore[no-untyped-def]
    """Claim → crawl (no transaction open) → store. Returns what happened to each company."""
    from leadgen.db import session_scope
    from leadgen.enrich.crawl import crawl_many

    session_factory = session_factory or session_scope
    with session_factory() as session:
        claimed = claim_companies(session=session, settings=settings, company_ids=company_ids,
                                  limit=limit)
    if not claimed:
        return []
    results = crawl_many(claimed, settings)
    mx = MxChecker(settings) if settings.mx_check_enabled else None
    ordered = [results[ref.id] for ref in claimed if ref.id in results]
    return store_results(session_factory=session_factory, settings=settings, results=ordered, mx=mx)
