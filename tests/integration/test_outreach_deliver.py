"""Delivery against the sandbox SMTP server (STARTTLS + AUTH): at most once, with the window,
opt-outs, suppressions, caps and the mailbox state re-checked just before each send."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from datetime import timedelta
from email.utils import parsedate_to_datetime

from click.testing import CliRunner
from sqlalchemy import select

from leadgen.cli import main as cli
from leadgen.db import session_scope
from leadgen.models import Company, Mailbox, OutreachMessage, Suppression
from leadgen.outreach import optout
from leadgen.outreach.deliver import deliver_due, sweep_stuck_sending
from leadgen.outreach.generate import EmailDraft
from leadgen.outreach.queue import queue_message
from leadgen.windows import send_window
from test_outreach_support import (  # noqa: F401 - fixtures
    MONDAY_10, add_company, ca, configure, msk, smtp, smtp_env, start_smtp)

BODY = "Добрый день!\n\nМеня зовут Алексей, я помогаю компаниям с автоматизацией. " * 4


def _queue(db_url, settings, domains, *, subject="Идея для вас", now=MONDAY_10):
    ids = []
    with session_scope(db_url) as session:
        for domain in domains:
            local = domain.split(".", 1)[0]
            email = f"{local}@{domain}" if "-" in local else None
            company_id = add_company(session, domain, email)
            draft = EmailDraft(subject=subject, body=BODY, generator="template")
            ids.append(queue_message(session, company_id, settings, draft, now=now))
            session.commit()
    return ids


def _messages(db_url):
    with session_scope(db_url) as session:
        return {m.id: m for m in session.scalars(select(OutreachMessage))}


def test_sends_with_correct_headers(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(
        smtp, ca, UNSUBSCRIBE_URL="https://unsub.agency-sandbox.test/u",
        UNSUBSCRIBE_SECRET="s3cret"))
    [message_pk] = _queue(db_url, settings, ["alpha.ru"])
    report = deliver_due(settings, now=MONDAY_10 + timedelta(seconds=5))
    assert (report.claimed, report.sent) == (1, 1), report
    [received] = smtp.messages()
    assert received.tls and received.username == "outreach@agency-sandbox.test"
    assert received.rcpt_tos == ["info@alpha.ru"]
    headers = received.message
    assert str(headers["From"]) == "Алексей из Песочницы <outreach@agency-sandbox.test>"
    assert str(headers["To"]) == "info@alpha.ru"
    assert str(headers["Subject"]) == "Идея для вас"
    assert str(headers["Reply-To"]) == "replies@agency-sandbox.test"
    assert parsedate_to_datetime(str(headers["Date"])).tzinfo is not None
    assert received.message_id.endswith("@agency-sandbox.test>")
    unsubscribe = str(headers["List-Unsubscribe"])
    assert unsubscribe.startswith("<https://unsub.agency-sandbox.test/u/")
    assert "<mailto:replies@agency-sandbox.test?subject=unsubscribe>" in unsubscribe
    assert str(headers["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    text = received.text()
    assert "Меня зовут Алексей" in text and "отписаться" in text
    assert "https://unsub.agency-sandbox.test/u/" in text
    token = unsubscribe.split("/u/", 1)[1].split(">", 1)[0]
    assert optout.verify_token(token, "s3cret") == "info@alpha.ru"
    stored = _messages(db_url)[message_pk]
    assert (stored.status, stored.smtp_code, stored.message_id) == ("sent", 250, received.message_id)
    assert stored.sent_at is not None and stored.lease_until is None
    with session_scope(db_url) as session:
        assert session.scalar(select(Company.status)) == "contacted"
    # A second tick sends nothing more.
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=1)).claimed == 0
    assert len(smtp.messages()) == 1


def test_implicit_tls_mailbox(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca, SMTP_PORT=smtp.ssl_port,
                                               SMTP_SECURITY="ssl"))
    _queue(db_url, settings, ["ssl.ru"])
    assert deliver_due(settings, now=MONDAY_10).sent == 1
    assert smtp.messages()[0].tls


def test_disabled_outside_window_and_not_due_send_nothing(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca, EMAIL_SENDING_ENABLED="false"))
    _queue(db_url, settings, ["wait.ru"])
    assert deliver_due(settings, now=MONDAY_10).reason == "disabled"
    settings = configure(monkeypatch, {"EMAIL_SENDING_ENABLED": "true"})
    assert deliver_due(settings, now=msk(2026, 11, 23, 20, 0)).reason == "outside_window"
    assert deliver_due(settings, now=msk(2026, 11, 28, 12, 0)).reason == "outside_window"  # Sat
    assert deliver_due(settings, now=MONDAY_10 - timedelta(minutes=1)).claimed == 0  # not due
    assert smtp.messages() == []
    assert {m.status for m in _messages(db_url).values()} == {"scheduled"}


def test_opt_out_and_suppression_checked_at_send_time(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca))
    ids = _queue(db_url, settings, ["late-email.ru", "late-domain.ru", "supp.ru", "ok.ru"])
    with session_scope(db_url) as session:  # after queueing, before sending
        session.add(  # an opt-out written by another process, without the side effects
            optout.OptOut(kind="email", value="late-email@late-email.ru", source="test"))
        session.add(optout.OptOut(kind="domain", value="late-domain.ru", source="test"))
        optout.suppress(session, "info@supp.ru", "earlier bounce", 550)
    report = deliver_due(settings, now=MONDAY_10 + timedelta(minutes=1))
    assert (report.sent, report.skipped) == (1, 3), report
    assert [m.rcpt_tos for m in smtp.messages()] == [["info@ok.ru"]]
    statuses = {m.to_email: (m.status, m.last_error) for m in _messages(db_url).values()}
    assert statuses["late-email@late-email.ru"] == ("skipped", "opt_out")
    assert statuses["late-domain@late-domain.ru"] == ("skipped", "opt_out")
    assert statuses["info@supp.ru"] == ("skipped", "suppressed")
    with session_scope(db_url) as session:
        opted = {c.domain for c in session.scalars(select(Company).where(
            Company.status == "opted_out"))}
    assert opted == {"late-email.ru", "late-domain.ru"}
    assert ids


def test_hard_bounce_suppresses_and_policy_reject_fails(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca))
    _queue(db_url, settings, ["bounce-x.ru", "spam-y.ru"])
    report = deliver_due(settings, now=MONDAY_10)
    assert report.failed == 2
    messages = {m.to_email: m for m in _messages(db_url).values()}
    assert messages["bounce-x@bounce-x.ru"].status == "failed"
    assert messages["bounce-x@bounce-x.ru"].smtp_code == 550
    assert messages["spam-y@spam-y.ru"].smtp_code == 554
    with session_scope(db_url) as session:
        assert list(session.scalars(select(Suppression.email))) == ["bounce-x@bounce-x.ru"]
    assert deliver_due(settings, now=MONDAY_10 + timedelta(hours=1)).claimed == 0
    assert smtp.messages() == []


def test_temporary_failure_is_deferred_with_backoff(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca, SEND_MAX_ATTEMPTS=3))
    [message_pk] = _queue(db_url, settings, ["busy-z.ru"])
    assert deliver_due(settings, now=MONDAY_10).deferred == 1
    message = _messages(db_url)[message_pk]
    assert (message.status, message.attempts, message.smtp_code) == ("deferred", 1, 451)
    assert message.next_attempt_at == MONDAY_10 + timedelta(minutes=5)
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=4)).claimed == 0
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=5)).deferred == 1
    message = _messages(db_url)[message_pk]
    assert message.next_attempt_at == MONDAY_10 + timedelta(minutes=20)
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=21)).failed == 1
    assert _messages(db_url)[message_pk].status == "failed"  # after SEND_MAX_ATTEMPTS


def test_auth_failure_pauses_the_mailbox(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca, SMTP_USERNAME="locked@agency-sandbox.test",
                                               SMTP_PASSWORD="x"))
    [message_pk] = _queue(db_url, settings, ["auth.ru"])
    report = deliver_due(settings, now=MONDAY_10)
    assert report.paused == ["default"] and report.sent == 0
    with session_scope(db_url) as session:
        mailbox = session.scalars(select(Mailbox)).one()
        assert mailbox.status == "paused" and "535" in mailbox.status_reason
    assert _messages(db_url)[message_pk].status == "scheduled"  # released, not lost
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=1)).reason == "no_mailbox"
    assert smtp.messages() == []


def test_daily_cap_rechecked_at_send_time(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca))
    _queue(db_url, settings, ["cap1.ru", "cap2.ru", "cap3.ru"])
    settings = configure(monkeypatch, {"SMTP_DAILY_CAP": "2"})  # lowered after queueing
    report = deliver_due(settings, now=MONDAY_10)
    assert report.sent == 2
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=5)).sent == 0
    assert len(smtp.messages()) == 2
    waiting = [m for m in _messages(db_url).values() if m.status == "scheduled"]
    assert len(waiting) == 1
    assert deliver_due(settings, now=msk(2026, 11, 24, 9, 10)).sent == 1  # the next day
    assert len(smtp.messages()) == 3


def test_pacing_sends_one_per_gap_even_with_a_backlog(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca))
    _queue(db_url, settings, ["p1.ru", "p2.ru", "p3.ru"])  # all due at once (gap 0 when queued)
    settings = configure(monkeypatch, {"SEND_GAP_MIN_SECONDS": "240", "SEND_GAP_MAX_SECONDS": "480"})
    assert deliver_due(settings, now=MONDAY_10).sent == 1
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=2)).sent == 0
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=4)).sent == 1


def test_crlf_in_subject_cannot_inject_headers(db_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca))
    _queue(db_url, settings, ["inject.ru"],
           subject="Привет\r\nBcc: victim@evil.example\r\nX-Injected: yes")
    assert deliver_due(settings, now=MONDAY_10).sent == 1
    [received] = smtp.messages()
    assert received.rcpt_tos == ["info@inject.ru"]
    assert received.message["Bcc"] is None and received.message["X-Injected"] is None
    assert "\n" not in str(received.message["Subject"])
    assert str(received.message["Subject"]).startswith("Привет Bcc: victim@evil.example")


def test_two_concurrent_ticks_deliver_each_message_once(pg_only_url, monkeypatch, smtp, ca):
    settings = configure(monkeypatch, smtp_env(smtp, ca, SEND_BATCH_SIZE=15))
    _queue(pg_only_url, settings, [f"con{i}.ru" for i in range(60)])
    barrier = threading.Barrier(4)
    reports = []

    def tick() -> None:
        barrier.wait()
        for minute in range(3):
            reports.append(deliver_due(settings, now=MONDAY_10 + timedelta(minutes=minute)))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = Counter(m.message_id for m in smtp.messages())
    assert len(ids) == 60 and set(ids.values()) == {1}
    assert sum(r.sent for r in reports) == 60
    assert {m.status for m in _messages(pg_only_url).values()} == {"sent"}


CRASH = textwrap.dedent("""
    import os, sys
    from datetime import datetime
    from leadgen.config import get_settings
    from leadgen.outreach.deliver import deliver_due
    now = datetime.fromisoformat(sys.argv[1])
    deliver_due(get_settings(), now=now, after_send=lambda pk: os._exit(137))
""")


def test_crash_between_smtp_acceptance_and_commit_is_never_resent(
        db_url, monkeypatch, smtp, ca, tmp_path):
    settings = configure(monkeypatch, smtp_env(smtp, ca))
    [message_pk] = _queue(db_url, settings, ["crash.ru"])
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    result = subprocess.run([sys.executable, "-c", CRASH, MONDAY_10.isoformat()], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 137, result.stderr
    assert len(smtp.messages()) == 1  # the server accepted it; the worker died before commit
    message = _messages(db_url)[message_pk]
    assert message.status == "sending" and message.message_id == smtp.messages()[0].message_id
    for minute in (1, 2):  # later ticks must not send it again
        assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=minute)).claimed == 0
    with session_scope(db_url) as session:
        assert sweep_stuck_sending(session, MONDAY_10 + timedelta(minutes=5)) == 0  # lease holds
        assert sweep_stuck_sending(session, MONDAY_10 + timedelta(hours=1)) == 1
    assert _messages(db_url)[message_pk].status == "unknown"
    assert deliver_due(settings, now=MONDAY_10 + timedelta(hours=2)).claimed == 0
    assert len(smtp.messages()) == 1

    runner = CliRunner()
    listed = runner.invoke(cli, ["outbox", "review"])
    assert listed.exit_code == 0 and f"#{message_pk}" in listed.output and "unknown" in listed.output
    declined = runner.invoke(cli, ["outbox", "review", "--resend", str(message_pk)], input="n\n")
    assert "left as unknown" in declined.output
    assert _messages(db_url)[message_pk].status == "unknown"
    approved = runner.invoke(cli, ["outbox", "review", "--resend", str(message_pk)], input="y\n")
    assert "scheduled again" in approved.output, approved.output
    again = send_window(settings).next_open(_messages(db_url)[message_pk].scheduled_for)
    report = deliver_due(settings, now=again)
    assert report.sent == 1
    assert [m.message_id for m in smtp.messages()] == [message.message_id] * 2  # same Message-ID


def test_connection_lost_after_data_becomes_unknown(db_url, monkeypatch, ca, tmp_path):
    server = start_smtp(ca, tmp_path / "drop", drop_after_data=1.0)
    try:
        settings = configure(monkeypatch, smtp_env(server, ca))
        ids = _queue(db_url, settings, ["drop1.ru", "drop2.ru"])
        report = deliver_due(settings, now=MONDAY_10)
        assert report.unknown == 1 and report.released == 1
        statuses = {pk: m.status for pk, m in _messages(db_url).items()}
        assert statuses == {ids[0]: "unknown", ids[1]: "scheduled"}
        deliver_due(settings, now=MONDAY_10 + timedelta(minutes=1))
        received = Counter(m.rcpt_tos[0] for m in server.messages())
        assert received["info@drop1.ru"] == 1  # stored by the server once, never resent
        assert _messages(db_url)[ids[0]].status == "unknown"
    finally:
        server.stop()


def test_outbox_drop_and_optout_cli(db_url, monkeypatch, smtp, ca, tmp_path):
    settings = configure(monkeypatch, smtp_env(smtp, ca))
    ids = _queue(db_url, settings, ["cli1.ru", "cli2.ru", "cli3.ru"])
    with session_scope(db_url) as session:
        session.get(OutreachMessage, ids[0]).status = "unknown"
    runner = CliRunner()
    assert runner.invoke(cli, ["outbox", "review", "--drop", str(ids[0])]).exit_code == 0
    assert _messages(db_url)[ids[0]].status == "skipped"
    out = runner.invoke(cli, ["optout", "add", "cli2.ru", "--reason", "asked by phone"])
    assert out.exit_code == 0 and "1 companies" in out.output and "1 queued" in out.output
    listing = tmp_path / "list.csv"
    listing.write_text("email,comment\nINFO@cli3.ru,x\nnot an address,y\n", encoding="utf-8")
    out = runner.invoke(cli, ["optout", "import", str(listing)])
    assert "added 1" in out.output and "invalid 1" in out.output, out.output
    out = runner.invoke(cli, ["optout", "list"])
    assert "domain\tcli2.ru" in out.output and "email\tinfo@cli3.ru" in out.output
    assert runner.invoke(cli, ["optout", "remove", "cli2.ru"]).output.strip() == "cli2.ru: removed"
    out = runner.invoke(cli, ["outbox", "list", "--status", "skipped"])
    assert out.exit_code == 0 and "skipped: 3" in out.output
    assert deliver_due(settings, now=MONDAY_10).sent == 0


def test_each_outcome_is_committed_before_the_next_message_is_sent(db_url, monkeypatch, smtp, ca):
    """The previous message's outcome shares a transaction with the next message's checks: when
    the server accepts message N, every earlier message is already committed as `sent` and N is
    the only one whose acceptance is not recorded (so a crash can lose at most N's outcome)."""
    settings = configure(monkeypatch, smtp_env(smtp, ca))
    ids = _queue(db_url, settings, [f"seq{i}.ru" for i in range(5)])
    seen = []

    def check(pk: int) -> None:
        statuses = {m.id: m.status for m in _messages(db_url).values()}
        seen.append(pk)
        assert statuses[pk] == "sending"
        assert all(statuses[earlier] == "sent" for earlier in seen[:-1]), statuses
        assert all(statuses[later] == "sending" for later in ids if later not in seen)

    report = deliver_due(settings, now=MONDAY_10, after_send=check)
    assert report.sent == 5 and not report.errors, report
    assert seen == ids
    assert {m.status for m in _messages(db_url).values()} == {"sent"}


def test_database_error_mid_batch_records_the_sent_one_and_releases_the_rest(
        db_url, monkeypatch, smtp, ca):
    from leadgen.outreach import deliver

    settings = configure(monkeypatch, smtp_env(smtp, ca))
    ids = _queue(db_url, settings, ["err1.ru", "err2.ru", "err3.ru"])
    real = deliver._pre_send

    def failing(ctx, session, message, *args):
        if message.pk == ids[1]:  # the transaction that also holds message 1's outcome
            raise RuntimeError("database went away")
        return real(ctx, session, message, *args)

    monkeypatch.setattr(deliver, "_pre_send", failing)
    report = deliver_due(settings, now=MONDAY_10)
    assert report.errors and len(smtp.messages()) == 1
    statuses = {pk: m.status for pk, m in _messages(db_url).items()}
    assert statuses == {ids[0]: "sent", ids[1]: "scheduled", ids[2]: "scheduled"}
    monkeypatch.setattr(deliver, "_pre_send", real)
    assert deliver_due(settings, now=MONDAY_10 + timedelta(minutes=1)).sent == 2
    assert Counter(m.rcpt_tos[0] for m in smtp.messages()) == Counter(
        ["info@err1.ru", "info@err2.ru", "info@err3.ru"])


def test_connection_lost_before_data_is_an_attempt_not_a_head_of_line_block(
        db_url, monkeypatch, smtp, ca):
    """A server that drops the connection at RCPT for one recipient must not make that message
    the head of the mailbox's queue forever (claimed, lost, released, every minute)."""
    from leadgen.outreach import deliver as deliver_module

    settings = configure(monkeypatch, smtp_env(smtp, ca, SEND_MAX_ATTEMPTS=2))
    first, second = _queue(db_url, settings, ["drop-a.ru", "fine-b.ru"])
    real_send = deliver_module.smtp_send

    def flaky(conn, sender, recipient, payload):
        if recipient.startswith("drop-a@"):
            return deliver_module._Outcome("lost", None, "connection lost during rcpt: gone")
        return real_send(conn, sender, recipient, payload)

    monkeypatch.setattr(deliver_module, "smtp_send", flaky)
    late = MONDAY_10 + timedelta(hours=1)  # both due
    deliver_due(settings, now=late)
    message = _messages(db_url)[first]
    assert (message.status, message.attempts) == ("deferred", 1)
    assert message.next_attempt_at == late + timedelta(minutes=5)
    assert deliver_due(settings, now=late + timedelta(minutes=1)).sent == 1
    assert _messages(db_url)[second].status == "sent"  # not stuck behind the first
    deliver_due(settings, now=late + timedelta(minutes=30))
    assert _messages(db_url)[first].status == "failed"  # bounded: SEND_MAX_ATTEMPTS
