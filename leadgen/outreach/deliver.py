"""Delivery: at most once per message, committed step by step.

Each tick, per active mailbox: claim due messages (`scheduled`/`deferred` → `sending`, with a
lease, Message-ID fixed) in a short committed transaction; open ONE SMTP connection; for each
message, in one short transaction, commit the previous message's outcome and re-check the
window, opt-out, suppression, the daily cap and the mailbox; then send. A message whose fate is
unknown (connection lost after the DATA payload, or a worker that died in `sending`) becomes
`unknown` and is never resent automatically: `leadgen outbox review` lets a person decide.
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
from leadgen.outreach.message import HeaderError, envelope_address, new_message_id, render_email
from leadgen.outreach.optout import optout_match, suppress, suppression_match
from leadgen.outreach.queue import lock_mailbox
from leadgen.windows import Window, send_window

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
    if enhanced == (4, 7, 0) and "unsolicited" in text.lower():
        return _Outcome("quota", code, text)  # flagged as a spam source: stop the mailbox
    if 400 <= code < 500:
        return _Outcome("deferred", code, text)
    # 5.4.5 = the sender's daily quota, at whatever stage the server says it (Gmail: MAIL, RCPT
    # or DATA); a bare "quota" text only at MAIL (at RCPT it may be the recipient's mailbox).
    if enhanced and enhanced[1:] == (4, 5) or stage == "mail" and code == 550 and "quota" in text.lower():
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


# The per-message writes go through the Core tables: the ORM's bulk-UPDATE path costs more than
# the statement itself and these never touch objects in the session.
_MESSAGES = OutreachMessage.__table__
_COMPANIES = Company.__table__


def _record(session: Session, message_id: int, **values: Any) -> bool:
    values.setdefault("updated_at", utcnow())
    return bool(session.execute(
        update(_MESSAGES)
        .where(_MESSAGES.c.id == message_id, _MESSAGES.c.status.in_(("sending", "unknown")))
        .values(lease_until=None, **values)
    ).rowcount)


def mark_contacted(session: Session, company_id: int, now: datetime) -> None:
    session.execute(
        update(_COMPANIES)
        .where(_COMPANIES.c.id == company_id,
               _COMPANIES.c.status.not_in(("contacted", "opted_out", "duplicate")))
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
    window: Window
    opens: datetime  # the send window of this tick
    closes: datetime


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
        window = send_window(settings)
        opens, closes = window.current_or_next(clock())
        context = _Context(settings, box, mailbox_id, url, clock, report, language, after_send,
                           window, opens, closes)
        _deliver_mailbox(context, ids)
    return report


@dataclass
class _Claimed:
    pk: int
    company_id: int
    to_email: str
    subject: str
    body: str
    message_id: str
    attempts: int
    domain: str | None


@dataclass
class _Sent:
    """A message whose SMTP transaction is over and whose outcome is not committed yet."""
    message: _Claimed
    recipient: str
    outcome: _Outcome


def _load(session: Session, box: MailboxConfig, ids: list[int]) -> list[_Claimed]:
    """The claimed messages' fields that nothing changes while they are `sending`."""
    rows = session.execute(
        select(OutreachMessage.id, OutreachMessage.company_id, OutreachMessage.to_email,
               OutreachMessage.subject, OutreachMessage.body, OutreachMessage.message_id,
               OutreachMessage.attempts, Company.domain)
        .outerjoin(Company, Company.id == OutreachMessage.company_id)
        .where(OutreachMessage.id.in_(ids), OutreachMessage.status == "sending")
        .order_by(OutreachMessage.id)
    ).all()
    messages = [_Claimed(*row) for row in rows]
    for message in messages:
        if not message.message_id:  # claimed by an older version: fixed (and committed) now
            message.message_id = new_message_id(box)
            session.execute(update(OutreachMessage).where(OutreachMessage.id == message.pk)
                            .values(message_id=message.message_id))
    return messages


def _prepare(ctx: _Context, message: _Claimed) -> tuple[str, bytes] | str:
    """(envelope recipient, payload), or why the message cannot be sent."""
    try:
        recipient = envelope_address(message.to_email)
        payload = render_email(box=ctx.box, to_email=message.to_email, subject=message.subject,
                               body=message.body, message_id=message.message_id,
                               settings=ctx.settings, language=ctx.language, now=ctx.clock())
    except (HeaderError, ValueError) as exc:
        return str(exc)
    return recipient, payload


def _deliver_mailbox(ctx: _Context, ids: list[int]) -> None:
    """Send the claimed batch on one connection, one short transaction per message.

    The transaction before message N's SMTP call also commits message N-1's outcome. The
    at-most-once rules still hold: N-1's outcome is committed before N's DATA, so at any moment at
    most one message has left us without its outcome committed, and a crash leaves exactly that
    one in `sending` for the sweeper (→ `unknown`, never resent). N's Message-ID and `sending`
    state were committed by the claim; its checks (window, mailbox, opt-out, suppression, cap)
    run in that same transaction, committed before its DATA. The last outcome is committed alone.
    """
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
    pending: _Sent | None = None
    untouched = ids  # claimed and not attempted: released if the batch stops
    try:
        with session_scope(ctx.url) as session:
            messages = _load(session, box, ids)
            # Every send of this mailbox is claimed under its lock, with `sending` rows counted
            # against the cap, so this count plus the batch's own sends is the cap check.
            sent = _sent_in(session, ctx.mailbox_id, ctx.opens, ctx.closes, False)
        pks = [message.pk for message in messages]
        for position, message in enumerate(messages):
            untouched = pks[position:]
            prepared = _prepare(ctx, message)
            with session_scope(ctx.url) as session:
                stop: bool | str = False
                if pending is not None:
                    stop = _after_send(ctx, session, pending.message, pending.recipient,
                                       pending.outcome)
                    if pending.outcome.kind == "sent":
                        sent += 1
                if stop:
                    report.released += release(session, untouched, str(stop))
                    action = "stop"
                else:
                    action = _pre_send(ctx, session, message, prepared, sent, untouched)
            pending = None  # committed
            if action == "stop":
                untouched = []
                break
            if action != "send" or not isinstance(prepared, tuple):
                continue
            untouched = untouched[1:]  # from here on this message is never released
            recipient, payload = prepared
            outcome = smtp_send(smtp, box.from_email, recipient, payload)
            if outcome.kind == "sent" and ctx.after_send is not None:
                ctx.after_send(message.pk)
            pending = _Sent(message, recipient, outcome)
        untouched = []
        if pending is not None:
            with session_scope(ctx.url) as session:
                _after_send(ctx, session, pending.message, pending.recipient, pending.outcome)
            pending = None
    except Exception as exc:  # a DB error: stop, record what is known, release the rest
        log.exception("delivery for mailbox %s failed", box.name)
        report.errors.append(f"mailbox {box.name}: {exc!r}")
        try:
            with session_scope(ctx.url) as session:
                if pending is not None:
                    _after_send(ctx, session, pending.message, pending.recipient, pending.outcome)
                report.released += release(session, untouched, "batch stopped")
        except Exception:  # noqa: BLE001 - the sweeper marks them for review
            log.exception("could not record the end of the batch; the sweeper will")
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


def _pre_send(ctx: _Context, session: Session, message: _Claimed,
              prepared: tuple[str, bytes] | str, sent: int, untouched: list[int]) -> str:
    """The checks right before the SMTP call, in one query: "send"; "next" (the message was
    recorded as skipped or failed); "stop" (it and the rest of the batch were released)."""
    report, now = ctx.report, ctx.clock()
    row = session.execute(
        select(OutreachMessage.status, Mailbox.status, Company.opt_out, Company.status,
               exists().where(optout_match(message.to_email, message.domain)),
               exists().where(suppression_match(message.to_email)))
        .join(Mailbox, Mailbox.id == OutreachMessage.mailbox_id)
        .outerjoin(Company, Company.id == OutreachMessage.company_id)
        .where(OutreachMessage.id == message.pk)
    ).first()
    if row is None or row[0] != "sending":
        return "next"  # no longer ours
    _, mailbox_status, company_opt_out, company_status, opted, suppressed = row
    if not ctx.window.contains(now):
        report.released += release(session, untouched, "window closed")
        return "stop"
    if mailbox_status != "active":
        report.released += release(session, untouched,
                                   f"mailbox {ctx.box.name} is {mailbox_status}")
        return "stop"
    opted_out = bool(company_opt_out or company_status == "opted_out" or opted)
    if opted_out or suppressed:
        reason = "opt_out" if opted_out else "suppressed"
        _record(session, message.pk, status="skipped", last_error=reason)
        if reason == "opt_out":
            session.execute(update(Company).where(Company.id == message.company_id)
                            .values(status="opted_out", opt_out=True, updated_at=now))
        report.skipped += 1
        return "next"
    if sent >= ctx.box.daily_cap:
        next_open = next(ctx.window.occurrences(ctx.closes))[0]
        report.released += release(session, untouched[:1], "daily cap reached", next_open)
        report.released += release(session, untouched[1:], "daily cap reached")
        return "stop"
    if isinstance(prepared, str):
        _record(session, message.pk, status="failed", last_error=f"invalid message: {prepared}")
        report.failed += 1
        return "next"
    return "send"


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
    if outcome.kind in ("auth", "quota"):
        until = now + timedelta(hours=24) if outcome.kind == "quota" else None
        reason = f"SMTP {outcome.code} {outcome.reply}"
        pause_mailbox(session, ctx.mailbox_id, reason, until)
        report.released += release(session, [message_pk], reason)
        report.paused.append(box.name)
        log.error("mailbox %s paused: %s", box.name, reason)
        return reason
    error = f"SMTP {outcome.code} {outcome.reply}" if outcome.code else outcome.reply
    tries = message.attempts + 1
    # A connection lost before DATA was not accepted, but it was an attempt: backed off and
    # bounded like a 4xx, so a recipient that always breaks it cannot block the queue forever.
    if outcome.kind in ("deferred", "lost"):
        if tries >= settings.send_max_attempts:
            _record(session, message_pk, status="failed", attempts=tries,
                    smtp_code=outcome.code, last_error=f"gave up after {tries}: {error}")
            report.failed += 1
        else:
            _record(session, message_pk, status="deferred", attempts=tries,
                    smtp_code=outcome.code, last_error=error,
                    next_attempt_at=now + backoff(settings, tries))
            report.deferred += 1
        if outcome.kind == "lost":
            return outcome.reply
        return "server closing connection" if outcome.code == 421 else False
    _record(session, message_pk, status="failed", attempts=tries, smtp_code=outcome.code,
            last_error=error)
    if outcome.kind == "bounced":
        suppress(session, recipient, error, outcome.code)
    report.failed += 1
    return False
