"""The message as sent: headers, header-injection attempts, unsubscribe links and tokens."""

from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

import pytest

from leadgen.config import load_settings
from leadgen.outreach.mailboxes import MailboxConfig
from leadgen.outreach.message import (
    FOOTERS,
    MESSAGE_POLICY,
    HeaderError,
    clean_header,
    envelope_address,
    new_message_id,
    render_email,
    unsubscribe_links,
)
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
    raw = render_email(box=box, to_email=to, subject=subject, body="Текст письма.\nВторая строка.",
                       message_id=new_message_id(box), settings=settings, now=NOW)
    return message_from_bytes(raw, policy=policy.default)


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
    raw = render_email(box=BOX, to_email="very.long.address.name@client-company-domain.ru",
                       subject="Идея по автоматизации заявок для вашей клиники — коротко и по делу",
                       body="Текст " * 200, message_id=new_message_id(BOX), settings=settings,
                       now=NOW)
    head, _, body = raw.partition(b"\r\n\r\n")
    unsub = head.split(b"List-Unsubscribe: ", 1)[1].split(b"\r\nList-Unsubscribe-Post", 1)[0]
    assert b"=?" not in unsub and unsub.startswith(b"<https://example.org/unsubscribe/")
    assert all(len(line) <= 78 for line in body.split(b"\r\n"))
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if b"Subject" in line)


def _reference(*, box, to_email, subject, body, message_id, settings, language="ru", now=NOW):
    """The same message built with `EmailMessage` (the slow, obviously correct way)."""
    recipient = envelope_address(to_email)
    msg = EmailMessage(policy=MESSAGE_POLICY)
    from_name = clean_header(box.from_name, "from name") if box.from_name.strip() else ""
    msg["From"] = formataddr((from_name, box.from_email)) if from_name else box.from_email
    msg["To"] = recipient
    msg["Subject"] = clean_header(subject, "subject")
    msg["Date"] = format_datetime(now.astimezone(timezone.utc))
    msg["Message-ID"] = message_id
    if box.reply_to:
        msg["Reply-To"] = clean_header(box.reply_to, "reply-to")
    mailto, url = unsubscribe_links(box, recipient, settings)
    if url:
        msg.set_raw("List-Unsubscribe", f"<{url}>,\r\n <{mailto}>")
        if url.startswith("https://"):
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    else:
        msg.set_raw("List-Unsubscribe", f"<{mailto}>")
    plain, with_link = FOOTERS.get(language, FOOTERS["ru"])
    footer = with_link.format(url=url) if url else plain
    text = body.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    msg.set_content(f"{text}\n\n-- \n{footer}\n", charset="utf-8", cte="base64")
    return msg.as_bytes()


@pytest.mark.parametrize("from_name,reply_to,subject,to,body,env,language", [
    ("Иван Петров", "reply@sender.ru", "Идея", "info@client.ru", "Текст.\nВторая.", {}, "ru"),
    ("", "", "Short ASCII subject", "a@b.ru", "Hello", {}, "en"),
    ('Smith, "Jr." (Sales)', "r@x.ru", "Идея по автоматизации заявок для вашей клиники — коротко "
     "и по делу, с длинной темой, которую надо переносить", "very.long.address.name@"
     "client-company-domain.ru", "Текст " * 300 + "\r\nконец\rещё\n\n\n",
     {"unsubscribe_url": "https://example.org/u/", "unsubscribe_secret": "k"}, "ru"),
    ("Алексей из Песочницы", "", "Subject with trailing words " * 6, "x@xn--e1afmkfd.xn--p1ai",
     "Строка\u2028с разделителем\tи\x0bтабами ✓ 😀", {"unsubscribe_url": "http://h/u",
                                                     "unsubscribe_secret": "k"}, "xx"),
    ("A" * 90, "reply@sender.ru", "=?utf-8?q?not_a_word?= Привет\r\nBcc: x@y.z", "q@w.ru", "",
     {"unsubscribe_mailto": "unsub@sender.ru"}, "en"),
], ids=["russian", "ascii-bare", "long-one-click", "idn-http-url", "encoded-word-crlf"])
def test_rendered_bytes_equal_the_email_package_output(from_name, reply_to, subject, to, body,
                                                       env, language):
    box = MailboxConfig(**{**BOX.__dict__, "from_name": from_name, "reply_to": reply_to})
    settings = load_settings(**env)
    args = dict(box=box, to_email=to, subject=subject, body=body, settings=settings,
                message_id=new_message_id(box), language=language, now=NOW)
    assert render_email(**args) == _reference(**args)


@pytest.mark.parametrize("message_id", ["<a@b>\r\nBcc: x@y.z", "<a b@c>", "a@b", "<a@b@c>",
                                        "<а@b.ru>", "<a\x01@b>", "<a@b>x"])
def test_bad_message_id_is_refused(message_id):
    with pytest.raises(HeaderError):
        render_email(box=BOX, to_email="a@b.ru", subject="s", body="b", message_id=message_id,
                     settings=load_settings(), now=NOW)
