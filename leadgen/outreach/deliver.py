"""Delivery: at most once per message, committed step by step.

Each tick, per active mailbox: claim due messages (`scheduled`/`deferred` → `sending`, with a
lease) in a short committed transaction; open ONE SMTP connection; for each message re-check the
window, opt-out, suppression, the daily cap and the mailbox, store the Message-ID and refresh the
lease (commit), send, and commit the outcome at once. A message whose fate is unknown (connection
lost after the DATA payload, or a worker that died in `sending`) becomes `unknown` and is never
resent automatically: `leadgen outbox review` lets a person decide.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, func, or_, select, update
from sqlalchemy.orm import Session

from leadgen.config import get_settings
from leadgen.db import session_scope
from leadgen.models import Company, Mailbox, OutreachMessage, utcnow
from leadgen.outreach.brief import load_offer
from leadgen.outreach.mailboxes import (
    MailboxConfig,
    configured_mailboxes,
    pause_mailbox,
    resume_due,
    sync_mailboxes,
)
from leadgen.outreach.message import HeaderError, build_email, envelope_address, new_message_id
from leadgen.outreach.optout import optout_match, suppress, suppression_match
from leadgen.outreach.queue import lock_mailbox
from leadgen.windows import send_window

log = logging.getLogger(__name__)

AUTH_CODES = (530, 534, 535, 538)


@dataclass
class DeliveryReport:
    reason: str | None = None  # disabled | outside_window | no_mailbox (nothing attempted)
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped: int = 0
    unknown: int = 0
    released: int = 0
    paused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


# --- SMTP with a record of whether the DATA payload left us -----------------------------------


def _dot_stuff(payload: bytes) -> bytes:
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", payload)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


class _Tracking:
    """smtplib's `data()` with a flag set just before the payload is written: after that point a
    lost connection means the server may have accepted the message."""

    payload_sent = False

    def data(self, msg: bytes) -> tuple[int, bytes]:  # type: ignore[override]
        self.putcmd("data")  # type: ignore[attr-defined]
        code, reply = self.getreply()  # type: ignore[attr-defined]
        if code != 354:
            raise smtplib.SMTPDataError(code, reply)
        payload = _dot_stuff(msg)
        self.payload_sent = True
        self.send(payload)  # type: ignore[attr-defined]
        return self.getreply()  # type: ignore[attr-defined,no-any-return]


class TrackingSMTP(_Tracking, smtplib.SMTP):
    pass


class TrackingSMTPSSL(_Tracking, smtplib.SMTP_SSL):
    pass


def tls_context(settings: Any) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.smtp_ca_file:
        context.load_verify_locations(cafile=settings.smtp_ca_file)
    return context


def open_smtp(box: MailboxConfig, settings: Any) -> TrackingSMTP:
    """Connected, TLS (STARTTLS or implicit) and logged in."""
    timeout = settings.smtp_timeout_seconds
    helo = box.from_domain or "localhost"
    if box.security == "ssl":
        smtp: TrackingSMTP = TrackingSMTPSSL(  # type: ignore[assignment]
            box.host, box.port, local_hostname=helo, timeout=timeout,
            context=tls_context(settings))
    else:
        smtp = TrackingSMTP(box.host, box.port, local_hostname=helo, timeout=timeout)
        if box.security == "starttls":
            smtp.ehlo()
            smtp.starttls(context=tls_context(settings))
    try:
        smtp.ehlo()
        if box.username:
            smtp.login(box.username, box.password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def _enhanced(reply: bytes | str) -> tuple[int, int, int] | None:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    found = re.match(r"\s*([245])\.(\d{1,3})\.(\d{1,3})\b", text)
    return tuple(int(part) for part in found.groups()) if found else None  # type: ignore[return-value]


def _text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply)[:500]


class _ConnectionLost(Exception):
    """The SMTP connection broke before the payload was sent: the message was not accepted."""


@dataclass
class _Outcome:
    kind: str  # sent | deferred | failed | bounced | auth | quota | lost | unknown
    code: int | None = None
    reply: str = ""


def smtp_send(smtp: TrackingSMTP, from_addr: str, to_addr: str, payload: bytes) -> _Outcome:
    """One transaction (MAIL, RCPT, DATA) on an open connection, classified."""
    smtp.payload_sent = False
    stage = "mail"
    try:
        options = ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") else []
        code, reply = smtp.mail(from_addr, options)
        if code == 250:
            stage = "rcpt"
            code, reply = smtp.rcpt(to_addr)
        if code in (250, 251):
            stage = "data"
            code, reply = smtp.data(payload)
    except smtplib.SMTPResponseException as exc:  # an error reply to DATA itself
        code, reply = exc.smtp_code, exc.smtp_error
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        if smtp.payload_sent:
            return _Outcome("unknown", None, f"connection lost after DATA: {exc}")
        return _Outcome("lost", None, f"connection lost during {stage}: {exc}")
    if code == 250 and stage == "data":
        return _Outcome("sent", code, _text(reply))
    try:
        smtp.rset()
    except (smtplib.SMTPException, OSError):
        pass
    text, enhanced = _text(reply), _enhanced(reply)
    if code in AUTH_CODES:
        return _Outcome("auth", code, text)
    if 400 <= code < 500:
        return _Outcome("deferred", code, text)
    if stage == "mail" and (enhanced and enhanced[1:] == (4, 5) or code == 550 and "quota" in text.lower()):
        return _Outcome("quota", code, text)
    if enhanced and enhanced[0] == 5 and enhanced[1] == 1:
        return _Outcome("bounced", code, text)
    if stage == "rcpt" and code in (550, 551, 553) and not enhanced:
        return _Outcome("bounced", code, text)
    return _Outcome("failed", code, text)


# --- database steps (each a short transaction) ------------------------------------------------


def _sent_in(session: Session, mailbox_id: int, opens: datetime, closes: datetime,
             with_sending: bool) -> int:
    statuses = ("sent", "sending", "unknown") if with_sending else ("sent",)
    moment = func.coalesce(OutreachMessage.sent_at, OutreachMessage.sending_started_at)
    return session.scalar(
        select(func.count()).select_from(OutreachMessage).where(
            OutreachMessage.mailbox_id == mailbox_id, OutreachMessage.status.in_(statuses),
            moment >= opens, moment < closes)
    ) or 0


def claim_due(session: Session, settings: Any, box: MailboxConfig, mailbox_id: int,
              now: datetime, limit: int | None = None) -> list[int]:
    """`scheduled|deferred` → `sending` for the mailbox's due messages; commit right after.

    The mailbox row is locked for the claim, so concurrent ticks neither send one message twice
    (SKIP LOCKED / conditional UPDATE) nor overshoot the cap or the pacing.
    """
    lock_mailbox(session, mailbox_id)
    opens, closes = send_window(settings).current_or_next(now)
    limit = limit or settings.send_batch_size
    limit = min(limit, box.daily_cap - _sent_in(session, mailbox_id, opens, closes, True))
    if box.gap_min_seconds > 0:
        # Real spacing between actual sends, also for a backlog after downtime.
        last = session.scalar(
            select(func.max(func.coalesce(OutreachMessage.sent_at,
                                          OutreachMessage.sending_started_at)))
            .where(OutreachMessage.mailbox_id == mailbox_id,
                   OutreachMessage.status.in_(("sent", "sending", "unknown"))))
        if last is not None and now - last < timedelta(seconds=box.gap_min_seconds):
            return []
        limit = min(limit, 1)
    if limit <= 0:
        return []
    due = or_(
        and_(OutreachMessage.status == "scheduled", OutreachMessage.scheduled_for <= now),
        and_(OutreachMessage.status == "deferred",
             func.coalesce(OutreachMessage.next_attempt_at, OutreachMessage.scheduled_for) <= now),
    )
    candidates = (
        select(OutreachMessage.id)
        .where(OutreachMessage.mailbox_id == mailbox_id, due)
        .order_by(func.coalesce(OutreachMessage.next_attempt_at, OutreachMessage.scheduled_for),
                  OutreachMessage.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    # Two statements on purpose: PostgreSQL may re-run a LIMIT subquery inside UPDATE … IN (…).
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    # The lease covers the whole batch on one connection, each send up to the SMTP timeout.
    lease = timedelta(seconds=settings.lease_seconds + len(ids) * settings.smtp_timeout_seconds)
    rows = session.execute(
        update(OutreachMessage)
        .where(OutreachMessage.id.in_(ids), OutreachMessage.mailbox_id == mailbox_id, due)
        .values(status="sending", sending_started_at=now, lease_until=now + lease,
                updated_at=now)
        .returning(OutreachMessage.id, OutreachMessage.message_id)
        .execution_options(synchronize_session=False)
    ).all()
    # The Message-ID is fixed (and committed with the claim) BEFORE any SMTP call; a resent
    # message keeps its first Message-ID.
    missing = [{"pk": pk, "mid": new_message_id(box)} for pk, mid in rows if mid is None]
    if missing:
        table = OutreachMessage.__table__
        session.connection().execute(
            table.update().where(table.c.id == bindparam("pk")).values(message_id=bindparam("mid")),
            missing)
    return sorted(row[0] for row in rows)


def release(session: Session, ids: list[int], reason: str,
            scheduled_for: datetime | None = None) -> int:
    """Claimed but not attempted: back to where they were (never to `unknown`)."""
    if not ids:
        return 0
    values: dict[str, Any] = {
        "status": case((OutreachMessage.attempts > 0, "deferred"), else_="scheduled"),
        "lease_until": None, "sending_started_at": None, "last_error": reason[:1000],
        "updated_at": utcnow(),
    }
    if scheduled_for is not None:
        values["scheduled_for"] = scheduled_for
        values["next_attempt_at"] = None
    return session.execute(
        update(OutreachMessage).where(OutreachMessage.id.in_(ids),
                                      OutreachMessage.status == "sending")
        .values(**values).execution_options(synchronize_session=False)
    ).rowcount or 0


def backoff(settings: Any, attempts: int) -> timedelta:
    steps = [float(step) for step in settings.send_backoff_minutes] or [5.0]
    return timedelta(minutes=steps[min(attempts, len(steps)) - 1])


def _record(session: Session, message_id: int, **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    return bool(session.execute(
        update(OutreachMessage)
        .where(OutreachMessage.id == message_id,
               OutreachMessage.status.in_(("sending", "unknown")))
        .values(lease_until=None, **values)
        .execution_options(synchronize_session=False)
    ).rowcount)


def mark_contacted(session: Session, company_id: int, now: datetime) -> None:
    session.execute(
        update(Company)
        .where(Company.id == company_id,
               Company.status.not_in(("contacted", "opted_out", "duplicate")))
        .values(status="contacted", status_reason=None, updated_at=now)
    )


def sweep_stuck_sending(session: Session, now: datetime | None = None) -> int:
    """`sending` rows whose lease expired become `unknown` (the worker died mid-send; the email
    may have gone out). Never resent automatically."""
    now = now or utcnow()
    return session.execute(
        update(OutreachMessage)
        .where(OutreachMessage.status == "sending", OutreachMessage.lease_until < now)
        .values(status="unknown", lease_until=None, updated_at=now,
                last_error="stuck in sending (worker lost); review with `leadgen outbox review`")
        .execution_options(synchronize_session=False)
    ).rowcount or 0


# --- the tick ---------------------------------------------------------------------------------


@dataclass
class _Context:
    settings: Any
    box: MailboxConfig
    mailbox_id: int
    url: str | None
    clock: Callable[[], datetime]
    report: DeliveryReport
    language: str
    after_send: Callable[[int], None] | None


def deliver_due(settings: Any = None, now: datetime | None = None, *, url: str | None = None,
                after_send: Callable[[int], None] | None = None) -> DeliveryReport:
    """Send what is due now. `after_send(message_pk)` runs after the server accepted a message
    and before the commit (tests use it to simulate a crash there)."""
    settings = settings or get_settings()
    clock: Callable[[], datetime] = (lambda: now) if now is not None else utcnow
    report = DeliveryReport()
    if not settings.email_sending_enabled:
        report.reason = "disabled"
        return report
    start = clock()
    if not send_window(settings).contains(start):
        report.reason = "outside_window"
        return report
    configs = {box.name: box for box in configured_mailboxes(settings)}
    with session_scope(url) as session:
        resume_due(session, start)
        rows = sync_mailboxes(session, settings)
        active = [(configs[name], row.id) for name, row in rows.items() if row.status == "active"]
    if not active:
        report.reason = "no_mailbox"
        return report
    language = load_offer(settings).language
    for box, mailbox_id in active:
        with session_scope(url) as session:
            ids = claim_due(session, settings, box, mailbox_id, clock())
        if not ids:
            continue
        report.claimed += len(ids)
        context = _Context(settings, box, mailbox_id, url, clock, report, language, after_send)
        _deliver_mailbox(context, ids)
    return report


def _deliver_mailbox(ctx: _Context, ids: list[int]) -> None:
    box, report = ctx.box, ctx.report
    try:
        smtp = open_smtp(box, ctx.settings)
    except (smtplib.SMTPAuthenticationError, smtplib.SMTPNotSupportedError,
            ssl.SSLCertVerificationError) as exc:
        reason = f"SMTP login/TLS failed for {box.name}: {exc}"
        with session_scope(ctx.url) as session:
            pause_mailbox(session, ctx.mailbox_id, reason)
            report.released += release(session, ids, reason)
        report.paused.append(box.name)
        report.errors.append(reason)
        log.error("mailbox %s paused: %s", box.name, reason)
        return
    except (smtplib.SMTPException, OSError) as exc:
        reason = f"SMTP connection to {box.host}:{box.port} failed: {exc}"
        with session_scope(ctx.url) as session:
            report.released += release(session, ids, reason)
        report.errors.append(reason)
        log.warning("%s", reason)
        return
    try:
        for position, message_pk in enumerate(ids):
            try:
                stop = _deliver_one(ctx, smtp, message_pk)
            except Exception as exc:  # a DB error: stop; the rest is released or swept
                log.exception("delivery of message %s failed", message_pk)
                report.errors.append(f"message {message_pk}: {exc!r}")
                stop = True
            if stop:
                rest = ids[position + 1:]
                if rest:
                    try:
                        with session_scope(ctx.url) as session:
                            report.released += release(session, rest, stop if isinstance(stop, str) else "batch stopped")
                    except Exception:  # noqa: BLE001 - the sweeper marks them for review
                        log.exception("could not release messages %s", rest)
                break
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


@dataclass
class _Claimed:
    pk: int
    company_id: int
    to_email: str
    subject: str
    body: str
    message_id: str | None
    attempts: int


def _pre_send(ctx: _Context, session: Session, message_pk: int
              ) -> tuple[_Claimed | None, tuple[str, Any] | None]:
    """Checks right before the SMTP call, in two queries: (message, None) = go."""
    settings, now = ctx.settings, ctx.clock()
    row = session.execute(
        select(OutreachMessage.status, OutreachMessage.company_id, OutreachMessage.to_email,
               OutreachMessage.subject, OutreachMessage.body, OutreachMessage.message_id,
               OutreachMessage.attempts, Mailbox.status, Company.domain, Company.opt_out,
               Company.status)
        .join(Mailbox, Mailbox.id == OutreachMessage.mailbox_id)
        .outerjoin(Company, Company.id == OutreachMessage.company_id)
        .where(OutreachMessage.id == message_pk)
    ).first()
    if row is None or row[0] != "sending":
        return None, ("gone", None)
    (_, company_id, to_email, subject, body, message_id, attempts, mailbox_status, domain,
     company_opt_out, company_status) = row
    claimed = _Claimed(message_pk, company_id, to_email, subject, body, message_id, attempts)
    window = send_window(settings)
    if not window.contains(now):
        return claimed, ("release", "window closed")
    if mailbox_status != "active":
        return claimed, ("release", f"mailbox {ctx.box.name} is {mailbox_status}")
    if company_opt_out or company_status == "opted_out":
        return claimed, ("skip", "opt_out")
    opens, closes = window.current_or_next(now)
    moment = func.coalesce(OutreachMessage.sent_at, OutreachMessage.sending_started_at)
    opted, suppressed, sent_today = session.execute(select(
        exists().where(optout_match(to_email, domain)),
        exists().where(suppression_match(to_email)),
        select(func.count()).select_from(OutreachMessage).where(
            OutreachMessage.mailbox_id == ctx.mailbox_id, OutreachMessage.status == "sent",
            moment >= opens, moment < closes).scalar_subquery(),
    )).one()
    if opted:
        return claimed, ("skip", "opt_out")
    if suppressed:
        return claimed, ("skip", "suppressed")
    if sent_today >= ctx.box.daily_cap:
        return claimed, ("cap", next(window.occurrences(closes))[0])
    return claimed, None


def _deliver_one(ctx: _Context, smtp: TrackingSMTP, message_pk: int) -> bool | str:
    """Send one claimed message; True/str = stop this mailbox's batch. One session: reads,
    commit (nothing held during SMTP), send, then the outcome committed at once."""
    settings, report, box = ctx.settings, ctx.report, ctx.box
    with session_scope(ctx.url) as session:
        message, verdict = _pre_send(ctx, session, message_pk)
        now = ctx.clock()
        if verdict is not None:
            kind, detail = verdict
            if kind == "gone" or message is None:
                return False
            if kind == "skip":
                _record(session, message_pk, status="skipped", last_error=detail)
                if detail == "opt_out":
                    session.execute(update(Company).where(Company.id == message.company_id)
                                    .values(status="opted_out", opt_out=True, updated_at=now))
                report.skipped += 1
                return False
            if kind == "cap":
                report.released += release(session, [message_pk], "daily cap reached", detail)
                return "daily cap reached"
            report.released += release(session, [message_pk], detail)
            return detail
        assert message is not None
        if not message.message_id:  # claimed by an older version: fix it before sending
            message.message_id = new_message_id(box)
            session.execute(update(OutreachMessage).where(OutreachMessage.id == message_pk)
                            .values(message_id=message.message_id))
        try:
            recipient = envelope_address(message.to_email)
            email = build_email(box=box, to_email=message.to_email, subject=message.subject,
                                body=message.body, message_id=message.message_id,
                                settings=settings, language=ctx.language, now=now)
            payload = email.as_bytes()
        except (HeaderError, ValueError) as exc:
            _record(session, message_pk, status="failed", last_error=f"invalid message: {exc}")
            report.failed += 1
            return False
        session.commit()  # end the read transaction: nothing is held during the SMTP call
        outcome = smtp_send(smtp, box.from_email, recipient, payload)
        if outcome.kind == "sent" and ctx.after_send is not None:
            ctx.after_send(message_pk)
        return _after_send(ctx, session, message, recipient, outcome)


def _after_send(ctx: _Context, session: Session, message: _Claimed, recipient: str,
                outcome: _Outcome) -> bool | str:
    settings, report, box = ctx.settings, ctx.report, ctx.box
    message_pk, now = message.pk, ctx.clock()
    if outcome.kind == "sent":
        _record(session, message_pk, status="sent", sent_at=now, smtp_code=outcome.code,
                attempts=message.attempts + 1, last_error=None)
        mark_contacted(session, message.company_id, now)
        report.sent += 1
        return False
    if outcome.kind == "unknown":
        _record(session, message_pk, status="unknown", last_error=outcome.reply)
        report.unknown += 1
        return "connection lost after DATA"
    if outcome.kind == "lost":
        report.released += release(session, [message_pk], outcome.reply)
        return outcome.reply
    if outcome.kind in ("auth", "quota"):
        until = now + timedelta(hours=24) if outcome.kind == "quota" else None
        reason = f"SMTP {outcome.code} {outcome.reply}"
        pause_mailbox(session, ctx.mailbox_id, reason, until)
        report.released += release(session, [message_pk], reason)
        report.paused.append(box.name)
        log.error("mailbox %s paused: %s", box.name, reason)
        return reason
    error = f"SMTP {outcome.code} {outcome.reply}"
    tries = message.attempts + 1
    if outcome.kind == "deferred":
        if tries >= settings.send_max_attempts:
            _record(session, message_pk, status="failed", attempts=tries,
                    smtp_code=outcome.code, last_error=f"gave up after {tries}: {error}")
            report.failed += 1
        else:
            _record(session, message_pk, status="deferred", attempts=tries,
                    smtp_code=outcome.code, last_error=error,
                    next_attempt_at=now + backoff(settings, tries))
            report.deferred += 1
        return "server closing connection" if outcome.code == 421 else False
    _record(session, message_pk, status="failed", attempts=tries, smtp_code=outcome.code,
            last_error=error)
    if outcome.kind == "bounced":
        suppress(session, recipient, error, outcome.code)
    report.failed += 1
    return False
