"""Intake → submit → poll on both databases, against the sandbox Yandex + IAM emulators."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from leadgen.config import get_settings
from leadgen.db import get_engine
from leadgen.models import SearchBatchLog, SerpOperation, SerpQuery
from leadgen.sandbox.faults import EmulatorFaults, Faults
from leadgen.sandbox.iam import IamEmulator, TokenRegistry
from leadgen.sandbox.keys import yandex_authorized_key
from leadgen.sandbox.yandex import YandexSearchEmulator
from leadgen.search import service
from leadgen.search.intake import sync
from leadgen.search.poll import poll_due
from leadgen.search.queries import InputRow, generate_queries, plan_and_insert
from leadgen.search.ratelimit import RateLimiter
from leadgen.search.submit import claim_due_queries, submit_due
from leadgen.search.yandex import YandexSearchClient

FOLDER = "b1gsandboxfolder"


class SampleWorld:
    def __init__(self, xml: str) -> None:
        self.xml = xml
        self.calls: list[tuple[str, int, int]] = []

    def search_xml(self, query_text, region, page=0, groups_on_page=100, max_passages=3, now=None):
        self.calls.append((query_text, region, page))
        return self.xml


CSV = """Batch_Tag;CITY;Status; niche ;country
b1;Москва;;Стоматология;
b1;г. Москва;;стоматология ;
b1;Казань;done;Окна;
b1;Санкт‑Петербург;;{long};
b1;Москва;;=HYPERLINK("x");
b1;Атлантида;;Юристы;Нарния
b2;Минск;;Ремонт;Беларусь
;;;;
"""


def write_csv(tmp_path: Path) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(CSV.format(long="я" * 500), encoding="utf-8")
    return path


def count(session: Session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_csv_sync_resync_and_batch_logs(session: Session, tmp_path: Path) -> None:
    settings = get_settings()
    path = write_csv(tmp_path)
    first = sync(session, settings, path, batch_tag="b1")
    assert (first.total_rows, first.processed_rows, first.skipped_rows, first.error_rows) == (7, 5, 2, 2)
    assert first.inserted_queries == 2  # "Стоматология Москва" twice → once; "Юристы Атлантида"
    assert first.duplicate_queries == 1
    errors = {r.row_number: r.error for r in first.results if r.status == "error"}
    assert "500 characters" in errors[5] and "formula" in errors[6]
    warned = next(r for r in first.results if r.row_number == 7)
    assert warned.status == "done" and "Атлантида" in warned.error
    assert count(session, SerpQuery) == 2
    logs = session.scalars(select(SearchBatchLog).order_by(SearchBatchLog.row_number)).all()
    assert [log.row_number for log in logs] == [2, 3, 5, 6, 7]
    assert {log.sync_id for log in logs} == {first.sync_id}
    assert [log.status for log in logs] == ["done", "done", "error", "error", "done"]
    assert logs[0].inserted_count == 1 and logs[1].duplicate_count == 1

    again = sync(session, settings, path, batch_tag="b1")
    assert again.inserted_queries == 0 and again.duplicate_queries == 3
    assert again.sync_id != first.sync_id
    assert count(session, SerpQuery) == 2
    assert count(session, SearchBatchLog) == 10

    everything = sync(session, settings, path)  # no tag filter: the b2 row too
    assert everything.inserted_queries == 1
    minsk = session.scalar(select(SerpQuery).where(SerpQuery.niche == "Ремонт"))
    assert (minsk.region_id, minsk.region_source, minsk.batch_tag) == (157, "city", "b2")


def test_refresh_rearms_old_finished_queries(session: Session, monkeypatch) -> None:
    monkeypatch.setenv("QUERY_REFRESH_DAYS", "30")
    from leadgen.config import reset_settings
    reset_settings()
    settings = get_settings()
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    planned = generate_queries(InputRow(niche="Окна", city="Москва"), settings)
    done, dups = plan_and_insert(session, planned, settings, now)
    session.commit()
    query = session.get(SerpQuery, done[0].id)
    query.status, query.completed_at, query.attempts = "completed", now, 2
    session.commit()
    planned = generate_queries(InputRow(niche="Окна", city="Москва"), settings)
    assert plan_and_insert(session, planned, settings, now + timedelta(days=5)) == ([], 1)
    later = now + timedelta(days=31)
    planned = generate_queries(InputRow(niche="окна", city="москва"), settings)
    refreshed, dups = plan_and_insert(session, planned, settings, later)
    session.commit()
    assert [q.id for q in refreshed] == [query.id] and dups == 0
    session.refresh(query)
    assert (query.status, query.attempts, query.completed_at) == ("pending", 0, None)
    assert query.scheduled_for > later


# --- submit and poll against the emulators ----------------------------------------------------


@pytest.fixture
def yandex(monkeypatch, tmp_path, samples_dir):
    registry = TokenRegistry()
    faults = Faults(seed=1)
    iam = IamEmulator(registry, faults=faults)
    world = SampleWorld((samples_dir / "v2-deferred-2025-10-20-yandex-cloud.trimmed.xml").read_text())
    emulator = YandexSearchEmulator(world, registry, FOLDER, faults=faults, rps=1000)
    iam.server.start()
    emulator.start()
    key_path = tmp_path / "authorized_key.json"
    iam.add_key(yandex_authorized_key(key_path))
    env = {"YANDEX_CLOUD_SA_KEY_FILE": str(key_path), "YANDEX_CLOUD_FOLDER_ID": FOLDER,
           "YANDEX_SEARCH_URL": emulator.search_url, "YANDEX_OPERATIONS_URL": emulator.operations_url,
           "YANDEX_IAM_URL": iam.token_url, "YANDEX_ENFORCE_NIGHT_WINDOW": "false",
           "YANDEX_BACKOFF_BASE_SECONDS": "0", "YANDEX_POLL_INTERVAL_SECONDS": "0",
           "YANDEX_MAX_ATTEMPTS": "3"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from leadgen.config import reset_settings
    reset_settings()
    service.reset()
    yield {"emulator": emulator, "iam": iam, "registry": registry, "faults": faults, "world": world}
    service.reset()
    emulator.stop()
    iam.server.stop()


def seed_queries(session: Session, n: int, prefix: str = "ниша") -> datetime:
    settings = get_settings()
    now = datetime.now(timezone.utc)
    for i in range(n):
        planned = generate_queries(InputRow(niche=f"{prefix} {i}", city="Казань"), settings)
        plan_and_insert(session, planned, settings, now)
    session.commit()
    return session.scalar(select(func.max(SerpQuery.scheduled_for))) + timedelta(minutes=1)


def tools():
    settings = get_settings()
    return settings, YandexSearchClient(settings), RateLimiter.from_settings(settings)


def test_submit_poll_fetch(session: Session, yandex) -> None:
    due = seed_queries(session, 3)
    settings, client, limiter = tools()
    outcomes = submit_due(session, settings, client, limiter, now=due)
    assert [o.outcome for o in outcomes] == ["submitted"] * 3
    assert len(yandex["emulator"].submitted) == 3
    assert yandex["emulator"].submitted[0]["region"] == "43"
    assert submit_due(session, settings, client, limiter, now=due) == []  # nothing twice
    operations = session.scalars(select(SerpOperation)).all()
    assert len(operations) == 3 and {op.status for op in operations} == {"pending"}
    assert {q.status for q in session.scalars(select(SerpQuery))} == {"submitted"}

    polled = poll_due(session, settings, client, limiter, now=due + timedelta(seconds=1))
    assert [p.outcome for p in polled] == ["fetched"] * 3
    session.expire_all()
    for op in session.scalars(select(SerpOperation)):
        assert op.status == "fetched" and op.raw_xml.startswith("<?xml") and op.polls == 1
    assert {q.status for q in session.scalars(select(SerpQuery))} == {"completed"}
    assert poll_due(session, settings, client, limiter, now=due + timedelta(seconds=2)) == []


def test_not_done_operation_is_polled_again(session: Session, yandex) -> None:
    yandex["emulator"].operation_delay_s = 3600
    due = seed_queries(session, 1)
    settings, client, limiter = tools()
    submit_due(session, settings, client, limiter, now=due)
    assert [p.outcome for p in poll_due(session, settings, client, limiter, now=due)] == ["pending"]
    op = session.scalars(select(SerpOperation)).one()
    assert op.status == "pending" and op.lease_until is None and op.next_poll_at == due


def test_429_and_5xx_retry_with_backoff_then_fail(session: Session, yandex) -> None:
    due = seed_queries(session, 1)
    settings, client, limiter = tools()
    yandex["faults"].emulators["yandex"] = EmulatorFaults(errors={429: 1.0})
    assert [o.outcome for o in submit_due(session, settings, client, limiter, now=due)] == ["retry"]
    query = session.scalars(select(SerpQuery)).one()
    assert (query.status, query.attempts) == ("pending", 1) and "429" in query.last_error
    yandex["faults"].emulators["yandex"] = EmulatorFaults()
    assert [o.outcome for o in submit_due(session, settings, client, limiter, now=due)] == ["submitted"]

    due = seed_queries(session, 1, "другая ниша")
    yandex["faults"].emulators["yandex"] = EmulatorFaults(errors={503: 1.0})
    outcomes = [submit_due(session, settings, client, limiter, now=due)[0].outcome for _ in range(3)]
    assert outcomes == ["retry", "retry", "failed"]
    failed = session.scalars(select(SerpQuery).where(SerpQuery.status == "failed")).one()
    assert failed.attempts == 3 and "503" in failed.last_error


def test_permanent_4xx_fails_with_reason(session: Session, yandex, monkeypatch) -> None:
    monkeypatch.setenv("YANDEX_CLOUD_FOLDER_ID", "b1gwrongfolder")
    from leadgen.config import reset_settings
    reset_settings()
    due = seed_queries(session, 1)
    settings, client, limiter = tools()
    assert [o.outcome for o in submit_due(session, settings, client, limiter, now=due)] == ["failed"]
    query = session.scalars(select(SerpQuery)).one()
    assert query.status == "failed" and "403" in query.last_error and "b1gwrongfolder" in query.last_error


def test_expired_and_gone_operations_resubmit_the_query(session: Session, yandex) -> None:
    yandex["emulator"].operation_delay_s = 3600
    due = seed_queries(session, 2)
    settings, client, limiter = tools()
    submit_due(session, settings, client, limiter, now=due)
    late = due + timedelta(hours=13)
    first, second = session.scalars(select(SerpOperation).order_by(SerpOperation.id)).all()
    yandex["emulator"].operations.pop(second.operation_id)  # 404 from the service
    outcomes = sorted(p.outcome for p in poll_due(session, settings, client, limiter, now=due))
    assert outcomes == ["expired", "pending"]
    assert [p.outcome for p in poll_due(session, settings, client, limiter, now=late)] == ["expired"]
    session.expire_all()
    assert {op.status for op in session.scalars(select(SerpOperation))} == {"expired"}
    queries = session.scalars(select(SerpQuery)).all()
    assert {(q.status, q.attempts) for q in queries} == {("pending", 1)}
    yandex["emulator"].operation_delay_s = 0
    assert [o.outcome for o in submit_due(session, settings, client, limiter, now=late)] == ["submitted"] * 2
    assert count(session, SerpOperation) == 4
    fetched = poll_due(session, settings, client, limiter, now=late + timedelta(seconds=1))
    assert [p.outcome for p in fetched] == ["fetched"] * 2


def test_operation_error_retries_then_fails(session: Session, yandex) -> None:
    due = seed_queries(session, 1)
    settings, client, limiter = tools()
    yandex["faults"].emulators["yandex"] = EmulatorFaults(content={"operation_error": 1.0})
    for attempt in range(3):
        assert submit_due(session, settings, client, limiter, now=due)[0].outcome == "submitted"
        result = poll_due(session, settings, client, limiter, now=due)[0]
        assert result.outcome == "failed"
    query = session.scalars(select(SerpQuery)).one()
    assert query.status == "failed" and query.attempts == 3 and "operation" in query.last_error
    assert result.query_outcome == "failed"


def test_token_refresh_on_401(session: Session, yandex) -> None:
    due = seed_queries(session, 2)
    settings, client, limiter = tools()
    submit_due(session, settings, client, limiter, now=due, limit=1)
    assert yandex["iam"].server.counts()["create_token"] == 1
    yandex["registry"].revoke_all()  # the cached token is now rejected with 401
    assert [o.outcome for o in submit_due(session, settings, client, limiter, now=due)] == ["submitted"]
    assert yandex["iam"].server.counts()["create_token"] == 2


def test_outside_night_window_returns_quietly(session: Session, yandex, monkeypatch, caplog) -> None:
    monkeypatch.setenv("YANDEX_ENFORCE_NIGHT_WINDOW", "true")
    from leadgen.config import reset_settings
    reset_settings()
    seed_queries(session, 1)
    settings, client, limiter = tools()
    noon = datetime(2030, 1, 1, 9, 0, tzinfo=timezone.utc)  # 12:00 Moscow
    assert submit_due(session, settings, client, limiter, now=noon) == []
    from leadgen.search.submit import submit_query
    query_id = session.scalar(select(SerpQuery.id))
    assert submit_query(session, settings, query_id, client, limiter, now=noon).outcome == "outside_window"
    assert not [r for r in caplog.records if r.exc_info]
    assert yandex["emulator"].submitted == []


def test_tasks_dispatch_and_chain(session: Session, yandex, monkeypatch) -> None:
    from leadgen.tasks import search as search_tasks

    started = []
    monkeypatch.setattr(search_tasks, "start_ingest", started.append)
    seed_queries(session, 2)
    # Due now: move the schedule into the past.
    session.execute(SerpQuery.__table__.update().values(
        scheduled_for=datetime.now(timezone.utc) - timedelta(minutes=1)))
    session.commit()
    assert search_tasks.dispatch_submits.delay().get() == 2
    assert search_tasks.submit_query.delay(1_000_000).get() == "not_claimed"
    assert search_tasks.dispatch_polls.delay().get() == 2
    pks = sorted(session.scalars(select(SerpOperation.id)))
    assert sorted(started) == pks


def test_lost_operation_id_is_logged(session: Session, yandex, monkeypatch, caplog) -> None:
    from leadgen.search import submit as submit_mod

    due = seed_queries(session, 1)
    settings, client, limiter = tools()

    def broken_add(self, obj, _warn=True):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Session, "add", broken_add)
    with pytest.raises(RuntimeError):
        submit_mod.submit_due(session, settings, client, limiter, now=due)
    monkeypatch.undo()
    lost = [r for r in caplog.records if "LOST-OPERATION:" in r.getMessage()]
    operation_id = yandex["emulator"].submitted and next(iter(yandex["emulator"].operations))
    assert lost and operation_id in lost[0].getMessage()


def test_concurrent_claims_never_overlap(pg_only_url: str) -> None:
    factory = sessionmaker(bind=get_engine(pg_only_url), expire_on_commit=False)
    settings = get_settings()
    with factory() as session:
        due = seed_queries(session, 30)
    barrier = threading.Barrier(4)
    results: list[list[int]] = []

    def worker() -> None:
        with factory() as session:
            barrier.wait()
            mine: list[int] = []
            while True:
                got = claim_due_queries(session, settings, due, limit=3)
                if not got:
                    break
                mine.extend(got)
            results.append(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [query_id for mine in results for query_id in mine]
    assert len(claimed) == 30 and len(set(claimed)) == 30
    with factory() as session:
        assert {q.status for q in session.scalars(select(SerpQuery))} == {"submitting"}


def test_full_sandbox_sheet_to_fetched_operations(pg_only_url: str, tmp_path, monkeypatch) -> None:
    """The whole runner (slow to start), once, on PostgreSQL; the other tests cover SQLite."""
    from leadgen.config import reset_settings
    from leadgen.sandbox.runner import Sandbox

    session = sessionmaker(bind=get_engine(pg_only_url), expire_on_commit=False)()
    with session, Sandbox(tmp_path / "sandbox", seed=7) as sandbox:
        monkeypatch.setenv("DATABASE_URL", pg_only_url)
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("YANDEX_ENFORCE_NIGHT_WINDOW", "false")
        reset_settings()
        settings = get_settings()
        summary = sync(session, settings)
        assert summary.inserted_queries > 0 and summary.writeback_error is None
        due = session.scalar(select(func.max(SerpQuery.scheduled_for))) + timedelta(minutes=1)
        client, limiter = YandexSearchClient(settings), RateLimiter.from_settings(settings)
        submitted = submit_due(session, settings, client, limiter, now=due, limit=5)
        assert [o.outcome for o in submitted] == ["submitted"] * len(submitted) and submitted
        fetched = poll_due(session, settings, client, limiter, now=due + timedelta(minutes=2))
        assert [p.outcome for p in fetched] == ["fetched"] * len(submitted)
        xml = session.scalars(select(SerpOperation.raw_xml)).first()
        assert "<yandexsearch" in xml
        client.close()


class _RejectedCredentials:
    """The IAM exchange (or a refreshed token) is rejected: a credentials problem."""

    def headers(self) -> dict[str, str]:
        from leadgen.search.errors import AuthError
        raise AuthError("IAM token exchange rejected (HTTP 400): iat is in the future")

    def invalidate(self) -> bool:
        return False


def test_credentials_failure_while_polling_keeps_the_paid_operation(session: Session,
                                                                    yandex) -> None:
    due = seed_queries(session, 1)
    settings, client, limiter = tools()
    assert [o.outcome for o in submit_due(session, settings, client, limiter, now=due)] == ["submitted"]
    broken = YandexSearchClient(settings, credentials=_RejectedCredentials())
    polled = poll_due(session, settings, broken, limiter, now=due)
    assert [p.outcome for p in polled] == ["transient"]
    session.expire_all()
    op = session.scalars(select(SerpOperation)).one()
    query = session.scalars(select(SerpQuery)).one()
    assert (op.status, op.lease_until) == ("pending", None) and "IAM" in op.error
    assert (query.status, query.attempts) == ("submitted", 0)
    # once the credentials work again the already-paid result is fetched, not searched again
    fetched = poll_due(session, settings, client, limiter, now=due + timedelta(seconds=1))
    assert [p.outcome for p in fetched] == ["fetched"]
    assert len(yandex["emulator"].submitted) == 1
