"""SMTP submission emulator (aiosmtpd): STARTTLS port (+ optional implicit-TLS port), AUTH
PLAIN/LOGIN, per-recipient reply faults, and a mailbox of every accepted message (memory, mbox,
one .eml file each).
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from leadgen.sandbox.faults import Faults
from leadgen.sandbox.tls import SandboxCA

# aiosmtpd warns on every connection of the implicit-TLS port (AUTH without STARTTLS there).
logging.getLogger("mail.log").setLevel(logging.ERROR)

DEFAULT_USER = "outreach@agency-sandbox.test"
DEFAULT_PASSWORD = "sandbox-app-pass-16"


def _mbox_entry(raw: bytes, sender: str, received: datetime) -> bytes:
    """One mboxo entry, as `mailbox.mbox.add` writes it: a From_ line, body lines starting
    with "From " quoted, LF line ends, a blank line after."""
    stamp = time.asctime(received.timetuple())
    body = raw.replace(b"\r\n", b"\n")
    body = re.sub(rb"(?m)^From ", b">From ", body)
    if not body.endswith(b"\n"):
        body += b"\n"
    return f"From {sender or 'MAILER-DAEMON'} {stamp}\n".encode() + body + b"\n"


@dataclass
class StoredMessage:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    username: str | None
    tls: bool
    received_at: datetime
    reply_lost: bool = False  # stored, but the connection dropped before the 250 reply

    @property
    def headers(self) -> dict[str, str]:
        return {name: str(value) for name, value in self.message.items()}

    @property
    def subject(self) -> str:
        return str(self.message.get("Subject", ""))

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", ""))

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain", "html"))
        return part.get_content() if part is not None else ""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _Controller(Controller):
    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH on the implicit-TLS port is fine: it is TLS
            warnings.simplefilter("ignore", UserWarning)
            return super().factory()


@dataclass
class _Counters:
    lock: threading.Lock = field(default_factory=threading.Lock)
    replies: dict[tuple[int, str], int] = field(default_factory=dict)


class _Handler:
    def __init__(self, box: SmtpServer) -> None:
        self.box = box

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        reply = self.box.recipient_reply(address)
        if reply is not None:
            if reply.startswith("421"):  # service closing: the server hangs up after the reply
                server.loop.call_soon(server.transport.close)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        drop = self.box.faults.roll("smtp:drop_after_data", self.box.faults.smtp.drop_after_data)
        tls = server.transport.get_extra_info("ssl_object") is not None
        stored = self.box.store(session, envelope, tls=tls, reply_lost=drop)
        if drop:
            server.transport.abort()
        return f"250 2.0.0 OK: queued as {stored}"


class SmtpServer:
    """`start()` → STARTTLS port; `.ssl_port` is the implicit-TLS port (when enabled)."""

    def __init__(self, ca: SandboxCA, directory: Path, *,
                 credentials: dict[str, str] | None = None, faults: Faults | None = None,
                 implicit_tls: bool = True, host: str = "127.0.0.1",
                 server_name: str = "smtp.sandbox.test") -> None:
        self.ca = ca
        self.directory = Path(directory)
        self.credentials = credentials or {DEFAULT_USER: DEFAULT_PASSWORD}
        self.faults = faults or Faults()
        self.implicit_tls = implicit_tls
        self.host = host
        self.server_name = server_name
        self.port = 0
        self.ssl_port = 0
        self._messages: list[StoredMessage] = []
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._controllers: list[Controller] = []
        self.mbox_path = self.directory / "mailbox.mbox"
        self.eml_dir = self.directory / "eml"
        self.auth_failures: list[str] = []

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> int:
        self.eml_dir.mkdir(parents=True, exist_ok=True)
        context = self.ca.server_context(["localhost", "127.0.0.1", self.server_name])
        handler = _Handler(self)
        starttls = self._controller(handler, tls_context=context, require_starttls=True,
                                    auth_require_tls=True)
        self.port = starttls.port
        if self.implicit_tls:
            implicit = self._controller(handler, ssl_context=context, auth_require_tls=False)
            self.ssl_port = implicit.port
        return self.port

    def _controller(self, handler: _Handler, **kwargs: Any) -> Controller:
        last: Exception | None = None
        for _ in range(5):  # the free port may be taken between the probe and the bind
            controller = _Controller(
                handler, hostname=self.host, port=free_port(self.host),
                server_hostname=self.server_name, authenticator=self._authenticate,
                auth_required=True, ident="leadgen sandbox ESMTP", **kwargs)
            try:
                controller.start()
            except (OSError, RuntimeError) as exc:
                last = exc
                continue
            self._controllers.append(controller)
            return controller
        raise RuntimeError(f"could not start the SMTP server: {last}")

    def stop(self) -> None:
        for controller in self._controllers:
            try:
                controller.stop()
            except (AssertionError, RuntimeError):
                pass
        self._controllers.clear()

    # --- behaviour ----------------------------------------------------------------------------
    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        ok = self.credentials.get(username) == password and not self.faults.smtp.auth_fails(username)
        if not ok:
            with self._lock:
                self.auth_failures.append(username)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def recipient_reply(self, address: str) -> str | None:
        for index, rule in enumerate(self.faults.smtp.recipients):
            if not rule.pattern.search(address):
                continue
            if rule.times is None:
                return rule.reply
            with self._counters.lock:
                key = (index, address.lower())
                used = self._counters.replies.get(key, 0)
                if used < rule.times:
                    self._counters.replies[key] = used + 1
                    return rule.reply
        return None

    def store(self, session: Session, envelope: Envelope, *, tls: bool,
              reply_lost: bool = False) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        parsed = BytesParser(policy=policy.default).parsebytes(raw)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) \
            else None
        message = StoredMessage(
            mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), raw=raw,
            message=parsed,  # type: ignore[arg-type]
            username=login, tls=tls,
            received_at=datetime.now(timezone.utc), reply_lost=reply_lost)
        with self._lock:
            self._messages.append(message)
            number = len(self._messages)
            (self.eml_dir / f"{number:05d}.eml").write_bytes(raw)
            with open(self.mbox_path, "ab") as box:  # append; never rescan the whole file
                box.write(_mbox_entry(raw, message.mail_from, message.received_at))
        return f"SBX{number:07d}"

    def messages(self) -> list[StoredMessage]:
        with self._lock:
            return list(self._messages)
