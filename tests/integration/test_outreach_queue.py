"""Queueing on both databases: spacing per mailbox, the window, weekends, the daily cap, one
first email per contact, opt-outs at queue time, mailbox choice and concurrent queueing."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

from sqlalchemy import select

from leadgen.config import load_settings
from leadgen.db import session_scope
from leadgen.models import Company, OutreachMessage
from leadgen.outreach import optout
from leadgen.outreach.generate import EmailDraft
from leadgen.outreach.mailboxes import MxRouter
from leadgen.outreach.queue import queue_message
from leadgen.windows import send_window
from test_outreach_support import MONDAY_10, MSK, add_company, msk

DRAFT = EmailDraft(subject="Идея", body="Добрый день! " * 20, generator="template")


def _settings(monkeypatch, **env):
    base = {"SMTP_USERNAME": "me@sender.ru", "SMTP_FROM_EMAIL": "me@sender.ru",
            "SMTP_HOST": "127.0.0.1"}
    for key, value in {**base, **env}.items():
        monkeypatch.setenv(key, str(value))
    return load_settings()


def _queue_all(session, settings, ids, now, seed=1):
    rng = random.Random(seed)
    out = []
    for company_id in ids:
        out.append(queue_message(session, company_id, settings, DRAFT, now=now, rng=rng))
        session.commit()
    return out


def _slots(session):
    return [m.scheduled_for for m in session.scalars(
        select(OutreachMessage).order_by(OutreachMessage.scheduled_for))]


def test_gaps_of_4_to_8_minutes_inside_the_window(session, monkeypatch):
    settings = _settings(monkeypatch)
    ids = [add_company(session, f"c{i}.ru") for i in range(12)]
    assert all(_queue_all(session, settings, ids, MONDAY_10))
    slots = _slots(session)
    assert slots[0] == MONDAY_10  # an idle mailbox sends at once
    gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:])]
    assert all(240 <= gap <= 480 for gap in gaps), gaps
    assert len(set(gaps)) > 3  # random, not a fixed step
    window = send_window(settings)
    assert all(window.contains(slot) for slot in slots)
    statuses = {c.status for c in session.scalars(select(Company))}
    assert statuses == {"contacts_ready"}  # until sent


def test_friday_evening_rolls_over_the_weekend(session, monkeypatch):
    settings = _settings(monkeypatch)
    friday = msk(2026, 11, 27, 19, 30)
    ids = [add_company(session, f"f{i}.ru") for i in range(6)]
    _queue_all(session, settings, ids, friday)
    slots = _slots(session)
    local = [slot.astimezone(MSK) for slot in slots]
    assert local[0].isoweekday() == 5
    later = [moment for moment in local if moment.isoweekday() != 5]
    assert later and all(moment.isoweekday() == 1 for moment in later)  # Monday, not Saturday
    assert all(moment.strftime("%H:%M") >= "09:10" for moment in later)
    window = send_window(settings)
    assert all(window.contains(slot) for slot in slots)
    assert all(m.strftime("%H:%M") <= "19:45" for m in local)


def test_before_opening_starts_after_the_window_opens(session, monkeypatch):
    settings = _settings(monkeypatch)
    early = msk(2026, 11, 24, 6, 0)
    _queue_all(session, settings, [add_company(session, "early.ru")], early)
    slot = _slots(session)[0].astimezone(MSK)
    assert slot.date() == early.astimezone(MSK).date()
    assert "09:10" <= slot.strftime("%H:%M") <= "09:18"


def test_daily_cap_overflow_rolls_to_the_next_window(session, monkeypatch):
    settings = _settings(monkeypatch, SMTP_DAILY_CAP=3)
    ids = [add_company(session, f"cap{i}.ru") for i in range(7)]
    _queue_all(session, settings, ids, MONDAY_10)
    days = [slot.astimezone(MSK).date().isoformat() for slot in _slots(session)]
    assert days == ["2026-11-23"] * 3 + ["2026-11-24"] * 3 + ["2026-11-25"]


def test_one_first_email_per_contact(session, monkeypatch):
    settings = _settings(monkeypatch)
    company_id = add_company(session, "once.ru")
    first = queue_message(session, company_id, settings, DRAFT, now=MONDAY_10)
    session.commit()
    second = queue_message(session, company_id, settings, DRAFT, now=MONDAY_10)
    session.commit()
    assert first is not None and second is None
    assert session.query(OutreachMessage).count() == 1


def test_opt_out_by_email_and_domain_at_queue_time(session, monkeypatch):
    settings = _settings(monkeypatch)
    by_email = add_company(session, "mail.ru-clinic.ru", "boss@mail.ru-clinic.ru")
    by_domain = add_company(session, "blocked.ru", "info@sub.blocked.ru")
    fine = add_company(session, "fine.ru")
    optout.add(session, "BOSS@mail.ru-clinic.ru")
    optout.add(session, "https://www.blocked.ru/")
    session.commit()
    assert queue_message(session, by_email, settings, DRAFT, now=MONDAY_10) is None
    assert queue_message(session, by_domain, settings, DRAFT, now=MONDAY_10) is None
    assert queue_message(session, fine, settings, DRAFT, now=MONDAY_10) is not None
    session.commit()
    statuses = {c.domain: c.status for c in session.scalars(select(Company))}
    assert statuses == {"mail.ru-clinic.ru": "opted_out", "blocked.ru": "opted_out",
                        "fine.ru": "contacts_ready"}


def test_suppressed_and_duplicate_are_not_queued(session, monkeypatch):
    settings = _settings(monkeypatch)
    bounced = add_company(session, "bounced.ru")
    dup = add_company(session, "dup.ru", status="duplicate")
    optout.suppress(session, "info@bounced.ru", "550 5.1.1", 550)
    session.commit()
    assert queue_message(session, bounced, settings, DRAFT, now=MONDAY_10) is None
    assert queue_message(session, dup, settings, DRAFT, now=MONDAY_10) is None


def test_held_drafts_get_no_slot(session, monkeypatch):
    settings = _settings(monkeypatch)
    held = EmailDraft(subject="s", body="b", generator="template", held=True)
    message_pk = queue_message(session, add_company(session, "held.ru"), settings, held)
    session.commit()
    message = session.get(OutreachMessage, message_pk)
    assert (message.status, message.scheduled_for, message.mailbox_id) == ("held", None, None)


MAILBOXES = """[
 {"name": "ya", "host": "127.0.0.1", "port": 465, "security": "ssl", "username": "a@ya-sender.ru",
  "password": "p", "from_email": "a@ya-sender.ru", "daily_cap": 50, "route": "ru"},
 {"name": "gm", "host": "127.0.0.1", "port": 587, "username": "b@gm-sender.com", "password": "p",
  "from_email": "b@gm-sender.com", "daily_cap": 50, "route": "other",
  "gap_min_seconds": 600, "gap_max_seconds": 660}
]"""


def test_each_mailbox_has_its_own_chain_and_routing_by_mx(session, monkeypatch):
    settings = _settings(monkeypatch, MAILBOXES_JSON=MAILBOXES, ROUTING_ENABLED="true")
    hosts = {"ru-host.ru": ["mx.yandex.net"], "corp.com": ["aspmx.l.google.com"]}
    router = MxRouter(settings, lookup=lambda domain: hosts[domain])
    ids_ru = [add_company(session, "ru-host.ru", f"a{i}@ru-host.ru") if i == 0 else None
              for i in range(1)]
    ids_other = [add_company(session, "corp.com")]
    rng = random.Random(3)
    for company_id in ids_ru + ids_other:
        email = "a0@ru-host.ru" if company_id == ids_ru[0] else "info@corp.com"
        queue_message(session, company_id, settings, DRAFT, route=router.route_for(email),
                      now=MONDAY_10, rng=rng)
        session.commit()
    by_email = {m.to_email: m for m in session.scalars(select(OutreachMessage))}
    names = {m.mailbox_id for m in by_email.values()}
    assert len(names) == 2
    from leadgen.models import Mailbox
    boxes = {b.id: b.name for b in session.scalars(select(Mailbox))}
    assert boxes[by_email["a0@ru-host.ru"].mailbox_id] == "ya"
    assert boxes[by_email["info@corp.com"].mailbox_id] == "gm"
    # Both mailboxes start at once: chains are per mailbox, not global.
    assert {m.scheduled_for for m in by_email.values()} == {MONDAY_10}
    assert router.route_for("x@ru-host.ru") == "ru"  # cached
    assert MxRouter(settings, lookup=lambda d: []).route_for("a@mail.ru") == "ru"  # forced


def test_least_loaded_mailbox_without_routing(session, monkeypatch):
    settings = _settings(monkeypatch, MAILBOXES_JSON=MAILBOXES)
    ids = [add_company(session, f"spread{i}.ru") for i in range(4)]
    _queue_all(session, settings, ids, MONDAY_10)
    per_box: dict[int, int] = {}
    for message in session.scalars(select(OutreachMessage)):
        per_box[message.mailbox_id] = per_box.get(message.mailbox_id, 0) + 1
    assert sorted(per_box.values()) == [2, 2]


def test_concurrent_queueing_keeps_the_spacing(db_url, monkeypatch):
    settings = _settings(monkeypatch)
    with session_scope(db_url) as session:
        ids = [add_company(session, f"race{i}.ru") for i in range(10)]
    barrier = threading.Barrier(len(ids))
    errors: list[BaseException] = []

    def worker(company_id: int) -> None:
        try:
            barrier.wait()
            with session_scope(db_url) as session:
                queue_message(session, company_id, settings, DRAFT, now=MONDAY_10)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with session_scope(db_url) as session:
        slots = _slots(session)
    assert len(slots) == 10
    gaps = [(b - a) for a, b in zip(slots, slots[1:])]
    assert all(gap >= timedelta(seconds=240) for gap in gaps), gaps
