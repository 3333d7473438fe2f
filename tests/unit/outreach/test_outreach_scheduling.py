"""Pure pieces of queueing and delivery: backoff, SMTP reply classification, mailbox config,
MX classification."""

from __future__ import annotations

import smtplib
from datetime import timedelta

import pytest

from leadgen.config import ConfigError, load_settings
from leadgen.outreach.deliver import _dot_stuff, _enhanced, backoff, smtp_send
from leadgen.outreach.mailboxes import MxRouter, configured_mailboxes


def test_backoff_schedule():
    settings = load_settings()
    assert [backoff(settings, n) for n in (1, 2, 3, 4, 5, 9)] == [
        timedelta(minutes=m) for m in (5, 15, 60, 240, 240, 240)]


def test_enhanced_status_codes():
    assert _enhanced(b"5.1.1 No such user") == (5, 1, 1)
    assert _enhanced("4.7.0 Try later") == (4, 7, 0)
    assert _enhanced(b"Mailbox unavailable") is None


def test_dot_stuffing_and_line_endings():
    assert _dot_stuff(b"a\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n.\r\n"


class FakeSMTP:
    """Replies scripted per command; raises on `drop_at`."""

    def __init__(self, mail=(250, b"ok"), rcpt=(250, b"ok"), data=(250, b"ok"), drop_at=None):
        self.replies = {"mail": mail, "rcpt": rcpt, "data": data}
        self.drop_at = drop_at
        self.payload_sent = False

    def has_extn(self, name):
        return False

    def _step(self, name):
        if self.drop_at == name:
            raise smtplib.SMTPServerDisconnected("gone")
        return self.replies[name]

    def mail(self, sender, options):
        return self._step("mail")

    def rcpt(self, to):
        return self._step("rcpt")

    def data(self, payload):
        if self.drop_at == "after_payload":
            self.payload_sent = True
            raise smtplib.SMTPServerDisconnected("gone after data")
        return self._step("data")

    def rset(self):
        return (250, b"ok")


@pytest.mark.parametrize("smtp,kind", [
    (FakeSMTP(), "sent"),
    (FakeSMTP(rcpt=(550, b"5.1.1 No such user")), "bounced"),
    (FakeSMTP(rcpt=(553, b"5.1.3 Bad address syntax")), "bounced"),
    (FakeSMTP(rcpt=(550, b"No such user here")), "bounced"),
    (FakeSMTP(rcpt=(451, b"4.3.0 Try later")), "deferred"),
    (FakeSMTP(data=(554, b"5.7.1 Spam")), "failed"),
    (FakeSMTP(data=(550, b"5.1.1 gone")), "bounced"),
    (FakeSMTP(mail=(530, b"5.7.0 Authentication required")), "auth"),
    (FakeSMTP(mail=(550, b"5.4.5 Daily user sending quota exceeded")), "quota"),
    # Gmail also reports its daily quota after RCPT or DATA: the mailbox, not the lead, is done.
    (FakeSMTP(rcpt=(550, b"5.4.5 Daily user sending limit exceeded")), "quota"),
    (FakeSMTP(data=(550, b"5.4.5 Daily user sending quota exceeded")), "quota"),
    (FakeSMTP(rcpt=(421, b"4.7.0 closing")), "deferred"),
    # contracts 7.3: 421 4.7.0 "unusual rate of unsolicited mail" pauses the whole mailbox
    (FakeSMTP(data=(421, b"4.7.0 [1.2.3.4] Our system has detected an unusual rate of "
                         b"unsolicited mail originating from your IP address.")), "quota"),
    (FakeSMTP(drop_at="rcpt"), "lost"),
    (FakeSMTP(drop_at="after_payload"), "unknown"),
])
def test_smtp_outcomes(smtp, kind):
    assert smtp_send(smtp, "a@b.ru", "c@d.ru", b"x").kind == kind


def test_mailboxes_from_json_gmail_yandex_and_smtp(monkeypatch):
    monkeypatch.setenv("SMTP_USERNAME", "me@x.ru")
    [box] = configured_mailboxes(load_settings())
    assert (box.name, box.from_email, box.security, box.daily_cap) == ("default", "me@x.ru",
                                                                       "starttls", 100)
    monkeypatch.setenv("YANDEX_USER", "a@yandex.ru")
    monkeypatch.setenv("YANDEX_FROM", "Аня <a@yandex.ru>")
    monkeypatch.setenv("GMAIL_USER", "b@gmail.com")
    boxes = {b.name: b for b in configured_mailboxes(load_settings())}
    assert boxes["yandex"].security == "ssl" and boxes["yandex"].route == "ru"
    assert boxes["yandex"].from_name == "Аня" and boxes["gmail"].route == "other"
    monkeypatch.setenv("MAILBOXES_JSON", '[{"name": "x", "host": "h", "from_email": "x@h.ru", '
                                         '"daily_cap": 7, "gap_min_seconds": 60, '
                                         '"gap_max_seconds": 90}]')
    [box] = configured_mailboxes(load_settings())
    assert (box.daily_cap, box.gap_min_seconds, box.port) == (7, 60, 587)
    monkeypatch.setenv("MAILBOXES_JSON", '[{"name": "x", "host": "h", "from_email": "x@h.ru", '
                                         '"colour": "red"}]')
    with pytest.raises(ConfigError, match="unknown keys"):
        configured_mailboxes(load_settings())


def test_mx_classification_and_failure_caching():
    settings = load_settings()
    calls = []

    def lookup(domain):
        calls.append(domain)
        if domain == "broken.ru":
            raise RuntimeError("timeout")
        return {"a.ru": ["mx.yandex.net."], "b.com": ["aspmx.l.google.com"],
                "c.com": ["mx1.hosting.ru"]}[domain]

    router = MxRouter(settings, lookup=lookup)
    assert router.route_for("x@a.ru") == "ru"
    assert router.route_for("x@b.com") == "other"
    assert router.route_for("x@c.com") == "ru"  # MX under .ru
    assert router.route_for("x@bk.ru") == "ru"  # forced, no lookup needed
    assert router.route_for("y@a.ru") == "ru" and calls.count("a.ru") == 1  # cached
    assert router.route_for("x@broken.ru") == "other"
    router._cache["broken.ru"] = (0.0, "other")  # a failure is cached only briefly
    router.route_for("x@broken.ru")
    assert calls.count("broken.ru") == 2
