"""The generation step end to end: pick companies, write the email (outside any transaction),
queue it in a short one."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import openai
from sqlalchemy import exists, or_, select, update

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.models import Company, Contact, OutreachMessage, utcnow
from leadgen.outreach.brief import CompanyBrief, load_offer
from leadgen.outreach.generate import generate_email, make_client
from leadgen.outreach.mailboxes import configured_mailboxes, router_for
from leadgen.outreach.queue import eligibility_problem, has_message, primary_contact, queue_message

log = logging.getLogger(__name__)


def claim_generation_batch(session: Any, settings: Any, limit: int = 500) -> list[int]:
    """Companies `contacts_ready` with a usable primary contact and no message yet; each is
    marked (next_attempt_at) so the next beat tick does not dispatch it again meanwhile."""
    now = utcnow()
    primary = exists().where(Contact.company_id == Company.id, Contact.is_primary.is_(True),
                             Contact.status == "ok")
    no_message = ~exists().where(OutreachMessage.company_id == Company.id)
    ids = list(session.scalars(
        select(Company.id).where(
            Company.status == "contacts_ready", Company.opt_out.is_(False), primary, no_message,
            or_(Company.next_attempt_at.is_(None), Company.next_attempt_at <= now),
            or_(Company.lease_until.is_(None), Company.lease_until <= now))
        .order_by(Company.id).limit(limit)))
    if ids:
        session.execute(update(Company).where(Company.id.in_(ids)).values(
            next_attempt_at=now + timedelta(seconds=settings.lease_seconds)))
    return ids


def generate_and_queue(company_id: int, settings: Any = None, *,
                       client: openai.OpenAI | None = None, url: str | None = None) -> int | None:
    """Write and queue the first email of the company's primary contact. Idempotent: returns
    quietly when the contact already has a message or another worker is on it."""
    settings = settings or get_settings()
    if not configured_mailboxes(settings):
        log.warning("no sending mailbox configured: company %s left for later", company_id)
        return None
    offer = load_offer(settings)
    now = utcnow()
    with session_scope(url) as session:
        company = session.get(Company, company_id)
        contact = primary_contact(session, company_id) if company else None
        problem = eligibility_problem(session, company, contact)
        if problem or company is None or contact is None:
            if problem == "opted out" and company is not None:
                company.status, company.opt_out, company.status_reason = (
                    "opted_out", True, "opt-out")
            elif problem and company is not None and company.status == "contacts_ready":
                # e.g. a suppressed primary: say why, and do not re-dispatch it every tick
                company.status_reason = f"no first email: {problem}"
                company.next_attempt_at = now + timedelta(hours=24)
            return None
        if has_message(session, contact.id) or company.status != "contacts_ready":
            return None
        claimed = session.execute(
            update(Company).where(Company.id == company_id, Company.status == "contacts_ready",
                                  or_(Company.lease_until.is_(None), Company.lease_until <= now))
            .values(lease_until=now + timedelta(seconds=settings.lease_seconds))
        ).rowcount
        if not claimed:
            return None
        brief = CompanyBrief.from_company(company, settings.llm_excerpt_tokens)
        to_email = contact.email
    try:
        draft = generate_email(brief, offer, settings, client)  # no transaction open here
        route = router_for(settings).route_for(to_email) if settings.routing_enabled else None
        with session_scope(url) as session:
            message_id = queue_message(session, company_id, settings, draft, route=route)
    finally:
        with session_scope(url) as session:
            session.execute(update(Company).where(Company.id == company_id)
                            .values(lease_until=None))
    if message_id:
        log.info("company %s: message %s queued (%s)", company_id, message_id, draft.generator)
    return message_id


def generate_many(company_ids: list[int], settings: Any = None, *,
                  url: str | None = None) -> list[int | None]:
    """Generate for many companies with LLM_CONCURRENCY threads sharing one client."""
    settings = settings or get_settings()
    client = make_client(settings) if settings.openai_api_key else None

    def one(company_id: int) -> int | None:
        try:
            return generate_and_queue(company_id, settings, client=client, url=url)
        except Exception:  # noqa: BLE001 - one bad company must not stop the rest
            log.exception("generation for company %s failed", company_id)
            return None

    with ThreadPoolExecutor(max_workers=settings.llm_concurrency) as pool:
        return list(pool.map(one, company_ids))
