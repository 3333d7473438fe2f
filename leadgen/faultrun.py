"""`leadgen faults run`: the pipeline under the faults it will meet in production.

Real `celery worker` (prefork) and `celery beat` processes on PostgreSQL and a private
`redis-server` run the whole pipeline against the sandbox with faults switched on: Yandex/IAM
429/5xx, dropped connections, revoked (expired) tokens, failed operations, results expired before
they are fetched; the synthetic web's timeouts, resets, 10 MB pages, redirect loops, redirects to
127.0.0.1 / 169.254.169.254 / 10.0.0.0/8, binary and broken pages; LLM 429/500, invalid JSON,
schema breaks, CR/LF subjects, very long output; SMTP 421/451/550, connections dropped after DATA,
an authentication failure; malformed sheet rows. Meanwhile the driver SIGKILLs worker processes,
kills and restarts Redis (no persistence: every queued message is lost) and terminates every
PostgreSQL backend of the database (what clients see of a PostgreSQL restart). After a drain it
checks the pipeline's promises against the database and the sandbox mailbox.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from leadgen import migrations
from leadgen.config import get_settings
from leadgen.db import create_database, dispose_engines, drop_database, session_scope
from leadgen.demo import DEMO_OVERRIDES, compressed_night, environment, measure
from leadgen.models import (
    Company,
    Contact,
    Mailbox,
    OptOut,
    OutreachMessage,
    SearchBatchLog,
    SerpOperation,
    SerpQuery,
    Suppression,
)
from leadgen.sandbox.faults import Faults
from leadgen.sandbox.runner import SAMPLE_SHEET, Sandbox

PG_ADMIN = os.environ.get("LEADGEN_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
LOCKED_USER = "locked@agency-sandbox.test"  # a second mailbox whose login always fails

FAULTS: dict[str, Any] = {
    "yandex": {"429": 0.1, "503": 0.08, "drop": 0.02, "operation_error": 0.08, "xml_55": 0.03},
    "operations": {"429": 0.1, "500": 0.1, "drop": 0.02},
    "iam": {"429": 0.1, "500": 0.1},
    "openai": {"429": 0.1, "500": 0.1, "invalid_json": 0.1, "schema_break": 0.1,
               "crlf_subject": 0.1, "long_output": 0.05},
    "web": {"503": 0.05, "drop": 0.05},
    "smtp": {"recipients": {"^priem@": "550 5.1.1 No such user here",
                            "^office@": {"reply": "451 4.3.0 Try again later", "times": 1},
                            "^hello@": {"reply": "421 4.7.0 Too many connections", "times": 1}},
             "auth_fail_users": ["^locked@"], "drop_after_data": 0.08},
}

# Sheet rows the intake must refuse (or accept with a warning) without stopping the others.
BAD_ROWS = [
    ("", "Москва", "Россия", "faults"),  # empty niche
    ('=IMPORTXML("http://169.254.169.254/latest/meta-data/","//a")', "Казань", "Россия", "faults"),
    ("стоматология " * 40, "Казань", "Россия", "faults"),  # a 520-character niche
    ("стоматология", "Мухосранск-на-Луне", "Россия", "faults"),  # unknown city → 225, warning
    ("клининг\x07\x1b[31m", "Пермь", "Россия", "faults"),  # control characters
]

INFRA_ERRORS = re.compile(
    r"OperationalError|InterfaceError|AdminShutdown|ConnectionError|ConnectionRefused|"
    r"ConnectionReset|BrokenPipe|Redis|redis|kombu|WorkerLostError|Terminated|EOFError|"
    r"server closed the connection|connection|TimeLimitExceeded", re.I)


@dataclass
class FaultPlan:
    long: bool = False
    seed: int = 11
    rows: int = 3  # good rows of the sample sheet
    worker_child_kills: int = 1
    worker_kills: int = 1
    redis_restarts: int = 1
    pg_restarts: int = 1
    token_revocations: int = 2
    operation_expiries: int = 3
    optouts_midrun: int = 2
    event_gap: float = 6.0  # seconds between process faults
    timeout: float = 360.0  # a passing run drains in 70–90 s; the margin is for a loaded machine

    @classmethod
    def for_mode(cls, long: bool) -> FaultPlan:
        if not long:
            return cls()
        return cls(long=True, rows=10, worker_child_kills=3, worker_kills=3, redis_restarts=2,
                   pg_restarts=2, token_revocations=4, operation_expiries=8, optouts_midrun=4,
                   event_gap=10.0, timeout=600.0)


@dataclass
class Invariant:
    name: str
    ok: bool
    detail: str


@dataclass
class FaultReport:
    mode: str
    seconds: float
    database_url: str
    faults: dict[str, int] = field(default_factory=dict)
    funnel: dict[str, Any] = field(default_factory=dict)
    invariants: list[Invariant] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.invariants) and all(i.ok for i in self.invariants)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2, default=str)


# --- the sandbox's fault counters -------------------------------------------------------------


class CountingFaults(Faults):
    """Faults that count every fault that fired, by `emulator:kind`."""

    def __init__(self, base: Faults) -> None:
        super().__init__(base.seed, base.emulators, base.smtp)
        self.fired: Counter[str] = Counter()

    def http_fault(self, emulator: str) -> int | str | None:
        fault = super().http_fault(emulator)
        if fault is not None:
            with self._lock:
                self.fired[f"{emulator}:{fault}"] += 1
        return fault

    def hit(self, emulator: str, name: str) -> bool:
        fired = super().hit(emulator, name)
        if fired:
            with self._lock:
                self.fired[f"{emulator}:{name}"] += 1
        return fired

    def roll(self, key: str, rate: float) -> bool:
        fired = super().roll(key, rate)
        if fired:
            with self._lock:
                self.fired[key] += 1
        return fired


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class RedisServer:
    """A private, non-persistent redis-server that can be killed and restarted on its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.process is not None:
            _kill_group(self.process)

    def restart(self, down_seconds: float = 1.5) -> None:
        self.kill()
        time.sleep(down_seconds)
        self.start()


class Celery:
    """The worker and beat subprocesses, restartable; logs go to files in the work dir."""

    QUEUES = "search,crawl,llm,mail,maintenance"

    def __init__(self, workdir: Path, env: dict[str, str], concurrency: int = 3) -> None:
        self.workdir = workdir
        self.env = {**os.environ, **env}
        self.concurrency = concurrency
        self.worker: subprocess.Popen[bytes] | None = None
        self.beat: subprocess.Popen[bytes] | None = None
        self.starts = Counter[str]()
        self.worker_started = 0.0
        self.unexpected_exits: list[str] = []

    def worker_age(self) -> float:
        return time.monotonic() - self.worker_started

    def _spawn(self, kind: str) -> subprocess.Popen[bytes]:
        self.starts[kind] += 1
        if kind == "worker":
            self.worker_started = time.monotonic()
        if kind == "worker":
            args = ["worker", "-Q", self.QUEUES, "-P", "prefork",
                    f"--concurrency={self.concurrency}", "--loglevel=WARNING",
                    "-n", f"faults{os.getpid()}-{self.starts[kind]}@%h"]
        else:
            args = ["beat", "--loglevel=WARNING",
                    f"--schedule={self.workdir / 'celerybeat-schedule'}",
                    f"--pidfile={self.workdir / f'beat-{self.starts[kind]}.pid'}"]
        with open(self.workdir / f"{kind}.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "celery", "-A", "leadgen", *args],
                                    env=self.env, cwd=self.workdir, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)

    def start(self) -> None:
        self.worker = self._spawn("worker")
        self.beat = self._spawn("beat")

    def pool_children(self) -> list[int]:
        if self.worker is None:
            return []
        path = Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def kill_children(self) -> int:
        killed = 0
        for pid in self.pool_children():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        return killed

    def kill_worker(self) -> None:
        assert self.worker is not None
        _kill_group(self.worker)
        self.worker = self._spawn("worker")

    def watch(self) -> None:
        """Restart a process that exited by itself (and remember that it did)."""
        for kind in ("worker", "beat"):
            process = getattr(self, kind)
            if process is not None and process.poll() is not None:
                self.unexpected_exits.append(f"{kind} exited with {process.returncode}")
                setattr(self, kind, self._spawn(kind))

    def stop(self) -> None:
        for process in (self.beat, self.worker):
            if process is not None:
                _kill_group(process, signal.SIGTERM)

    def task_errors(self) -> Counter[str]:
        """Exception types of tasks that failed, from the worker log."""
        errors: Counter[str] = Counter()
        log = self.workdir / "worker.log"
        if not log.exists():
            return errors
        lines = log.read_text("utf-8", "replace").splitlines()
        for index, line in enumerate(lines):
            found = re.search(r"Task (leadgen\.[\w.]+)\[[^\]]+\] raised unexpected: (\w+)", line)
            if found:
                errors[f"{found.group(1)}: {found.group(2)}"] += 1
            elif "Unrecoverable error" in line:
                # celery/kombu may exit on a broker outage; the traceback names redis then
                trace = "\n".join(lines[max(0, index - 10):index + 60])
                broker = "redis.exceptions" in trace or "Cannot connect to redis" in trace
                cause = "redis connection lost" if broker else line.strip()
                errors[f"worker exited: {cause[:200]}"] += 1
        return errors


# --- PostgreSQL -------------------------------------------------------------------------------


def terminate_backends(url: str, admin_url: str = PG_ADMIN) -> int:
    """Every connection to the database is cut, as in a PostgreSQL restart."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    dispose_engines()
    return len(rows)


# --- input ------------------------------------------------------------------------------------


def write_sheet(path: Path, good_rows: int) -> Path:
    import csv

    with open(SAMPLE_SHEET, encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:1 + good_rows]
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)
        writer.writerows(BAD_ROWS)
    return path


def _reachable_found(session: Session, sandbox: Sandbox, page_size: int) -> list[Any]:
    """World companies the synced queries will find, with a planted primary email."""
    assert sandbox.world is not None
    seen: dict[str, Any] = {}
    for query in session.scalars(select(SerpQuery).order_by(SerpQuery.id)):
        results = sandbox.world.results_for(query.query_text, query.region_id or 225)
        start = (query.page or 0) * page_size
        for _url, _host, company in results[start:start + page_size]:
            if company is not None and company.kind == "normal" and company.primary:
                seen.setdefault(company.domain, company)
    return list(seen.values())


def preregister(session: Session, sandbox: Sandbox, page_size: int) -> dict[str, list[str]]:
    """Opt-outs (two emails, one domain) and a suppression, taken from the ground truth."""
    from leadgen.outreach import optout

    found = _reachable_found(session, sandbox, page_size)
    picked = found[1::7][:4]
    emails = [c.primary for c in picked[:2]]
    domains = [c.domain for c in picked[2:3]]
    suppressed = [c.primary for c in picked[3:4]]
    for value in emails + domains:
        optout.add(session, value, source="faults", reason="fault run: pre-registered")
    for email in suppressed:
        optout.suppress(session, email, "fault run: pre-registered hard bounce", 550)
    session.commit()
    return {"emails": emails, "domains": domains, "suppressed": suppressed}


def optout_midrun(url: str, count: int) -> list[tuple[str, datetime]]:
    """Opt out the primary address of companies that have none sent yet (the send-time check)."""
    from leadgen.outreach import optout

    done: list[tuple[str, datetime]] = []
    with session_scope(url) as session:
        sent = select(OutreachMessage.contact_id).where(
            OutreachMessage.status.in_(("sent", "sending", "unknown")))
        emails = list(session.scalars(
            select(Contact.email).where(Contact.is_primary.is_(True), Contact.id.not_in(sent))
            .order_by(Contact.id.desc()).limit(count)))
        for email in emails:
            optout.add(session, email, source="faults", reason="fault run: mid-run opt-out")
            done.append((email.lower(), datetime.now(timezone.utc)))
    return done


# --- the run ----------------------------------------------------------------------------------


def _mailboxes_json(env: dict[str, str]) -> str:
    common = {"host": env["SMTP_HOST"], "port": int(env["SMTP_PORT"]), "security": "starttls",
              "from_name": env.get("SMTP_FROM_NAME", "")}
    return json.dumps([
        {**common, "name": "main", "username": env["SMTP_USERNAME"],
         "password": env["SMTP_PASSWORD"], "from_email": env["SMTP_FROM_EMAIL"]},
        {**common, "name": "locked", "username": LOCKED_USER, "password": "wrong-password",
         "from_email": LOCKED_USER},
    ], ensure_ascii=False)


FAULT_OVERRIDES = {
    "LEASE_SECONDS": "30",
    "YANDEX_ENFORCE_NIGHT_WINDOW": "false",  # retries must not wait for the next (real) night
    "YANDEX_GROUPS_ON_PAGE": "50",  # more companies per query: more of the web's fault sites
    "YANDEX_MAX_ATTEMPTS": "8",
    "YANDEX_BACKOFF_BASE_SECONDS": "1",
    "YANDEX_BACKOFF_MAX_SECONDS": "4",
    "YANDEX_HTTP_TIMEOUT_SECONDS": "5",
    "SERP_RPS_BACKOFF_SECONDS": "1",
    "ENRICH_BATCH_SIZE": "10",
    "OPENAI_BACKOFF_SECONDS": "0.2",
    "OPENAI_MAX_BACKOFF_SECONDS": "1",
    "OPENAI_TIMEOUT_SECONDS": "10",
    "SEND_BACKOFF_MINUTES": "0.05,0.1",
    "SMTP_TIMEOUT_SECONDS": "10",
    "LOG_LEVEL": "WARNING",
}


def _drained(session: Session) -> tuple[bool, str]:
    def count(entity: Any, *where: Any) -> int:
        return session.scalar(select(func.count()).select_from(entity).where(*where)) or 0

    active = select(Mailbox.id).where(Mailbox.status == "active")
    has_message = select(OutreachMessage.company_id)
    usable = select(Contact.company_id).where(Contact.is_primary.is_(True), Contact.status == "ok")
    open_work = {
        "queries": count(SerpQuery, SerpQuery.status.in_(("pending", "submitting", "submitted"))),
        "operations": count(SerpOperation, SerpOperation.status.in_(("pending", "fetched"))),
        "companies": count(Company, Company.status.in_(("new", "enriching"))),
        "to_generate": count(Company, Company.status == "contacts_ready",
                             Company.status_reason.is_(None), Company.id.not_in(has_message),
                             Company.id.in_(usable)),
        "to_send": count(OutreachMessage, OutreachMessage.status.in_(("scheduled", "deferred")),
                         OutreachMessage.mailbox_id.in_(active)),
        "sending": count(OutreachMessage, OutreachMessage.status == "sending"),
    }
    busy = {key: value for key, value in open_work.items() if value}
    return not busy and count(SerpQuery) > 0, json.dumps(busy)


def run_faults(directory: Path, *, long: bool = False, plan: FaultPlan | None = None,
               database: str | None = None, keep_database: bool = False,
               on_event: Callable[[str], None] = lambda line: None) -> FaultReport:
    """Run the pipeline under faults; returns the report (invariants checked)."""
    from leadgen.search.intake import sync

    plan = plan or FaultPlan.for_mode(long)
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    database_url = database or create_database(PG_ADMIN, prefix="leadgen_faults")
    events: list[str] = []

    def event(line: str) -> None:
        stamp = f"{time.monotonic() - started:6.1f}s {line}"
        events.append(stamp)
        on_event(stamp)

    faults = CountingFaults(Faults.from_dict({"seed": plan.seed, **FAULTS}))
    sheet = write_sheet(directory / "sheet.csv", plan.rows)
    redis_server = RedisServer(directory)
    smtp_replies: Counter[str] = Counter()
    celery: Celery | None = None
    try:
        redis_server.start()
        with Sandbox(directory / "sandbox", seed=plan.seed, faults=faults, sheet_csv=sheet,
                     operation_delay_s=2.0, iam_token_lifetime_s=1800) as sandbox:
            original_reply = sandbox.smtp.recipient_reply

            def counted_reply(address: str) -> str | None:
                reply = original_reply(address)
                if reply is not None:
                    smtp_replies[f"smtp:{reply[:3]}"] += 1
                return reply

            sandbox.smtp.recipient_reply = counted_reply  # type: ignore[method-assign]
            base_env = sandbox.env()
            env = {
                **base_env, **DEMO_OVERRIDES, **FAULT_OVERRIDES,
                **compressed_night(get_settings().app_timezone),
                "MAILBOXES_JSON": _mailboxes_json(base_env),
                "DATABASE_URL": database_url,
                "CELERY_BROKER_URL": redis_server.url,
                "REDIS_URL": redis_server.url,
            }
            with environment(env) as settings:
                migrations.upgrade(database_url)
                with session_scope() as session:
                    summary = sync(session, settings)
                event(f"sheet synced: {summary.processed_rows} rows, {summary.error_rows} "
                      f"refused, {summary.inserted_queries} queries")
                with session_scope() as session:
                    registered = preregister(session, sandbox, settings.yandex_groups_on_page)
                event(f"pre-registered opt-outs {registered}")
                celery = Celery(directory, env)
                celery.start()
                midrun_optouts: list[tuple[str, datetime]] = []
                expired_ops = revoked = 0
                last_revoke = 0.0
                schedule = _schedule(plan)
                t0 = time.monotonic()
                deadline = started + plan.timeout
                drained_reason = ""
                while True:
                    time.sleep(1.0)
                    celery.watch()
                    elapsed = time.monotonic() - t0
                    while schedule and schedule[0][0] <= elapsed:
                        at, action = schedule.pop(0)
                        if action == "kill_children" and celery.worker_age() < 8:
                            schedule.insert(0, (at + 2, action))  # let the pool finish booting
                            break
                        event(_inject(action, celery, redis_server, database_url, sandbox))
                    if revoked < plan.token_revocations and _open_operations(sandbox) \
                            and time.monotonic() - last_revoke > 2:
                        event(_inject("revoke_tokens", celery, redis_server, database_url, sandbox))
                        revoked, last_revoke = revoked + 1, time.monotonic()
                    if expired_ops < plan.operation_expiries:
                        expired_ops += _expire_operations(sandbox, plan.operation_expiries - expired_ops)
                    if len(midrun_optouts) < plan.optouts_midrun and elapsed > plan.event_gap * 2:
                        midrun_optouts += optout_midrun(database_url,
                                                        plan.optouts_midrun - len(midrun_optouts))
                    try:
                        with session_scope() as session:
                            drained, drained_reason = _drained(session)
                    except Exception as exc:  # noqa: BLE001 - the database may be cut right now
                        drained, drained_reason = False, f"measure failed: {exc}"
                        dispose_engines()
                    if drained and not schedule:
                        event("drained")
                        break
                    if time.monotonic() > deadline:
                        with session_scope() as session:
                            stuck = session.execute(
                                select(SerpOperation.id, SerpOperation.status, SerpOperation.error,
                                       SerpOperation.next_poll_at, SerpOperation.lease_until)
                                .where(SerpOperation.status.in_(("pending", "fetched")))).all()
                        event(f"timeout; still open: {drained_reason}; operations {stuck}")
                        break
                celery.stop()
                celery_errors = celery.task_errors()
                with session_scope() as session:
                    report = FaultReport(
                        mode="long" if plan.long else "short",
                        seconds=round(time.monotonic() - started, 1), database_url=database_url,
                        events=events)
                    report.funnel = asdict(measure(session))
                    report.invariants = check_invariants(
                        session, sandbox, registered, midrun_optouts, celery, celery_errors,
                        drained_reason)
                    report.faults = _fault_counts(session, sandbox, faults, smtp_replies,
                                                  celery, revoked, expired_ops, events)
        return report
    finally:
        if celery is not None:
            celery.stop()
        redis_server.kill()
        dispose_engines()
        if not database and not keep_database:
            try:
                drop_database(database_url, PG_ADMIN)
            except Exception:  # noqa: BLE001 - cleanup must not hide the result
                pass


def _schedule(plan: FaultPlan) -> list[tuple[float, str]]:
    """Process faults interleaved at a fixed gap; token revocations in between."""
    actions: list[str] = []
    pools = {"kill_children": plan.worker_child_kills, "restart_redis": plan.redis_restarts,
             "kill_worker": plan.worker_kills, "restart_postgres": plan.pg_restarts}
    while any(pools.values()):
        for action in ("kill_children", "restart_redis", "kill_worker", "restart_postgres"):
            if pools[action]:
                actions.append(action)
                pools[action] -= 1
    return [(plan.event_gap * (index + 1), action) for index, action in enumerate(actions)]


def _inject(action: str, celery: Celery, redis_server: RedisServer, url: str,
            sandbox: Sandbox) -> str:
    if action == "kill_children":
        return f"SIGKILL {celery.kill_children()} worker pool processes"
    if action == "kill_worker":
        pid = celery.worker.pid if celery.worker else None
        celery.kill_worker()
        return f"SIGKILL the whole worker (pid {pid}); started a new one"
    if action == "restart_redis":
        redis_server.restart()
        return f"Redis killed and restarted on port {redis_server.port} (queued messages lost)"
    if action == "restart_postgres":
        return f"PostgreSQL: terminated {terminate_backends(url)} backends of the database"
    if action == "revoke_tokens":
        sandbox.tokens.revoke_all()
        return "IAM tokens revoked (the next Yandex call gets 401: expired token)"
    raise ValueError(action)


def _open_operations(sandbox: Sandbox) -> bool:
    now = sandbox.yandex.clock()
    return any(op.raw_xml is None and now < op.done_at
               for op in list(sandbox.yandex.operations.values()))


def _expire_operations(sandbox: Sandbox, limit: int) -> int:
    """Drop operations before their results are fetched: the next poll gets 404 (expired)."""
    yandex = sandbox.yandex
    now = yandex.clock()
    with yandex._lock:  # noqa: SLF001 - the emulator's own retention path does the same
        victims = [op_id for op_id, op in yandex.operations.items()
                   if op.raw_xml is None and op.fault is None and now < op.done_at][:limit]
        for op_id in victims:
            del yandex.operations[op_id]
    return len(victims)


def _fault_counts(session: Session, sandbox: Sandbox, faults: CountingFaults,
                  smtp_replies: Counter[str], celery: Celery, revoked: int, expired_ops: int,
                  events: list[str]) -> dict[str, int]:
    counts: dict[str, int] = dict(sorted(faults.fired.items()))
    counts.update(smtp_replies)
    counts["smtp:auth_failure"] = len(sandbox.smtp.auth_failures)
    counts["iam:tokens_revoked"] = revoked
    for server in (sandbox.yandex.search_server, sandbox.yandex.operations_server):
        with server._records_lock:  # noqa: SLF001
            counts[f"{server.name}:401_expired_token"] = sum(
                r.status == 401 for r in server.records)
    counts["operations:expired_before_fetch"] = expired_ops
    web = sandbox.web.stats
    counts["web:503"] = web.get("status_503", 0)
    counts["web:connection_reset"] = web.get("status_0", 0)
    truth = sandbox.world.ground_truth() if sandbox.world else {}
    kinds = Counter(truth.get(domain, {}).get("kind") for domain in session.scalars(
        select(Company.domain).where(Company.status.not_in(("new", "duplicate")))))
    for kind in ("slow", "huge", "redirect_loop", "redirect_private", "dns_private",
                 "dns_ipv6_loopback", "binary", "broken_encoding", "reset", "nxdomain"):
        counts[f"web:site_{kind}"] = kinds.get(kind, 0)
    counts["sheet:malformed_rows"] = len(BAD_ROWS)
    counts["process:worker_pool_sigkill"] = sum("pool processes" in e for e in events)
    counts["process:worker_sigkill"] = sum("whole worker" in e for e in events)
    counts["process:redis_restart"] = sum("Redis killed" in e for e in events)
    counts["process:postgres_restart"] = sum("PostgreSQL:" in e for e in events)
    return counts


# --- invariants -------------------------------------------------------------------------------


def check_invariants(session: Session, sandbox: Sandbox, registered: dict[str, list[str]],
                     midrun: list[tuple[str, datetime]], celery: Celery,
                     celery_errors: Counter[str], drained_reason: str) -> list[Invariant]:
    out: list[Invariant] = []

    def check(name: str, problems: list[str], ok_detail: str) -> None:
        out.append(Invariant(name, not problems,
                             ok_detail if not problems else "; ".join(problems[:8])))

    # Companies: terminal or waiting, with a reason.
    problems = []
    statuses = Counter(session.scalars(select(Company.status)))
    with_message = set(session.scalars(select(OutreachMessage.company_id)))
    for company in session.scalars(select(Company)):
        reason = company.status_reason or company.last_error
        if company.status in ("new", "enriching"):
            problems.append(f"{company.domain} still {company.status}")
        elif company.status in ("contacts_not_found", "duplicate", "opted_out") and not reason:
            problems.append(f"{company.domain} {company.status} without a reason")
        elif company.status == "contacts_ready" and company.id not in with_message \
                and not company.status_reason:
            primary = session.scalar(select(Contact).where(
                Contact.company_id == company.id, Contact.is_primary.is_(True)))
            if primary is not None and primary.status == "ok" and not company.opt_out:
                problems.append(f"{company.domain} contacts_ready but no message")
    check("every company terminal or waiting with a reason", problems,
          ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))

    # Queries: completed, or failed with a reason.
    problems = [f"query {q.id} {q.status}" + ("" if q.status != "failed" else " without a reason")
                for q in session.scalars(select(SerpQuery))
                if q.status != "completed" and not (q.status == "failed" and q.last_error)]
    query_statuses = Counter(session.scalars(select(SerpQuery.status)))
    check("every query completed or failed with a reason", problems,
          ", ".join(f"{k} {v}" for k, v in sorted(query_statuses.items())))

    # Sheet rows: malformed ones refused with a reason, the rest went on.
    logs = list(session.scalars(select(SearchBatchLog)))
    refused = [log for log in logs if log.status in ("error", "skipped")]
    problems = [f"row {log.row_number} {log.status} without a reason"
                for log in refused if not log.error]
    if len(refused) < 3:
        problems.append(f"only {len(refused)} malformed rows refused")
    check("malformed sheet rows refused with a reason, the others processed", problems,
          f"{len(refused)} refused, {len(logs) - len(refused)} processed")

    # The mailbox: nothing twice.
    delivered = sandbox.mailbox()
    by_id = Counter(m.message_id for m in delivered)
    by_rcpt = Counter(r.lower() for m in delivered for r in m.rcpt_tos)
    problems = [f"Message-ID {k} delivered {v}×" for k, v in by_id.items() if v > 1]
    problems += [f"{k} received {v} messages" for k, v in by_rcpt.items() if v > 1]
    check("no message delivered twice (mailbox by Message-ID and recipient)", problems,
          f"{len(delivered)} delivered, {len(by_id)} Message-IDs, {len(by_rcpt)} recipients")

    # Opt-outs and suppressions.
    optouts = {(o.kind, o.value) for o in session.scalars(select(OptOut))}
    suppressed = set(s.lower() for s in session.scalars(select(Suppression.email)))
    pre_emails = {e.lower() for e in registered["emails"]}
    pre_domains = set(registered["domains"])
    pre_suppressed = {e.lower() for e in registered["suppressed"]}
    midrun_at = dict(midrun)
    problems = []
    for message in delivered:
        for rcpt in (r.lower() for r in message.rcpt_tos):
            domain = rcpt.rsplit("@", 1)[-1]
            if rcpt in pre_emails or domain in pre_domains or rcpt in pre_suppressed:
                problems.append(f"sent to pre-registered opt-out/suppression {rcpt}")
            if rcpt in midrun_at and message.received_at > midrun_at[rcpt]:
                problems.append(f"sent to {rcpt} after its opt-out")
            if rcpt in suppressed and rcpt not in pre_suppressed and not message.reply_lost:
                # a 5.1.x bounce suppresses the address; it cannot have been delivered
                problems.append(f"{rcpt} is suppressed yet was delivered")
    check("nothing sent to an opted-out or suppressed address", problems,
          f"{len(optouts)} opt-outs ({len(midrun)} mid-run), {len(suppressed)} suppressed")

    # No message lost: every queued one has an outcome with a reason.
    problems = []
    mailboxes = {m.id: m for m in session.scalars(select(Mailbox))}
    ids_in_box = set(by_id)
    for message in session.scalars(select(OutreachMessage)):
        where = f"message {message.id} ({message.to_email})"
        if message.status == "sent":
            if message.message_id not in ids_in_box:
                problems.append(f"{where} sent but not in the mailbox")
        elif message.status in ("deferred", "failed", "unknown", "skipped"):
            if not message.last_error:
                problems.append(f"{where} {message.status} without a reason")
        elif message.status == "scheduled":
            box = mailboxes.get(message.mailbox_id or -1)
            if box is None or box.status != "paused" or not box.status_reason:
                problems.append(f"{where} still scheduled on an active mailbox")
        elif message.status == "held":
            if not message.generation_notes:
                problems.append(f"{where} held without a reason")
        else:
            problems.append(f"{where} left in {message.status}")
    db_ids = set(session.scalars(select(OutreachMessage.message_id)
                                 .where(OutreachMessage.status.in_(("sent", "unknown")))))
    problems += [f"mailbox has {mid} with no sent/unknown row" for mid in ids_in_box - db_ids]
    message_statuses = Counter(session.scalars(select(OutreachMessage.status)))
    paused = [f"{m.name}: {m.status_reason[:60]}" for m in mailboxes.values()
              if m.status == "paused" and m.status_reason]
    check("no message lost (sent, deferred, failed, skipped or unknown with a reason)", problems,
          ", ".join(f"{k} {v}" for k, v in sorted(message_statuses.items()))
          + (f"; waiting on paused mailbox {paused}" if paused else ""))

    # Private addresses are never fetched.
    ssrf = list(sandbox.web.ssrf_log)
    check("redirects to private addresses never fetched",
          [f"the proxy was asked for {host}" for host in ssrf[:5]],
          f"{sandbox.web.stats.get('requests', 0)} web requests, 0 to private addresses")

    # No worker crashed on bad input.
    bad = {k: v for k, v in celery_errors.items() if not INFRA_ERRORS.search(k)}
    infra = sum(v for k, v in celery_errors.items() if INFRA_ERRORS.search(k))
    check("no worker crashed on bad input", [f"{k} ×{v}" for k, v in bad.items()],
          f"0 task failures from input; {infra} from injected Redis/PostgreSQL outages; "
          f"restarts after exits: {celery.unexpected_exits or 'none'}")

    # Everything drained.
    check("the pipeline drained after the faults", [] if drained_reason in ("", "{}")
          else [f"still open: {drained_reason}"], "no open work left")
    return out


def render_table(report: FaultReport) -> str:
    lines = [f"Fault run ({report.mode}) in {report.seconds:.0f} s — "
             + ("ALL INVARIANTS HELD" if report.ok else "INVARIANTS VIOLATED"), "",
             "Faults injected:"]
    width = max((len(k) for k in report.faults), default=10)
    lines += [f"  {key:<{width}}  {value}" for key, value in report.faults.items()]
    lines += ["", "Invariants:"]
    lines += [f"  [{'ok' if inv.ok else 'FAIL'}] {inv.name}: {inv.detail}"
              for inv in report.invariants]
    return "\n".join(lines)


def _sql(session: Session, statement: str) -> Any:  # handy when debugging a run
    return session.execute(text(statement)).all()
