"""Shared helpers for the outreach integration tests (no tests here): the sandbox SMTP server
(STARTTLS + AUTH, per-recipient faults) and OpenAI emulator, settings and seed rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from leadgen.config import load_settings, reset_settings
from leadgen.models import Company, Contact
from leadgen.sandbox.faults import Faults
from leadgen.sandbox.openai_api import OpenAIEmulator
from leadgen.sandbox.smtp import DEFAULT_PASSWORD, DEFAULT_USER, SmtpServer
from leadgen.sandbox.tls import SandboxCA

MSK = ZoneInfo("Europe/Moscow")
SMTP_FAULTS = {
    "recipients": {
        "^bounce-": "550 5.1.1 The email account that you tried to reach does not exist",
        "^busy-": "451 4.3.0 Mail server temporarily rejected message",
        "^spam-": "554 5.7.1 Message rejected as spam",
    },
    "auth_fail_users": ["^locked@"],
}


def msk(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A Moscow wall-clock time as aware UTC. 2026-11-23 is a Monday."""
    return datetime(year, month, day, hour, minute, tzinfo=MSK).astimezone(timezone.utc)


MONDAY_10 = msk(2026, 11, 23, 10, 0)


@pytest.fixture
def ca(tmp_path_factory: pytest.TempPathFactory) -> SandboxCA:
    return SandboxCA(tmp_path_factory.mktemp("ca"))


def start_smtp(ca: SandboxCA, directory: Path, **faults: Any) -> SmtpServer:
    spec = {**SMTP_FAULTS, **faults}
    server = SmtpServer(ca, directory, faults=Faults.from_dict({"smtp": spec}),
                        credentials={DEFAULT_USER: DEFAULT_PASSWORD,
                                     "locked@agency-sandbox.test": "x"},
                        implicit_tls=True)
    server.start()
    return server


@pytest.fixture
def smtp(ca: SandboxCA, tmp_path: Path) -> Iterator[SmtpServer]:
    server = start_smtp(ca, tmp_path / "mail")
    yield server
    server.stop()


@pytest.fixture
def llm() -> Iterator[OpenAIEmulator]:
    server = OpenAIEmulator()
    server.start()
    yield server
    server.stop()


def smtp_env(server: SmtpServer, ca: SandboxCA, **extra: Any) -> dict[str, str]:
    env = {
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port), "SMTP_SECURITY": "starttls",
        "SMTP_USERNAME": DEFAULT_USER, "SMTP_PASSWORD": DEFAULT_PASSWORD,
        "SMTP_FROM_EMAIL": DEFAULT_USER, "SMTP_FROM_NAME": "Алексей из Песочницы",
        "SMTP_REPLY_TO": "replies@agency-sandbox.test", "SMTP_CA_FILE": str(ca.ca_file),
        "EMAIL_SENDING_ENABLED": "true", "SEND_GAP_MIN_SECONDS": "0", "SEND_GAP_MAX_SECONDS": "0",
        "SMTP_TIMEOUT_SECONDS": "10",
    }
    env.update({key.upper(): str(value) for key, value in extra.items()})
    return env


def configure(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    return load_settings()


def add_company(session, domain: str, email: str | None = None, *, status: str = "contacts_ready",
                niche: str | None = "стоматология", city: str | None = "Москва",
                excerpt: str | None = None) -> int:
    company = Company(domain=domain, name=f"Клиника {domain.split('.')[0].title()}",
                      homepage_url=f"https://{domain}/", niche=niche, city=city, status=status,
                      homepage_excerpt=excerpt or "Стоматологическая клиника: лечение, "
                      "имплантация и гигиена полости рта. Работаем с 2009 года.")
    session.add(company)
    session.flush()
    session.add(Contact(company_id=company.id, email=email or f"info@{domain}", method="mailto",
                        confidence=1.0, is_primary=True))
    session.commit()
    return company.id
