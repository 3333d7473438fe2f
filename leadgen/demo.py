"""`leadgen demo`: the whole pipeline against the sandbox, from a sample sheet to delivered mail.

Embedded by default (a SQLite file, Celery in process). With `--database` and `--broker` it runs
the production path instead: real `celery worker` and `celery beat` processes on PostgreSQL and
Redis. Windows and pacing are compressed so the run takes a minute or two; everything else is the
production code talking to the emulators through configuration.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadgen import migrations
from leadgen.config import Settings, get_settings, reset_settings
from leadgen.db import dispose_engines, session_scope
from leadgen.models import Company, OutreachMessage, SerpOperation, SerpQuery

# Compressed windows and pacing (the night window is set to the current minute, see
# `compressed_night`); searches, crawls and emails are the production code paths.
DEMO_OVERRIDES = {
    "SEND_WINDOW_START": "00:00",
    "SEND_WINDOW_END": "23:59",
    "SEND_WORKING_DAYS": "1,2,3,4,5,6,7",
    "SEND_GAP_MIN_SECONDS": "0",
    "SEND_GAP_MAX_SECONDS": "1",
    "SMTP_DAILY_CAP": "1000",
    "YANDEX_POLL_INTERVAL_SECONDS": "0",
    "YANDEX_GROUPS_ON_PAGE": "15",
    "ENRICH_PER_HOST_DELAY_SECONDS": "0",
    "ENRICH_TIMEOUT_SECONDS": "3",
    "BEAT_INTERVAL_SECONDS": "2",
    "SHEET_SYNC_ENABLED": "false",
    "LOG_LEVEL": "WARNING",
}

# Work that is still moving through the pipeline.
OPEN_QUERY = ("pending", "submitting", "submitted")
OPEN_OPERATION = ("pending", "fetched")
OPEN_COMPANY = ("new", "enriching")
OPEN_MESSAGE = ("scheduled", "sending")


@dataclass
class Progress:
    queries_done: int = 0
    queries_total: int = 0
    companies_done: int = 0
    companies_total: int = 0
    ready_without_message: int = 0
    messages_total: int = 0
    messages_sent: int = 0
    open_operations: int = 0
    open_messages: int = 0

    @property
    def finished(self) -> bool:
        return (
            self.queries_total > 0
            and self.queries_done == self.queries_total
            and self.open_operations == 0
            and self.companies_done == self.companies_total
            and self.ready_without_message == 0
            and self.open_messages == 0
        )


@dataclass
class DemoResult:
    progress: Progress
    database_url: str
    mailbox_path: str
    sample_emails: list[Any] = field(default_factory=list)
    seconds: float = 0.0


def measure(session: Session) -> Progress:
    def count(column: Any, *where: Any) -> int:
        return session.scalar(select(func.count()).select_from(column.table).where(*where)) or 0

    companies_with_message = select(OutreachMessage.company_id)
    return Progress(
        queries_total=count(SerpQuery.id),
        queries_done=count(SerpQuery.id, SerpQuery.status.in_(("completed", "failed"))),
        companies_total=count(Company.id),
        companies_done=count(Company.id, Company.status.not_in(OPEN_COMPANY)),
        ready_without_message=count(
            Company.id,
            Company.status == "contacts_ready",
            Company.id.not_in(companies_with_message),
        ),
        messages_total=count(OutreachMessage.id),
        messages_sent=count(OutreachMessage.id, OutreachMessage.status == "sent"),
        open_operations=count(SerpOperation.id, SerpOperation.status.in_(OPEN_OPERATION)),
        open_messages=count(OutreachMessage.id, OutreachMessage.status.in_(OPEN_MESSAGE)),
    )


def compressed_night(timezone_name: str) -> dict[str, str]:
    """A "night" that is open now and closes within about a minute, so queries spread over it.

    At least 20 s of it remain: a sync that lands after the window closed would schedule every
    query for the same minute tomorrow."""
    now = datetime.now(ZoneInfo(timezone_name))
    end = now + timedelta(minutes=1) if now.second >= 40 else now
    start = (now - timedelta(minutes=1)).strftime("%H:%M")
    return {"NIGHT_WINDOW_START": start, "NIGHT_WINDOW_END": end.strftime("%H:%M")}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[Settings]:
    """Point this process (and its children) at the sandbox for the duration of the demo."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    reset_settings()
    dispose_engines()
    from leadgen.celery_app import reconfigure

    settings = get_settings()
    reconfigure(settings)
    try:
        yield settings
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        dispose_engines()
        reset_settings()
        reconfigure(get_settings())


def _drive_in_process(settings: Settings, deadline: float,
                      on_progress: Callable[[Progress], None]) -> Progress:
    from leadgen.pipeline import run_once

    first = True
    while True:
        run_once(settings, sync=first)
        first = False
        with session_scope() as session:
            progress = measure(session)
        on_progress(progress)
        if progress.finished or time.monotonic() > deadline:
            return progress
        time.sleep(0.2)


def _drive_distributed(settings: Settings, env: dict[str, str], workdir: Path, deadline: float,
                       on_progress: Callable[[Progress], None]) -> Progress:
    """Real worker and beat processes; this process only triggers the sheet sync and watches."""
    from leadgen.celery_app import app
    from leadgen.pipeline import load_tasks

    load_tasks()
    child_env = {**os.environ, **env}
    queues = "search,crawl,llm,mail,maintenance"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "leadgen", "worker", "-Q", queues,
         "--concurrency=4", "--loglevel=WARNING", "-n", f"demo{os.getpid()}@%h"],
        env=child_env, cwd=workdir, start_new_session=True,
    )
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "leadgen", "beat", "--loglevel=WARNING",
         f"--schedule={workdir / 'celerybeat-schedule'}", f"--pidfile={workdir / 'beat.pid'}"],
        env=child_env, cwd=workdir, start_new_session=True,
    )
    try:
        # The sync runs here, at once: the compressed night must not close while workers start.
        app.tasks["leadgen.intake.sync_sheet"].apply()
        while True:
            time.sleep(1.0)
            with session_scope() as session:
                progress = measure(session)
            on_progress(progress)
            if progress.finished or time.monotonic() > deadline:
                return progress
            for process in (worker, beat):
                if process.poll() is not None:
                    raise RuntimeError(f"celery process exited with {process.returncode}")
    finally:
        for process in (beat, worker):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in (beat, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def run_demo(
    directory: Path,
    *,
    database: str | None = None,
    broker: str | None = None,
    seed: int = 7,
    timeout: float = 600.0,
    on_progress: Callable[[Progress], None] = lambda progress: None,
) -> DemoResult:
    from leadgen.sandbox.runner import Sandbox

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    database_url = database or f"sqlite:///{directory / 'leadgen.sqlite3'}"
    with Sandbox(directory / "sandbox", seed=seed) as sandbox:
        env = {
            **sandbox.env(),
            **DEMO_OVERRIDES,
            **compressed_night(get_settings().app_timezone),
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker or "",
            "REDIS_URL": broker or "",
        }
        with environment(env) as settings:
            migrations.upgrade(database_url)
            deadline = started + timeout
            if broker:
                progress = _drive_distributed(settings, env, directory, deadline, on_progress)
            else:
                progress = _drive_in_process(settings, deadline, on_progress)
        messages = sandbox.mailbox()
        return DemoResult(
            progress=progress,
            database_url=database_url,
            mailbox_path=str(sandbox.endpoints().get("mailbox", "")),
            sample_emails=messages[:2],
            seconds=time.monotonic() - started,
        )
