"""Delivery benchmark: N due messages → the sandbox SMTP server (STARTTLS + AUTH) with pacing
off, one `deliver_due` tick, one connection per mailbox. Prints one JSON line with messages/s.

    .venv/bin/python benchmarks/bench_deliver.py [--messages 2000] [--db sqlite|postgres]
        [--server bare|sandbox] [--profile 40 [--sort cumulative]]

Goal: ≥ 100 messages/s with connection reuse. Every message is checked to arrive exactly once.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_ADMIN = os.environ.get("LEADGEN_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=ZoneInfo("Europe/Moscow")).astimezone(timezone.utc)


def _bare_server(ca_dir: str, port: int, ready, stop, out_path: str) -> None:
    """aiosmtpd with the sandbox's STARTTLS + AUTH setup, in its own process (no GIL sharing
    with the client), keeping only the Message-IDs."""
    import re

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from leadgen.sandbox.smtp import DEFAULT_PASSWORD, DEFAULT_USER
    from leadgen.sandbox.tls import SandboxCA

    pattern = re.compile(rb"^Message-ID: (<[^>]+>)", re.M | re.I)
    ids: list[str] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            found = pattern.search(envelope.original_content or b"")
            ids.append(found.group(1).decode() if found else "")
            return "250 2.0.0 OK"

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == DEFAULT_USER \
            and auth_data.password.decode() == DEFAULT_PASSWORD
        return AuthResult(success=ok, handled=False)

    ca = SandboxCA.__new__(SandboxCA)  # reuse the parent's CA files
    context = _server_context(ca_dir)
    controller = Controller(
        Handler(), hostname="127.0.0.1", port=port, authenticator=authenticate,
        auth_required=True, require_starttls=True, auth_require_tls=True, tls_context=context)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    Path(out_path).write_text("\n".join(ids), encoding="utf-8")
    del ca


def _server_context(ca_dir: str):
    import ssl
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(Path(ca_dir) / "server.pem"))
    return context


class BareServer:
    def __init__(self, ca) -> None:
        self.ca, self.port = ca, 0
        self.out = Path(tempfile.mkdtemp()) / "ids.txt"

    def start(self) -> None:
        import multiprocessing

        from leadgen.sandbox.smtp import free_port
        leaf = self.ca._ca.issue_cert("localhost", "127.0.0.1")
        leaf.private_key_and_cert_chain_pem.write_to_path(str(self.ca.directory / "server.pem"))
        context = multiprocessing.get_context("spawn")
        self.ready, self.stopping = context.Event(), context.Event()
        self.port = free_port()
        self.process = context.Process(target=_bare_server, args=(
            str(self.ca.directory), self.port, self.ready, self.stopping, str(self.out)))
        self.process.start()
        self.ready.wait(30)

    def stop(self) -> None:
        if self.process.is_alive():
            self.stopping.set()
            self.process.join(30)

    def message_ids(self) -> list[str]:
        self.stop()
        text = self.out.read_text(encoding="utf-8") if self.out.exists() else ""
        return text.split("\n") if text else []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--server", choices=["bare", "sandbox"], default="bare",
                        help="bare: aiosmtpd with STARTTLS+AUTH that only counts Message-IDs; "
                             "sandbox: leadgen.sandbox.smtp (also writes mbox + .eml per message)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the tick's top N functions (cProfile) to stderr; "
                             "`python -m cProfile` cannot spawn the bare server")
    parser.add_argument("--sort", default="tottime", help="pstats order for --profile")
    args = parser.parse_args()

    from sqlalchemy import insert

    from leadgen import migrations
    from leadgen.config import load_settings, reset_settings
    from leadgen.db import create_database, dispose_engines, drop_database, session_scope
    from leadgen.models import Company, Contact, OutreachMessage
    from leadgen.outreach.deliver import deliver_due
    from leadgen.outreach.mailboxes import sync_mailboxes
    from leadgen.sandbox.smtp import DEFAULT_PASSWORD, DEFAULT_USER, SmtpServer
    from leadgen.sandbox.tls import SandboxCA

    work = Path(tempfile.mkdtemp(prefix="bench_deliver_"))
    pg_url = None
    if args.db == "postgres":
        url = pg_url = create_database(PG_ADMIN, prefix="leadgen_bench")
    else:
        url = f"sqlite:///{work / 'bench.sqlite3'}"
    migrations.upgrade(url)
    ca = SandboxCA(work / "ca")
    server = SmtpServer(ca, work / "mail") if args.server == "sandbox" else BareServer(ca)
    server.start()
    os.environ.update({
        "DATABASE_URL": url, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port),
        "SMTP_USERNAME": DEFAULT_USER, "SMTP_PASSWORD": DEFAULT_PASSWORD,
        "SMTP_FROM_EMAIL": DEFAULT_USER, "SMTP_FROM_NAME": "Бенчмарк", "SMTP_CA_FILE": str(ca.ca_file),
        "SEND_GAP_MIN_SECONDS": "0", "SEND_GAP_MAX_SECONDS": "0",
        "SMTP_DAILY_CAP": str(args.messages), "SEND_BATCH_SIZE": str(args.messages),
        "EMAIL_SENDING_ENABLED": "true"})
    reset_settings()
    settings = load_settings()
    try:
        with session_scope(url) as session:
            mailbox_id = sync_mailboxes(session, settings)["default"].id
            session.execute(insert(Company), [
                {"id": i + 1, "domain": f"c{i}.ru", "name": f"C{i}", "homepage_url": f"https://c{i}.ru/",
                 "status": "contacts_ready"} for i in range(args.messages)])
            session.execute(insert(Contact), [
                {"id": i + 1, "company_id": i + 1, "email": f"info@c{i}.ru", "method": "mailto",
                 "confidence": 1.0, "is_primary": True} for i in range(args.messages)])
            body = ("Добрый день!\n\nМеня зовут Алексей, я помогаю компаниям автоматизировать "
                    "рутину.\n\nС уважением,\nАлексей") * 2
            session.execute(insert(OutreachMessage), [
                {"contact_id": i + 1, "company_id": i + 1, "mailbox_id": mailbox_id,
                 "to_email": f"info@c{i}.ru", "subject": f"Идея №{i}", "body": body,
                 "status": "scheduled", "scheduled_for": NOW, "generator": "template"}
                for i in range(args.messages)])
        profiler = cProfile.Profile() if args.profile else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        report = deliver_due(settings, now=NOW)
        if profiler:
            profiler.disable()
        elapsed = time.perf_counter() - started
        if profiler:
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats(args.sort).print_stats(args.profile)
        received = Counter(server.message_ids() if args.server == "bare"
                           else [m.message_id for m in server.messages()])
        ok = report.sent == args.messages and len(received) == args.messages \
            and set(received.values()) == {1}
        print(json.dumps({
            "benchmark": "deliver", "db": args.db, "server": args.server, "messages": args.messages,
            "sent": report.sent, "seconds": round(elapsed, 2),
            "messages_per_s": round(report.sent / elapsed, 1), "goal_per_s": 100,
            "exactly_once": ok, "connections": 1}))
    finally:
        server.stop()
        dispose_engines()
        if pg_url:
            drop_database(pg_url, PG_ADMIN)


if __name__ == "__main__":
    main()
