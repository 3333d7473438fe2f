"""Building the RFC 5322 message: headers that cannot be injected, RFC 8058 unsubscribe."""

from __future__ import annotations

import binascii
import re
import unicodedata
from datetime import datetime, timezone
from email import policy
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import lru_cache
from typing import Any

from leadgen.outreach.mailboxes import MailboxConfig
from leadgen.outreach.optout import unsubscribe_token

_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f\x41-\x7e]+@[\x21-\x3b\x3d\x3f\x41-\x7e]+>")  # no <>@
_ADDRESS = re.compile(r"^[^@\s<>(),;:\"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")

FOOTERS = {
    "ru": ("Если вы не хотите получать от меня писем, просто ответьте «отписаться».",
           "Если вы не хотите получать от меня писем, ответьте «отписаться» "
           "или откройте ссылку: {url}"),
    "en": ("If you would rather not hear from me, just reply \"unsubscribe\".",
           "If you would rather not hear from me, reply \"unsubscribe\" or open: {url}"),
}


MESSAGE_POLICY = policy.SMTP.clone(refold_source="none")


class HeaderError(ValueError):
    """A header value would be unsafe or malformed."""


def clean_header(value: str, what: str) -> str:
    """One line: CR, LF and other control or line-separator characters become spaces, runs of
    spaces collapse. Anything unsafe that remains is an error."""
    text = "".join(
        " " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} or ch == "\u0085" else ch
        for ch in value
    )
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise HeaderError(f"{what} is empty")
    if any(ch in text for ch in "\r\n\x00"):  # defence in depth; cannot happen after the above
        raise HeaderError(f"{what} contains a line break")
    return text


def envelope_address(value: str) -> str:
    """A single recipient address, domain in IDNA (ASCII) form; anything else is an error."""
    text = value.strip()
    if any(ch in text for ch in "\r\n\x00"):
        raise HeaderError(f"recipient {value!r} contains a line break")
    name, address = parseaddr(text)
    if name or address != text or text.count("@") != 1:
        raise HeaderError(f"recipient {value!r} is not one plain address")
    local, domain = text.rsplit("@", 1)
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise HeaderError(f"recipient domain {domain!r} is invalid") from exc
    address = f"{local}@{domain}"
    if not local.isascii() or not _ADDRESS.match(address):
        raise HeaderError(f"recipient {value!r} is not a valid address")
    return address


def unsubscribe_links(box: MailboxConfig, to_email: str, settings: Any) -> tuple[str, str | None]:
    """(mailto URI, HTTPS URL or None)."""
    mailbox = settings.unsubscribe_mailto or box.reply_to or box.from_email
    mailto = f"mailto:{mailbox}?subject=unsubscribe"
    url = None
    base = settings.unsubscribe_url.strip()
    if base and settings.unsubscribe_secret:
        url = f"{base.rstrip('/')}/{unsubscribe_token(to_email, settings.unsubscribe_secret)}"
    return mailto, url


def new_message_id(box: MailboxConfig) -> str:
    return make_msgid(domain=box.from_domain)


def render_email(*, box: MailboxConfig, to_email: str, subject: str, body: str, message_id: str,
                 settings: Any, language: str = "ru", now: datetime | None = None) -> bytes:
    """The message as sent (CRLF bytes): plain text UTF-8 with a visible unsubscribe line.

    Written out directly: From/Reply-To (cached) and Subject go through the email package's
    header parser and folder, the same code `EmailMessage` uses; To, Date, Message-ID and
    List-Unsubscribe are validated ASCII that needs no folding. Building an `EmailMessage` per
    message parsed and folded nine headers and cost more than the SMTP transaction.
    """
    now = now or datetime.now(timezone.utc)
    recipient = envelope_address(to_email)
    from_name = clean_header(box.from_name, "from name") if box.from_name.strip() else ""
    lines = [_folded("From", formataddr((from_name, box.from_email)) if from_name
                     else box.from_email),
             f"To: {recipient}\r\n".encode("ascii"),
             _fold("Subject", clean_header(subject, "subject")),
             f"Date: {format_datetime(now.astimezone(timezone.utc))}\r\n".encode("ascii")]
    if not _MESSAGE_ID.fullmatch(message_id):
        raise HeaderError(f"bad Message-ID {message_id!r}")
    lines.append(f"Message-ID: {message_id}\r\n".encode("ascii"))
    if box.reply_to:
        lines.append(_folded("Reply-To", clean_header(box.reply_to, "reply-to")))
    mailto, url = unsubscribe_links(box, recipient, settings)
    for part in (url or "", mailto):
        if any(ord(ch) < 33 or ord(ch) > 126 or ch in "<>" for ch in part):
            raise HeaderError(f"unsubscribe URI {part!r} is not plain ASCII")
    if url:
        # Stored as we fold it: a folder would turn a long URL into an RFC 2047 encoded-word,
        # which mail clients cannot use.
        lines.append(f"List-Unsubscribe: <{url}>,\r\n <{mailto}>\r\n".encode("ascii"))
        if url.startswith("https://"):
            lines.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    else:
        lines.append(f"List-Unsubscribe: <{mailto}>\r\n".encode("ascii"))
    lines.append(b'Content-Type: text/plain; charset="utf-8"\r\n'
                 b"Content-Transfer-Encoding: base64\r\nMIME-Version: 1.0\r\n\r\n")
    plain, with_link = FOOTERS.get(language, FOOTERS["ru"])
    footer = with_link.format(url=url) if url else plain
    text = body.replace("\r\n", "\n").replace("\r", "\n").rstrip()
    content = f"{text}\n\n-- \n{footer}\n".encode("utf-8")
    data = b"\r\n".join(content.splitlines()) + b"\r\n"
    for i in range(0, len(data), 57):  # 76-column base64 lines
        lines.append(binascii.b2a_base64(data[i:i + 57], newline=False) + b"\r\n")
    return b"".join(lines)


def _fold(name: str, value: str) -> bytes:
    """One header as `EmailMessage` would write it (RFC 2047 words, folded at 78)."""
    return MESSAGE_POLICY.fold_binary(*MESSAGE_POLICY.header_store_parse(name, value))


_folded = lru_cache(maxsize=64)(_fold)  # the sender's headers repeat for every message
