"""Shared fixtures: real databases (SQLite file and PostgreSQL), settings from the environment.

PostgreSQL tests use LEADGEN_TEST_PG_URL (default: postgres@127.0.0.1:5432) and a database of
their own per test session, created and dropped here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from leadgen import migrations
from leadgen.celery_app import reconfigure
from leadgen.config import get_settings, reset_settings
from leadgen.db import get_engine, scratch_database
from leadgen.models import Base

PG_ADMIN = os.environ.get("LEADGEN_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database at head for this test session."""
    if not pg_available():
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}: start it (see .ci/run)")
    with scratch_database(PG_ADMIN, prefix="leadgen_test") as url:
        migrations.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "leadgen.sqlite3"
    url = f"sqlite:///{path}"
    migrations.upgrade(url)
    return url


def _clean(url: str) -> None:
    engine = get_engine(url)
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test using it runs on both databases, starting empty; settings point at it."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("pg_url")
    else:
        url = request.getfixturevalue("sqlite_url")
    _clean(url)
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    yield url
    reset_settings()


@pytest.fixture
def pg_only_url(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    _clean(pg_url)
    monkeypatch.setenv("DATABASE_URL", pg_url)
    reset_settings()
    yield pg_url
    reset_settings()


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    db = sessionmaker(bind=get_engine(db_url), expire_on_commit=False)()
    try:
        yield db
    finally:
        db.rollback()
        db.close()


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's .env or writes into the checkout."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("YANDEX_", "GOOGLE_", "SMTP_", "OPENAI_", "SHEET_", "POSTGRES_",
                           "GMAIL_", "MAILBOXES_", "ENRICH_", "DATABASE_URL", "REDIS_URL",
                           "CELERY_")):
            monkeypatch.delenv(key, raising=False)
    reset_settings()
    reconfigure(get_settings())
    yield
    monkeypatch.undo()  # the test's own environment goes first
    reset_settings()
    reconfigure(get_settings())  # a test that pointed Celery at a broker leaves no trace


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return Path(__file__).parent / "fixtures" / "yandex"
