"""SMTP emulator with smtplib: STARTTLS against the sandbox CA, AUTH, reply faults, mailbox."""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from leadgen.sandbox.faults import Faults
from leadgen.sandbox.smtp import SmtpServer
from leadgen.sandbox.tls import SandboxCA

USER, PASSWORD = "sender@agency.test", "app-password-1234"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> SandboxCA:
    return SandboxCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def make(ca: SandboxCA, tmp_path: Path) -> Iterator:
    servers: list[SmtpServer] = []

    def factory(faults: dict | None = None) -> SmtpServer:
        server = SmtpServer(ca, tmp_path / f"mail{len(servers)}", credentials={USER: PASSWORD},
                            faults=Faults.from_dict(faults or {}))
        server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


def message(to: str = "info@klinika.ru", subject: str = "Идея для клиники") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Анна <{USER}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = "<abc123@agency.test>"
    msg.set_content("Здравствуйте!\n\nТекст письма.\n")
    return msg


def connect(server: SmtpServer, ca: SandboxCA, login: bool = True) -> smtplib.SMTP:
    conn = smtplib.SMTP("127.0.0.1", server.port, timeout=5)
    conn.starttls(context=ssl.create_default_context(cafile=str(ca.ca_file)))
    if login:
        conn.login(USER, PASSWORD)
    return conn


def test_starttls_login_and_delivery(make, ca: SandboxCA) -> None:
    server = make()
    with connect(server, ca) as conn:
        assert conn.send_message(message()) == {}
        assert conn.send_message(message("sales@okna.ru", "Второе")) == {}
    stored = server.messages()
    assert [m.rcpt_tos for m in stored] == [["info@klinika.ru"], ["sales@okna.ru"]]
    first = stored[0]
    assert first.mail_from == USER and first.username == USER and first.tls
    assert first.subject == "Идея для клиники" and first.message_id == "<abc123@agency.test>"
    assert first.headers["To"] == "info@klinika.ru"
    assert "Текст письма." in first.text()
    assert b"Subject:" in first.raw
    assert len(mailbox.mbox(server.mbox_path)) == 2
    assert sorted(p.name for p in server.eml_dir.iterdir()) == ["00001.eml", "00002.eml"]


def test_implicit_tls_port(make, ca: SandboxCA) -> None:
    server = make()
    context = ssl.create_default_context(cafile=str(ca.ca_file))
    with smtplib.SMTP_SSL("127.0.0.1", server.ssl_port, context=context, timeout=5) as conn:
        conn.login(USER, PASSWORD)
        conn.send_message(message())
    assert server.messages()[0].tls


def test_certificate_is_verified_against_the_sandbox_ca(make) -> None:
    server = make()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as conn:
        with pytest.raises(ssl.SSLCertVerificationError):
            conn.starttls(context=ssl.create_default_context())


def test_no_auth_before_starttls_and_no_mail_before_auth(make, ca: SandboxCA) -> None:
    server = make()
    with smtplib.SMTP("127.0.0.1", server.port, timeout=5) as conn:
        conn.ehlo()
        assert not conn.has_extn("auth")
        with pytest.raises(smtplib.SMTPNotSupportedError):
            conn.login(USER, PASSWORD)
    with connect(server, ca, login=False) as conn:
        conn.ehlo()
        assert conn.has_extn("auth")
        with pytest.raises(smtplib.SMTPSenderRefused) as error:
            conn.send_message(message())
        assert error.value.smtp_code == 530
    assert server.messages() == []


def test_wrong_password_and_locked_user(make, ca: SandboxCA) -> None:
    server = make({"smtp": {"auth_fail_users": ["^sender@"]}})
    for password in ("wrong", PASSWORD):
        with connect(server, ca, login=False) as conn:
            with pytest.raises(smtplib.SMTPAuthenticationError) as error:
                conn.login(USER, password)
            assert error.value.smtp_code == 535
            assert b"5.7.8" in error.value.smtp_error
    assert set(server.auth_failures) == {USER}  # smtplib tries PLAIN, then LOGIN
    assert server.messages() == []


@pytest.mark.parametrize("pattern, reply, code", [
    ("^ghost@", "550 5.1.1 The email account that you tried to reach does not exist", 550),
    ("^full@", "452 4.2.2 The recipient's inbox is out of storage space", 452),
    ("^slow@", "451 4.3.0 Temporary local problem, try later", 451),
])
def test_recipient_reply_faults(make, ca: SandboxCA, pattern: str, reply: str, code: int) -> None:
    server = make({"smtp": {"recipients": {pattern: reply}}})
    target = pattern.strip("^") + "firma.ru"
    with connect(server, ca) as conn:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as error:
            conn.send_message(message(target))
        assert error.value.recipients[target][0] == code
        assert conn.send_message(message("ok@firma.ru")) == {}
    assert [m.rcpt_tos for m in server.messages()] == [["ok@firma.ru"]]


def test_transient_reply_only_the_first_time(make, ca: SandboxCA) -> None:
    server = make({"smtp": {"recipients": {"^busy@": {"reply": "451 4.3.0 Try again later",
                                                      "times": 1}}}})
    with connect(server, ca) as conn:
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            conn.send_message(message("busy@firma.ru"))
        assert conn.send_message(message("busy@firma.ru")) == {}


def test_421_closes_the_connection(make, ca: SandboxCA) -> None:
    server = make({"smtp": {"recipients": {"@busy-host": "421 4.3.0 Service not available"}}})
    conn = connect(server, ca)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        conn.send_message(message("x@busy-host.ru"))
    with pytest.raises(smtplib.SMTPServerDisconnected):
        conn.noop()


def test_dropped_connection_after_data(make, ca: SandboxCA) -> None:
    server = make({"smtp": {"drop_after_data": 1.0}})
    conn = connect(server, ca)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        conn.send_message(message())
    stored = server.messages()
    assert len(stored) == 1 and stored[0].reply_lost


def test_bad_fault_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        Faults.from_dict({"smtp": {"recipients": {"x": "oops"}}})
    with pytest.raises(ValueError):
        Faults.from_dict({"yandex": {"429": 2}})
    with pytest.raises(ValueError):
        Faults.from_dict({"nosuch": {}})
