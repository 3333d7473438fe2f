"""Queueing: one first email per contact, scheduled per mailbox inside the working window.

`scheduled_for` is computed in the database transaction that inserts the message, under a
per-mailbox lock (PostgreSQL: the mailbox row `FOR UPDATE`; SQLite: the database write lock taken
by the first write of the transaction), so concurrent queueing cannot break the spacing or the
daily cap. Commit promptly after `queue_message` to release the lock.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadgen.db import is_postgres
from leadgen.models import Company, Contact, Mailbox, OutreachMessage, utcnow
from leadgen.outreach.generate import EmailDraft
from leadgen.outreach.mailboxes import MailboxConfig, configured_mailboxes, sync_mailboxes
from leadgen.outreach.optout import is_opted_out, is_suppressed
from leadgen.windows import send_window

log = logging.getLogger(__name__)

# Messages that hold (or held) a slot of their mailbox.
SLOT_STATUSES = ("scheduled", "sending", "sent", "deferred", "unknown")
INELIGIBLE_COMPANY = ("duplicate", "opted_out")


def primary_contact(session: Session, company_id: int) -> Contact | None:
    return session.scalar(
        select(Contact).where(Contact.company_id == company_id, Contact.is_primary.is_(True))
        .order_by(Contact.id).limit(1)
    )


def has_message(session: Session, contact_id: int) -> bool:
    return session.scalar(
        select(OutreachMessage.id).where(OutreachMessage.contact_id == contact_id)
    ) is not None


def eligibility_problem(session: Session, company: Company | None,
                        contact: Contact | None) -> str | None:
    """Why this company/contact must not get a first email now (None = eligible)."""
    if company is None:
        return "company not found"
    if company.status in INELIGIBLE_COMPANY or company.opt_out:
        return f"company is {company.status if not company.opt_out else 'opted out'}"
    if contact is None:
        return "no primary contact"
    if not contact.is_primary or contact.status != "ok":
        return f"contact is not a usable primary ({contact.status})"
    if "@" not in contact.email or any(ch in contact.email for ch in ",; <>\r\n"):
        return f"contact address is not a single email: {contact.email!r}"
    if is_opted_out(session, contact.email, company.domain):
        return "opted out"
    if is_suppressed(session, contact.email):
        return "suppressed (hard bounce)"
    return None


def lock_mailbox(session: Session, mailbox_id: int) -> None:
    """Serialise slot computation for one mailbox until the transaction ends."""
    if is_postgres(session):
        session.execute(select(Mailbox.id).where(Mailbox.id == mailbox_id).with_for_update())
    else:  # the first write of a SQLite transaction takes the database write lock
        session.execute(update(Mailbox).where(Mailbox.id == mailbox_id)
                        .values(updated_at=Mailbox.updated_at))


def _last_slot(session: Session, mailbox_id: int) -> datetime | None:
    return session.scalar(
        select(func.max(OutreachMessage.scheduled_for)).where(
            OutreachMessage.mailbox_id == mailbox_id,
            OutreachMessage.status.in_(SLOT_STATUSES))
    )


def _count_between(session: Session, mailbox_id: int, opens: datetime, closes: datetime) -> int:
    return session.scalar(
        select(func.count()).select_from(OutreachMessage).where(
            OutreachMessage.mailbox_id == mailbox_id,
            OutreachMessage.status.in_(SLOT_STATUSES),
            OutreachMessage.scheduled_for >= opens,
            OutreachMessage.scheduled_for < closes)
    ) or 0


def next_slot(session: Session, settings: Any, box: MailboxConfig, mailbox_id: int,
              now: datetime, rng: random.Random | None = None) -> datetime:
    """A random gap after the mailbox's last slot, inside a window, under the daily cap.
    Call with the mailbox locked."""
    rng = rng or random.Random()
    window = send_window(settings)
    last = _last_slot(session, mailbox_id)
    gap = timedelta(seconds=rng.uniform(box.gap_min_seconds, box.gap_max_seconds))
    candidate = max(now, last + gap) if last else now
    for _ in range(800):
        opens, closes = window.current_or_next(candidate)
        if candidate < opens:  # not at the exact opening minute: a jitter of up to one gap
            candidate = opens + timedelta(seconds=rng.uniform(0, box.gap_max_seconds))
            if candidate >= closes:
                candidate = closes
                continue
        if _count_between(session, mailbox_id, opens, closes) >= box.daily_cap:
            candidate = closes  # full: roll over to the next window
            continue
        return candidate
    raise RuntimeError(f"no free slot for mailbox {box.name} in the next windows")


def _mailbox_load(session: Session, mailbox_id: int) -> tuple[datetime | None, int]:
    last = _last_slot(session, mailbox_id)
    pending = session.scalar(
        select(func.count()).select_from(OutreachMessage).where(
            OutreachMessage.mailbox_id == mailbox_id,
            OutreachMessage.status.in_(("scheduled", "deferred")))
    ) or 0
    return last, pending


def choose_mailbox(session: Session, settings: Any, rows: dict[str, Mailbox],
                   route: str | None) -> tuple[MailboxConfig, Mailbox] | None:
    """By MX route when routing is on, then the least-loaded active mailbox (earliest free)."""
    configs = {box.name: box for box in configured_mailboxes(settings)}
    usable = [name for name, row in rows.items() if row.status == "active"] or \
        [name for name, row in rows.items() if row.status == "paused"]
    if not usable:
        return None
    if settings.routing_enabled and route:
        for wanted in (route, "any"):
            matching = [name for name in usable if configs[name].route == wanted]
            if matching:
                usable = matching
                break
    def load(name: str) -> tuple[float, int, str]:
        last, pending = _mailbox_load(session, rows[name].id)
        return (last.timestamp() if last else 0.0, pending, name)
    name = min(usable, key=load)
    return configs[name], rows[name]


def queue_message(session: Session, company_id: int, settings: Any, draft: EmailDraft, *,
                  route: str | None = None, now: datetime | None = None,
                  rng: random.Random | None = None) -> int | None:
    """Store the first email of the company's primary contact: `scheduled` with a mailbox and a
    slot, or `held`. None when not eligible or the contact already has a message."""
    now = now or utcnow()
    company = session.get(Company, company_id)
    contact = primary_contact(session, company_id) if company else None
    problem = eligibility_problem(session, company, contact)
    if problem:
        log.info("company %s not queued: %s", company_id, problem)
        if problem == "opted out" and company is not None and company.status != "opted_out":
            company.status, company.opt_out, company.status_reason = "opted_out", True, "opt-out"
        return None
    assert company is not None and contact is not None
    values: dict[str, Any] = {
        "contact_id": contact.id, "company_id": company.id, "to_email": contact.email.strip(),
        "subject": draft.subject, "body": draft.body, "generator": draft.generator,
        "model": draft.model, "prompt_tokens": draft.prompt_tokens,
        "completion_tokens": draft.completion_tokens, "cost_usd": draft.cost_usd,
        "generation_notes": draft.notes or None, "attempts": 0,
        "created_at": now, "updated_at": now,
    }
    if draft.held:
        values.update(status="held")
    else:
        rows = sync_mailboxes(session, settings)
        chosen = choose_mailbox(session, settings, rows, route)
        if chosen is None:
            log.warning("no sending mailbox configured or usable; company %s not queued", company_id)
            return None
        box, row = chosen
        lock_mailbox(session, row.id)
        slot = next_slot(session, settings, box, row.id, now, rng)
        values.update(status="scheduled", mailbox_id=row.id, scheduled_for=slot)
    dialect = postgresql if is_postgres(session) else sqlite
    inserted = session.execute(
        dialect.insert(OutreachMessage).values(**values)
        .on_conflict_do_nothing(index_elements=["contact_id"])
        .returning(OutreachMessage.id)
    ).first()
    return inserted[0] if inserted else None


def release_held(session: Session, message_id: int, settings: Any,
                 now: datetime | None = None) -> datetime | None:
    """A held message (approved by a person) gets a mailbox and a slot; returns the slot."""
    now = now or utcnow()
    message = session.get(OutreachMessage, message_id)
    if message is None or message.status != "held":
        return None
    rows = sync_mailboxes(session, settings)
    chosen = choose_mailbox(session, settings, rows, None)
    if chosen is None:
        return None
    box, row = chosen
    lock_mailbox(session, row.id)
    slot = next_slot(session, settings, box, row.id, now)
    message.status, message.mailbox_id, message.scheduled_for = "scheduled", row.id, slot
    message.updated_at = now
    return slot
