"""End to end: a real Celery worker (Redis broker, PostgreSQL) enriches sandbox companies; the
primaries match the sandbox's ground truth and no private address is ever requested."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from leadgen.config import reset_settings
from leadgen.db import session_scope
from leadgen.models import Company, Contact
from leadgen.sandbox.runner import Sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.redis, pytest.mark.postgres]

REDIS_DB = 13  # a database of its own on the shared Redis


def test_worker_enriches_sandbox_companies(pg_only_url: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    with Sandbox(tmp_path / "sandbox", seed=11) as sb:
        truth = sb.world.ground_truth()
        domains = sorted(truth)[:40]
        env = {**sb.env(), "DATABASE_URL": pg_only_url, "REDIS_URL": broker,
               "ENRICH_PER_HOST_DELAY_SECONDS": "0.05", "ENRICH_BATCH_SIZE": "15",
               "ENRICH_TIMEOUT_SECONDS": "4"}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_settings()
        with session_scope() as session:
            for domain in domains:
                session.add(Company(domain=domain, name=domain, homepage_url=f"https://{domain}/"))
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "leadgen.celery_app", "worker", "-Q", "crawl",
             "--pool", "solo", "--without-heartbeat", "--without-gossip", "--without-mingle",
             "-n", f"enrich-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "WARNING"],
            env={**os.environ, **env}, cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        try:
            from leadgen.celery_app import app, reconfigure
            from leadgen.config import get_settings

            reconfigure(get_settings())
            app.send_task("leadgen.enrich.dispatch", queue="crawl")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with session_scope() as session:
                    pending = session.scalar(select(Company.id).where(
                        Company.status.in_(["new", "enriching"])).limit(1))
                if pending is None:
                    break
                assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
                time.sleep(0.5)
            else:
                pytest.fail("the worker did not enrich every company in time")
        finally:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
            client.flushdb()
        ssrf = sb.web.stats.get("ssrf", 0)

    with session_scope() as session:
        companies = {c.domain: c for c in session.scalars(select(Company))}
        primaries = dict(session.execute(
            select(Company.domain, Contact.email).join(Contact, Contact.company_id == Company.id)
            .where(Contact.is_primary.is_(True))).all())
    assert ssrf == 0
    publishing = [d for d in domains if truth[d]["primary"]]
    found = [d for d in publishing if primaries.get(d) == truth[d]["primary"]]
    wrong = [d for d, email in primaries.items() if email != truth[d]["primary"]]
    assert len(found) >= 0.9 * len(publishing), (len(found), len(publishing))
    assert wrong == []
    for domain, company in companies.items():
        if company.status == "contacts_ready":
            assert domain in primaries and company.status_reason is None
        elif company.status == "duplicate":  # shares an email found on an older company's site
            assert company.duplicate_of_id is not None and company.status_reason
        else:
            assert company.status == "contacts_not_found"
            assert company.status_reason in {"unreachable", "blocked", "robots", "no_email"}
    reset_settings()
