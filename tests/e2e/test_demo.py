"""`leadgen demo` from a clean directory, embedded and on the production path, checked against
the sandbox's ground truth."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text

from leadgen.db import scratch_database
from leadgen.sandbox.world import World
from tests.conftest import PG_ADMIN

pytestmark = pytest.mark.e2e


def run_demo(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "leadgen", "demo", "--dir", str(directory), "--timeout", "400",
         *extra],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def delivered(directory: Path) -> list:
    boxes = list((directory / "sandbox" / "mail").glob("*.mbox"))
    assert boxes, "the sandbox mailbox file is missing"
    return [message for box in boxes for message in mailbox.mbox(box)]


def check_funnel(database_url: str, messages: list) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        def scalar(sql: str) -> int:
            return conn.execute(text(sql)).scalar_one()

        assert scalar("select count(*) from serp_queries") >= 10
        assert scalar("select count(*) from serp_queries where status not in "
                      "('completed', 'failed')") == 0
        assert scalar("select count(*) from companies where status in ('new', 'enriching')") == 0
        sent = scalar("select count(*) from outreach_messages where status = 'sent'")
        ready = scalar("select count(*) from companies where status in "
                       "('contacts_ready', 'contacted')")
        assert sent > 20
        assert scalar("select count(*) from outreach_messages where status in "
                      "('scheduled', 'sending')") == 0
        primaries = dict(conn.execute(text(
            "select c.domain, k.email from companies c join contacts k on k.company_id = c.id "
            "where k.is_primary")).all())
    engine.dispose()
    assert sent <= ready

    # Nothing delivered twice, every sent message is in the mailbox.
    ids = Counter(message["Message-ID"] for message in messages)
    assert len(messages) == sent
    assert max(ids.values()) == 1
    recipients = Counter(message["To"] for message in messages)
    assert max(recipients.values()) == 1

    # The primary emails match the sandbox's ground truth.
    truth = World(seed=7).ground_truth()
    judged = [domain for domain in primaries if truth.get(domain, {}).get("primary")]
    correct = sum(primaries[domain] == truth[domain]["primary"] for domain in judged)
    assert judged and correct / len(judged) >= 0.9, (correct, len(judged))


def test_demo_embedded_then_again_duplicates_nothing(tmp_path):
    directory = tmp_path / "demo"
    output = run_demo(directory).stdout
    assert "A delivered email" in output and "Sandbox mailbox" in output
    url = f"sqlite:///{directory / 'leadgen.sqlite3'}"
    first = delivered(directory)
    check_funnel(url, first)

    run_demo(directory)  # the mailbox file keeps what the first run delivered
    again = delivered(directory)
    assert [m["Message-ID"] for m in again] == [m["Message-ID"] for m in first]
    check_funnel(url, again)  # same rows, nothing new sent


@pytest.fixture
def pg_database():
    with scratch_database(PG_ADMIN, prefix="leadgen_demo") as url:
        yield url


def test_demo_distributed_with_real_worker_and_beat(tmp_path, pg_database):
    broker = "redis://127.0.0.1:6379/12"
    redis.Redis.from_url(broker).flushdb()
    directory = tmp_path / "demo"
    run_demo(directory, "--database", pg_database, "--broker", broker)
    check_funnel(pg_database, delivered(directory))
