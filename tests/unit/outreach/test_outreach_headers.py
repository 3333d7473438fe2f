"""The message as sent: headers, header-injection attempts, unsubscribe links and tokens."""

from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest

from leadgen.config import load_settings
from leadgen.outreach.mailboxes import MailboxConfig
from leadgen.outreach.message import HeaderError, build_email, envelope_address, new_message_id
from leadgen.outreach.optout import (
    OptOutError,
    normalise_domain,
    normalise_email,
    unsubscribe_token,
    verify_token,
)

BOX = MailboxConfig(name="m", host="h", port=587, security="starttls", username="u", password="p",
                    from_email="ivan@sender.ru", from_name="Иван Петров", reply_to="reply@sender.ru")
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)


def _build(monkeypatch=None, *, subject="Идея", to="info@client.ru", box=BOX, **env):
    settings = load_settings(**env)
    msg = build_email(box=box, to_email=to, subject=subject, body="Текст письма.\nВторая строка.",
                      message_id=new_message_id(box), settings=settings, now=NOW)
    return message_from_bytes(msg.as_bytes(), policy=policy.default)


def test_headers_present_and_correct():
    parsed = _build()
    assert str(parsed["From"]) == "Иван Петров <ivan@sender.ru>"
    assert str(parsed["To"]) == "info@client.ru"
    assert str(parsed["Reply-To"]) == "reply@sender.ru"
    assert str(parsed["Date"]) == "Mon, 23 Nov 2026 07:00:00 +0000"
    assert str(parsed["Message-ID"]).endswith("@sender.ru>")
    assert str(parsed["List-Unsubscribe"]) == "<mailto:reply@sender.ru?subject=unsubscribe>"
    assert parsed["List-Unsubscribe-Post"] is None
    body = parsed.get_content().replace("\r\n", "\n")
    assert body.startswith("Текст письма.\nВторая строка.") and "отписаться" in body
    assert parsed.get_content_charset() == "utf-8"


def test_one_click_unsubscribe_when_configured():
    parsed = _build(unsubscribe_url="https://example.org/u/", unsubscribe_secret="k",
                    unsubscribe_mailto="unsub@sender.ru")
    value = " ".join(str(parsed["List-Unsubscribe"]).split())
    url = value.split(">", 1)[0].lstrip("<")
    assert url.startswith("https://example.org/u/") and "//u//" not in url
    assert value.endswith("<mailto:unsub@sender.ru?subject=unsubscribe>")
    assert str(parsed["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert verify_token(url.rsplit("/", 1)[1], "k") == "info@client.ru"
    assert url in parsed.get_content().replace("\r\n", "\n")


@pytest.mark.parametrize("subject", [
    "Привет\r\nBcc: victim@evil.example", "Привет\nBcc: victim@evil.example",
    "Привет\rBcc: victim@evil.example", "Привет\u2028Bcc: x@y.z", "Привет\x85Bcc: x@y.z"])
def test_crlf_in_subject_cannot_inject_a_header(subject):
    parsed = _build(subject=subject)
    assert parsed["Bcc"] is None
    assert str(parsed["Subject"]).startswith("Привет Bcc:")
    assert len(parsed.get_all("Subject")) == 1


def test_crlf_in_display_name_cannot_inject_a_header():
    box = MailboxConfig(**{**BOX.__dict__, "from_name": "Иван\r\nBcc: x@evil.example"})
    parsed = _build(box=box)
    assert parsed["Bcc"] is None and "Иван Bcc" in str(parsed["From"])


@pytest.mark.parametrize("to", ["a@b.ru, c@d.ru", "a@b.ru\r\nBcc: c@d.ru", "Name <a@b.ru>",
                                "a@b.ru;c@d.ru", "no-at-sign", "a@@b.ru", "a b@c.ru"])
def test_recipient_must_be_one_plain_address(to):
    with pytest.raises(HeaderError):
        envelope_address(to)


def test_idn_recipient_domain_is_punycoded():
    assert envelope_address("info@пример.рф") == "info@xn--e1afmkfd.xn--p1ai"


def test_empty_subject_is_refused():
    with pytest.raises(HeaderError):
        _build(subject="\r\n")


def test_unsubscribe_token_roundtrip_and_tampering():
    token = unsubscribe_token("Info@Client.ru", "secret")
    assert verify_token(token, "secret") == "info@client.ru"
    assert verify_token(token, "other") is None
    encoded, mac = token.split(".")
    forged = unsubscribe_token("boss@client.ru", "guess").split(".")[0] + "." + mac
    assert verify_token(forged, "secret") is None
    assert verify_token("garbage", "secret") is None and verify_token("a.b", "secret") is None
    assert all(ch.isalnum() or ch in "-_." for ch in token)
    with pytest.raises(ValueError):
        unsubscribe_token("a@b.ru", "")


def test_normalisation_of_optout_values():
    assert normalise_domain("https://WWW.Пример.РФ/contacts?x=1") == "xn--e1afmkfd.xn--p1ai"
    assert normalise_email("mailto:Info@Example.RU?subject=x") == "info@example.ru"
    for bad in ("not a domain", "localhost", "-bad-.ru"):
        with pytest.raises(OptOutError):
            normalise_domain(bad)
    with pytest.raises(OptOutError):
        normalise_email("@example.ru")


def test_long_unsubscribe_url_is_not_encoded_and_lines_stay_short():
    settings = load_settings(unsubscribe_url="https://example.org/unsubscribe",
                             unsubscribe_secret="k")
    raw = build_email(box=BOX, to_email="very.long.address.name@client-company-domain.ru",
                      subject="Идея по автоматизации заявок для вашей клиники — коротко и по делу",
                      body="Текст " * 200, message_id=new_message_id(BOX), settings=settings,
                      now=NOW).as_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    unsub = head.split(b"List-Unsubscribe: ", 1)[1].split(b"\r\nList-Unsubscribe-Post", 1)[0]
    assert b"=?" not in unsub and unsub.startswith(b"<https://example.org/unsubscribe/")
    assert all(len(line) <= 78 for line in body.split(b"\r\n"))
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"Subject" in line)
