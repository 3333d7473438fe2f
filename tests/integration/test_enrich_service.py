"""The enrich stage on SQLite and PostgreSQL: claims, contact storage, the primary, shared
addresses, statuses with reasons, bounded retries, MX, a clean excerpt."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from dnslib import MX, QTYPE, RCODE, RR
from dnslib.server import BaseResolver

from tests.dnszone import serve_dns
from sqlalchemy import select

from leadgen.config import load_settings
from leadgen.db import session_scope
from leadgen.enrich.crawl import SiteResult
from leadgen.enrich.extract import Candidate
from leadgen.enrich.mx import MxChecker
from leadgen.enrich.service import claim_companies, due_company_ids, store_result
from leadgen.models import Company, Contact, utcnow


class _Zone(BaseResolver):
    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if name.endswith("dead.ru"):
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.MX:
            reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX(f"mx.{name}", 10), ttl=60))
        return reply


@pytest.fixture(scope="module")
def dns_address() -> Iterator[str]:
    with serve_dns(_Zone()) as address:
        yield address


def add_company(session, domain: str, **values) -> int:  # type: ignore[no-untyped-def]
    company = Company(domain=domain, name=domain, homepage_url=f"https://{domain}/", **values)
    session.add(company)
    session.commit()
    return company.id


def result(company_id: int, domain: str, *emails: str, outcome: str = "ok",
           excerpt: str = "Главная страница") -> SiteResult:
    cands = [Candidate(email, "mailto", round(0.95 - i * 0.1, 3), "ctx",
                       f"https://{domain}/contacts/") for i, email in enumerate(emails)]
    return SiteResult(company_id, domain, outcome, cands, excerpt, pages_fetched=2)


def claim_and_store(session, settings, res: SiteResult, mx=None):  # type: ignore[no-untyped-def]
    claimed = claim_companies(session=session, settings=settings, company_ids=[res.company_id])
    assert [c.id for c in claimed] == [res.company_id]
    outcome = store_result(session=session, settings=settings, result=res, mx=mx)
    session.commit()
    return outcome


def contacts_of(session, company_id: int) -> dict[str, Contact]:  # type: ignore[no-untyped-def]
    session.expire_all()
    return {c.email: c for c in session.scalars(select(Contact).where(Contact.company_id == company_id))}


def test_claim_selects_only_due_companies(session, db_url: str) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings()
    now = utcnow()
    new = add_company(session, "new.ru")
    add_company(session, "dup.ru", status="duplicate")
    add_company(session, "opted.ru", status="opted_out")
    add_company(session, "optflag.ru", opt_out=True)
    add_company(session, "ready.ru", status="contacts_ready")
    due = add_company(session, "due.ru", status="contacts_not_found", attempts=1,
                      next_attempt_at=now - timedelta(minutes=1))
    add_company(session, "later.ru", status="contacts_not_found", attempts=1,
                next_attempt_at=now + timedelta(hours=1))
    add_company(session, "final.ru", status="contacts_not_found", attempts=1, next_attempt_at=None)
    add_company(session, "spent.ru", status="contacts_not_found",
                attempts=settings.enrich_max_attempts, next_attempt_at=now - timedelta(hours=1))
    assert due_company_ids(session=session, settings=settings, limit=100) == [new, due]

    claimed = claim_companies(session=session, settings=settings)
    assert [c.id for c in claimed] == [new, due]
    assert claim_companies(session=session, settings=settings) == []  # a second worker gets none
    session.expire_all()
    row = session.get(Company, due)
    assert row.status == "enriching" and row.attempts == 2 and row.lease_until is not None


def test_contacts_stored_with_one_primary(session, db_url: str) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(mx_check_enabled=False)
    cid = add_company(session, "firma.ru")
    res = result(cid, "firma.ru", "info@firma.ru", "hr@firma.ru", "boss@firma.ru",
                 excerpt="Текст\x00 главной\x01 страницы\x7f\u0085 " + "слово " * 2000)
    outcome = claim_and_store(session, settings, res)
    assert outcome.status == "contacts_ready" and outcome.primary == "info@firma.ru"
    rows = contacts_of(session, cid)
    assert set(rows) == {"info@firma.ru", "hr@firma.ru", "boss@firma.ru"}
    assert [e for e, c in rows.items() if c.is_primary] == ["info@firma.ru"]
    info = rows["info@firma.ru"]
    assert info.method == "mailto" and info.confidence == 0.95
    assert info.source_url == "https://firma.ru/contacts/"
    company = session.get(Company, cid)
    assert company.status == "contacts_ready" and company.status_reason is None
    assert company.lease_until is None and company.enriched_at is not None
    assert company.pages_fetched == 2
    excerpt = company.homepage_excerpt
    assert excerpt.startswith("Текст главной страницы")
    assert len(excerpt) <= settings.homepage_excerpt_limit
    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in excerpt)


def test_re_enrichment_is_idempotent(session, db_url: str) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(mx_check_enabled=False)
    cid = add_company(session, "firma.ru")
    claim_and_store(session, settings, result(cid, "firma.ru", "boss@firma.ru"))
    company = session.get(Company, cid)
    company.status = "new"  # e.g. re-enrichment requested
    session.commit()
    claim_and_store(session, settings, result(cid, "firma.ru", "info@firma.ru", "boss@firma.ru"))
    rows = contacts_of(session, cid)
    assert set(rows) == {"info@firma.ru", "boss@firma.ru"}
    assert [e for e, c in rows.items() if c.is_primary] == ["info@firma.ru"]


def test_shared_email_is_not_reassigned(session, db_url: str) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(mx_check_enabled=False)
    first = add_company(session, "alpha.ru")
    second = add_company(session, "beta.ru")
    third = add_company(session, "gamma.ru")
    claim_and_store(session, settings, result(first, "alpha.ru", "info@holding.ru"))
    outcome = claim_and_store(session, settings,
                              result(second, "beta.ru", "info@holding.ru", "sales@beta.ru"))
    assert outcome.primary == "sales@beta.ru"
    alpha, beta = contacts_of(session, first), contacts_of(session, second)
    assert alpha["info@holding.ru"].is_primary  # still the first company's, still primary
    assert not beta["info@holding.ru"].is_primary and beta["sales@beta.ru"].is_primary

    only_shared = claim_and_store(session, settings, result(third, "gamma.ru", "info@holding.ru"))
    assert only_shared.status == "contacts_not_found" and only_shared.reason == "no_email"
    company = session.get(Company, third)
    assert f"company {first}" in (company.last_error or "")
    assert "info@holding.ru" in contacts_of(session, third)  # kept, so dedupe can see it
    assert session.scalar(select(Contact.company_id).where(
        Contact.email == "info@holding.ru", Contact.is_primary.is_(True))) == first


@pytest.mark.parametrize("outcome, attempts, retry_hours", [
    ("unreachable", 1, 24), ("unreachable", 2, 48), ("blocked", 1, 24), ("unreachable", 3, None),
    ("robots", 1, 168), ("robots", 2, None), ("no_email", 1, 168), ("no_email", 2, None),
])
def test_not_found_reasons_and_bounded_retries(session, db_url: str, outcome: str,  # type: ignore[no-untyped-def]
                                               attempts: int, retry_hours: int | None) -> None:
    settings = load_settings(enrich_retry_after_hours=24, enrich_max_attempts=3)
    cid = add_company(session, "down.ru", attempts=attempts - 1)
    before = utcnow()
    res = result(cid, "down.ru", outcome=outcome, excerpt="")
    stored = claim_and_store(session, settings, res)
    assert stored.status == "contacts_not_found" and stored.reason == outcome
    company = session.get(Company, cid)
    assert company.status_reason == outcome and company.attempts == attempts
    if retry_hours is None:
        assert company.next_attempt_at is None
    else:
        delta = company.next_attempt_at - before
        assert timedelta(hours=retry_hours) <= delta < timedelta(hours=retry_hours, minutes=5)
    due_later = due_company_ids(session=session, settings=settings, limit=10,
                                now=utcnow() + timedelta(days=30))
    assert (cid in due_later) is (retry_hours is not None)


def test_mx_check_marks_undeliverable_and_moves_on(session, db_url: str, dns_address: str) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(dns_resolvers=dns_address)
    mx = MxChecker(settings)
    cid = add_company(session, "firma.ru")
    stored = claim_and_store(session, settings,
                             result(cid, "firma.ru", "info@firma-dead.ru", "sales@firma.ru"), mx)
    assert stored.primary == "sales@firma.ru"
    rows = contacts_of(session, cid)
    assert rows["info@firma-dead.ru"].status == "undeliverable"
    assert rows["info@firma-dead.ru"].mx_ok is False and not rows["info@firma-dead.ru"].is_primary
    assert rows["sales@firma.ru"].mx_ok is True and rows["sales@firma.ru"].is_primary

    other = add_company(session, "gone.ru")
    stored = claim_and_store(session, settings, result(other, "gone.ru", "info@gone-dead.ru"), mx)
    assert stored.status == "contacts_not_found" and stored.reason == "no_email"


def test_result_for_a_company_no_longer_claimed_is_ignored(session, db_url: str) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings(mx_check_enabled=False)
    cid = add_company(session, "firma.ru")
    claim_companies(session=session, settings=settings)
    company = session.get(Company, cid)
    company.status = "opted_out"  # opted out while its site was crawled
    session.commit()
    outcome = store_result(session=session, settings=settings,
                           result=result(cid, "firma.ru", "info@firma.ru"))
    session.commit()
    assert outcome.status == "skipped"
    assert contacts_of(session, cid) == {}
    assert session.get(Company, cid).status == "opted_out"


def test_session_scope_path(db_url: str) -> None:
    settings = load_settings(mx_check_enabled=False)
    with session_scope() as session:
        cid = add_company(session, "firma.ru")
    from leadgen.enrich.service import store_results

    with session_scope() as session:
        claim_companies(session=session, settings=settings)
    outcomes = store_results(session_factory=session_scope, settings=settings,
                             results=[result(cid, "firma.ru", "info@firma.ru")])
    assert [o.status for o in outcomes] == ["contacts_ready"]
