"""`leadgen report` and `leadgen export` on both databases, on a small hand-counted dataset.

Two batch tags (spring-msk, spring-spb) plus untagged rows, two local days in Europe/Moscow
(UTC+3): D1 = 2025-03-10, D2 = 2025-03-11. Several events sit just after 21:00 UTC, i.e. on the
next local day, so the UTC → local date conversion is exercised.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import Session

from leadgen.cli import main
from leadgen.config import get_settings, reset_settings
from leadgen.db import session_scope
from leadgen.export import FIELDS, export_rows, write_csv
from leadgen.models import (
    Company,
    Contact,
    Mailbox,
    OutreachMessage,
    SerpOperation,
    SerpQuery,
    SerpResult,
)
from leadgen.report import FunnelRow, _offset_segments, funnel, to_json

A, B, NONE = "spring-msk", "spring-spb", "(none)"
D1, D2 = "2025-03-10", "2025-03-11"
TRICKY_NAME = 'Acme, "Best"\nWidgets'
CYRILLIC_NAME = "ООО «Ромашка», Москва"


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=timezone.utc)


@pytest.fixture
def moscow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TIMEZONE", "Europe/Moscow")
    monkeypatch.delenv("YANDEX_PRICE_PER_1000", raising=False)
    reset_settings()


def seed(session: Session) -> None:
    """The dataset whose numbers the tests below assert (see the comments for the local day)."""
    queries: dict[str, SerpQuery] = {}
    for name, tag, status, submitted, scheduled in [
        ("qA1", A, "completed", t(9, 22), t(9, 21, 30)),  # D1
        ("qA2", A, "completed", t(10, 1), t(10, 0, 30)),  # D1
        ("qA3", A, "failed", t(10, 22), t(10, 21, 30)),  # D2
        ("qA4", A, "submitted", t(11, 0, 30), t(11, 0)),  # D2
        ("qA5", A, "pending", None, t(10, 21, 30)),  # D2 by schedule
        ("qA6", A, "submitting", None, t(10, 2)),  # D1 by schedule, counted as pending
        ("qB1", B, "completed", t(10, 5), t(10, 4)),  # D1
        ("qB2", B, "failed", t(11, 3), t(11, 2)),  # D2
        ("qN1", None, "pending", None, t(11, 1)),  # D2
    ]:
        queries[name] = SerpQuery(
            query_hash=name, query_text=f"окна {name}", region_id=213, region_source="city",
            niche="окна", city="Москва", batch_tag=tag, status=status, submitted_at=submitted,
            scheduled_for=scheduled,
            last_error="HTTP 400: bad request" if status == "failed" else None,
        )
    session.add_all(queries.values())
    session.flush()

    ops: dict[str, SerpOperation] = {}
    for name, query, status, submitted in [
        ("opA1", "qA1", "ingested", t(9, 22)),  # D1
        ("opA1b", "qA1", "failed", t(9, 23)),  # D1: a retried request is billed too
        ("opA2", "qA2", "ingested", t(10, 1)),  # D1
        ("opA3", "qA3", "failed", t(10, 22)),  # D2
        ("opA4", "qA4", "pending", t(11, 0, 30)),  # D2
        ("opB1", "qB1", "ingested", t(10, 5)),  # D1
        ("opB2", "qB2", "expired", t(11, 3)),  # D2
    ]:
        ops[name] = SerpOperation(query_id=queries[query].id, operation_id=name, status=status,
                                  submitted_at=submitted)
    session.add_all(ops.values())
    session.flush()

    for op, count, created in [("opA1", 3, t(10, 2)), ("opA2", 2, t(10, 21, 5)),
                               ("opB1", 2, t(10, 6))]:
        for position in range(count):
            domain = f"{op.lower()}-{position}.ru"
            session.add(SerpResult(
                operation_id=ops[op].id, query_id=ops[op].query_id, position=position + 1,
                url=f"https://www.{domain}/", host=f"www.{domain}", domain=domain,
                title=f"Title {position}", created_at=created,
            ))

    companies: dict[str, Company] = {}
    for name, tag, status, reason, first_seen, enriched, display in [
        ("c1", A, "new", None, t(10, 2), None, TRICKY_NAME),  # D1
        ("c2", A, "enriching", None, t(10, 2), None, None),  # D1
        ("c3", A, "contacts_ready", None, t(10, 2), t(10, 23), None),  # D1, enriched D2
        ("c4", A, "contacted", None, t(10, 2), t(10, 3), None),  # D1, enriched D1
        ("c5", A, "contacts_not_found", "unreachable: connection timed out", t(10, 21, 5),
         t(11, 1), None),  # D2, D2
        ("c6", A, "contacts_not_found", "robots.txt disallows /", t(10, 21, 5), t(11, 2),
         None),  # D2, D2
        ("c7", A, "duplicate", "same domain as c3", t(10, 21, 5), None, None),  # D2
        ("c8", A, "opted_out", "manual", t(10, 2), None, None),  # D1
        ("c9", A, "contacts_not_found", "no_email", t(10, 2), t(10, 4), None),  # D1, D1
        ("c10", B, "contacts_ready", None, t(10, 6), t(10, 7), None),  # D1, D1
        ("c11", B, "contacts_not_found", "blocked: domain in blocklist", t(10, 6), t(10, 7),
         None),  # D1, D1
        ("c12", B, "contacts_not_found", "TLS handshake failed", t(10, 6), t(10, 21),
         None),  # D1, enriched D2 -> "other"
        ("c13", B, "new", None, t(11, 5), None, None),  # D2
        ("c14", None, "contacts_ready", None, t(11, 6), t(11, 7), CYRILLIC_NAME),  # D2, D2
    ]:
        domain = "ромашка.рф" if name == "c14" else f"{name}.ru"
        companies[name] = Company(
            domain=domain, name=display or name.upper(), homepage_url=f"https://{domain}/",
            niche="окна", city="Москва", region_id=213, batch_tag=tag, status=status,
            status_reason=reason, first_seen_at=first_seen, last_seen_at=first_seen,
            enriched_at=enriched,
        )
    session.add_all(companies.values())
    session.flush()

    contacts: dict[str, Contact] = {}
    for name, company, email, primary in [
        ("k3a", "c3", "info@c3.ru", True), ("k3b", "c3", "sales@c3.ru", False),
        ("k4a", "c4", "office@c4.ru", True), ("k4b", "c4", "director@c4.ru", False),
        ("k10a", "c10", "info@c10.ru", True), ("k10b", "c10", "hr@c10.ru", False),
        ("k14a", "c14", "info@romashka.ru", True), ("k14b", "c14", "zakaz@romashka.ru", False),
    ]:
        contacts[name] = Contact(
            company_id=companies[company].id, email=email, method="mailto",
            confidence=0.95 if primary else 0.7, is_primary=primary, mx_ok=True,
            source_url=f"https://{companies[company].domain}/kontakty?a=1,b=2",
        )
    session.add_all(contacts.values())
    mailbox = Mailbox(name="main", from_email="sales@agency.example", daily_cap=100)
    session.add(mailbox)
    session.flush()

    for contact, status, created, sent, cost, tokens, error in [
        ("k4a", "sent", t(10, 3, 30), t(10, 21, 10), 0.0012, (500, 200), None),  # sent D2
        ("k3a", "scheduled", t(10, 23, 30), None, 0.001, (400, 150), None),  # D2
        ("k3b", "failed", t(11, 0), None, 0.0008, (300, 100), "550 5.1.1 user unknown"),  # D2
        ("k4b", "sending", t(10, 5), None, 0.0005, (100, 50), None),  # D1
        ("k10a", "deferred", t(10, 7, 30), None, None, None, "451 try later"),  # D1
        ("k10b", "skipped", t(10, 8), None, None, None, "opted out"),  # D1
        ("k14a", "unknown", t(11, 7, 30), None, 0.002, (800, 300), None),  # D2
        ("k14b", "held", t(11, 8), None, None, None, None),  # D2
    ]:
        row = contacts[contact]
        session.add(OutreachMessage(
            contact_id=row.id, company_id=row.company_id, to_email=row.email,
            mailbox_id=mailbox.id if status != "held" else None,
            subject=f"Предложение для {row.email}", body="Здравствуйте!", status=status,
            scheduled_for=created if status != "held" else None, sent_at=sent,
            message_id=f"<{contact}@agency.example>" if sent else None,
            generator="llm" if cost else "template", model="gpt-4.1-mini" if cost else None,
            prompt_tokens=tokens[0] if tokens else None,
            completion_tokens=tokens[1] if tokens else None, cost_usd=cost, last_error=error,
            created_at=created,
        ))
    session.commit()


def expect(**values: float) -> dict[str, float]:
    """All metrics zero except the given ones."""
    row = FunnelRow()
    out = {name: getattr(row, name) for name in vars(row) if name not in ("batch", "day", "is_total")}
    unknown = set(values) - set(out)
    assert not unknown, unknown
    out.update(values)
    return out


def metrics(row: FunnelRow) -> dict[str, float]:
    return {k: v for k, v in vars(row).items() if k not in ("batch", "day", "is_total")}


PRICE = 0.208 / 1000
EXPECTED_A = expect(
    queries_total=6, queries_pending=2, queries_submitted=1, queries_completed=2, queries_failed=1,
    serp_documents=5, companies_total=9, companies_new=2, companies_duplicate=1,
    companies_opted_out=1, companies_contacted=1, contacts_ready=2, contacts_not_found=3,
    not_found_unreachable=1, not_found_robots=1, not_found_no_email=1, messages_total=4,
    messages_queued=2, messages_sent=1, messages_failed=1, llm_cost_usd=0.0035, llm_tokens=1800,
    search_requests=5, search_cost=round(5 * PRICE, 6),
)
EXPECTED_B = expect(
    queries_total=2, queries_completed=1, queries_failed=1, serp_documents=2, companies_total=4,
    companies_new=1, contacts_ready=1, contacts_not_found=2, not_found_blocked=1,
    not_found_other=1, messages_total=2, messages_deferred=1, messages_skipped=1,
    search_requests=2, search_cost=round(2 * PRICE, 6),
)
EXPECTED_NONE = expect(
    queries_total=1, queries_pending=1, companies_total=1, contacts_ready=1, messages_total=2,
    messages_queued=1, messages_unknown=1, llm_cost_usd=0.002, llm_tokens=1100,
)
EXPECTED_D1 = expect(
    queries_total=4, queries_pending=1, queries_completed=3, serp_documents=5, companies_total=9,
    companies_new=2, companies_opted_out=1, companies_contacted=1, contacts_ready=2,
    contacts_not_found=2, not_found_no_email=1, not_found_blocked=1, messages_total=3,
    messages_queued=1, messages_deferred=1, messages_skipped=1, llm_cost_usd=0.0005,
    llm_tokens=150, search_requests=4, search_cost=round(4 * PRICE, 6),
)
EXPECTED_D2 = expect(
    queries_total=5, queries_pending=2, queries_submitted=1, queries_failed=2, serp_documents=2,
    companies_total=5, companies_new=1, companies_duplicate=1, contacts_ready=2,
    contacts_not_found=3, not_found_unreachable=1, not_found_robots=1, not_found_other=1,
    messages_total=5, messages_queued=2, messages_sent=1, messages_failed=1, messages_unknown=1,
    llm_cost_usd=0.005, llm_tokens=2750, search_requests=3, search_cost=round(3 * PRICE, 6),
)
EXPECTED_TOTAL = expect(
    queries_total=9, queries_pending=3, queries_submitted=1, queries_completed=3,
    queries_failed=2, serp_documents=7, companies_total=14, companies_new=3,
    companies_duplicate=1, companies_opted_out=1, companies_contacted=1, contacts_ready=4,
    contacts_not_found=5, not_found_unreachable=1, not_found_blocked=1, not_found_robots=1,
    not_found_no_email=1, not_found_other=1, messages_total=8, messages_queued=3,
    messages_sent=1, messages_deferred=1, messages_failed=1, messages_skipped=1,
    messages_unknown=1, llm_cost_usd=0.0055, llm_tokens=2900, search_requests=7,
    search_cost=round(7 * PRICE, 6),
)


def assert_metrics(row: FunnelRow, expected: dict[str, float]) -> None:
    got = metrics(row)
    for name in ("llm_cost_usd", "search_cost"):
        assert got.pop(name) == pytest.approx(expected[name], abs=1e-9), name
    assert got == {k: v for k, v in expected.items() if k not in ("llm_cost_usd", "search_cost")}


@pytest.fixture
def seeded(db_url: str, moscow: None) -> str:
    with session_scope(db_url) as session:
        seed(session)
    return db_url


# --- funnel -----------------------------------------------------------------------------------


def test_funnel_by_batch(seeded: str) -> None:
    with session_scope(seeded) as session:
        rows = funnel(session, get_settings(), by="batch")
    assert [(r.key, r.batch, r.day, r.is_total) for r in rows] == [
        (A, A, None, False), (B, B, None, False), (NONE, NONE, None, False),
        ("TOTAL", None, None, True)]
    assert_metrics(rows[0], EXPECTED_A)
    assert_metrics(rows[1], EXPECTED_B)
    assert_metrics(rows[2], EXPECTED_NONE)
    assert_metrics(rows[3], EXPECTED_TOTAL)


def test_funnel_by_local_day(seeded: str) -> None:
    with session_scope(seeded) as session:
        rows = funnel(session, get_settings(), by="day")
    assert [(r.key, r.day) for r in rows] == [(D1, D1), (D2, D2), ("TOTAL", None)]
    assert_metrics(rows[0], EXPECTED_D1)
    assert_metrics(rows[1], EXPECTED_D2)
    assert_metrics(rows[2], EXPECTED_TOTAL)


def test_funnel_by_batch_and_day(seeded: str) -> None:
    with session_scope(seeded) as session:
        rows = funnel(session, get_settings(), by="batch_day")
    assert [(r.batch, r.day) for r in rows] == [
        (A, D1), (A, D2), (B, D1), (B, D2), (NONE, D2), (None, None)]
    by_key = {(r.batch, r.day): r for r in rows}
    assert_metrics(by_key[(A, D1)], expect(
        queries_total=3, queries_pending=1, queries_completed=2, serp_documents=3,
        companies_total=6, companies_new=2, companies_opted_out=1, companies_contacted=1,
        contacts_ready=1, contacts_not_found=1, not_found_no_email=1, messages_total=1,
        messages_queued=1, llm_cost_usd=0.0005, llm_tokens=150, search_requests=3,
        search_cost=round(3 * PRICE, 6)))
    assert_metrics(by_key[(A, D2)], expect(
        queries_total=3, queries_pending=1, queries_submitted=1, queries_failed=1,
        serp_documents=2, companies_total=3, companies_duplicate=1, contacts_ready=1,
        contacts_not_found=2, not_found_unreachable=1, not_found_robots=1, messages_total=3,
        messages_queued=1, messages_sent=1, messages_failed=1, llm_cost_usd=0.003,
        llm_tokens=1650, search_requests=2, search_cost=round(2 * PRICE, 6)))
    assert by_key[(B, D2)].companies_new == 1 and by_key[(B, D2)].not_found_other == 1
    assert by_key[(B, D1)].not_found_blocked == 1 and by_key[(B, D1)].serp_documents == 2
    assert_metrics(by_key[(None, None)], EXPECTED_TOTAL)


def test_funnel_since_keeps_later_events_only(seeded: str) -> None:
    settings = get_settings()
    since = datetime(2025, 3, 11, tzinfo=settings.tz)
    with session_scope(seeded) as session:
        by_day = funnel(session, settings, by="day", since=since)
        by_batch = funnel(session, settings, by="batch", since=since.replace(tzinfo=None))
    assert [r.key for r in by_day] == [D2, "TOTAL"]
    assert_metrics(by_day[0], EXPECTED_D2)
    assert_metrics(by_day[1], EXPECTED_D2)
    assert [r.key for r in by_batch] == [A, B, NONE, "TOTAL"]
    assert by_batch[0].queries_total == 3 and by_batch[0].messages_sent == 1
    assert_metrics(by_batch[-1], EXPECTED_D2)


def test_funnel_on_an_empty_database(db_url: str, moscow: None) -> None:
    with session_scope(db_url) as session:
        rows = funnel(session, get_settings(), by="batch_day")
    assert len(rows) == 1 and rows[0].is_total
    assert_metrics(rows[0], expect())
    with pytest.raises(ValueError):
        funnel(session, get_settings(), by="week")  # type: ignore[arg-type]


def test_search_cost_follows_the_configured_price(seeded: str, monkeypatch) -> None:
    monkeypatch.setenv("YANDEX_PRICE_PER_1000", "0.25")
    reset_settings()
    with session_scope(seeded) as session:
        total = funnel(session, get_settings())[-1]
    assert total.search_requests == 7
    assert total.search_cost == pytest.approx(7 * 0.25 / 1000)


@pytest.mark.parametrize(
    ("zone", "moments", "days"),
    [
        # Berlin switches to summer time on 2025-03-30 01:00 UTC.
        ("Europe/Berlin", [t(29, 23, 30), t(30, 21, 30), t(30, 22, 30)],
         ["2025-03-30", "2025-03-30", "2025-03-31"]),
        # New York switched on 2025-03-09 07:00 UTC: -5 before, -4 after.
        ("America/New_York", [t(9, 4, 30), t(10, 3, 30), t(10, 4, 30)],
         ["2025-03-08", "2025-03-09", "2025-03-10"]),
        ("UTC", [t(9, 23, 59), t(10, 0, 0)], ["2025-03-09", "2025-03-10"]),
    ],
)
def test_local_day_follows_daylight_saving(db_url, monkeypatch, zone, moments, days) -> None:
    monkeypatch.setenv("APP_TIMEZONE", zone)
    reset_settings()
    with session_scope(db_url) as session:
        for i, moment in enumerate(moments):
            session.add(Company(domain=f"d{i}.ru", name="x", homepage_url="https://x/",
                                first_seen_at=moment, last_seen_at=moment))
    with session_scope(db_url) as session:
        rows = funnel(session, get_settings(), by="day")
    got = {r.day: r.companies_total for r in rows if not r.is_total}
    want: dict[str, int] = {}
    for day in days:
        want[day] = want.get(day, 0) + 1
    assert got == want


def test_offset_segments_know_moscow_history() -> None:
    segments = _offset_segments("Europe/Moscow")
    # Summer time until 2011, permanent +4 until 2014-10-26, +3 since.
    assert segments[-1] == ("2014-10-25 22:00:00", 3 * 3600)
    assert ("2011-03-26 23:00:00", 4 * 3600) in segments
    assert _offset_segments("UTC") == ((None, 0),)


def test_to_json(seeded: str) -> None:
    with session_scope(seeded) as session:
        rows = funnel(session, get_settings(), by="batch_day")
    data = json.loads(to_json(rows))
    assert [d["key"] for d in data] == [f"{A} {D1}", f"{A} {D2}", f"{B} {D1}", f"{B} {D2}",
                                        f"{NONE} {D2}", "TOTAL"]
    assert data[-1]["is_total"] is True
    assert data[-1]["messages_sent"] == 1 and data[-1]["not_found_robots"] == 1
    assert data[-1]["llm_cost_usd"] == pytest.approx(0.0055)


# --- export -----------------------------------------------------------------------------------


def csv_of(session: Session, kind: str, **filters) -> tuple[str, list[dict[str, str]]]:
    out = io.StringIO(newline="")
    count = write_csv(export_rows(session, kind, **filters), out, FIELDS[kind])
    text = out.getvalue()
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(parsed) == count
    return text, parsed


def test_export_companies_with_filters_and_escaping(seeded: str) -> None:
    with session_scope(seeded) as session:
        text, rows = csv_of(session, "companies")
        assert text.splitlines()[0] == ",".join(FIELDS["companies"])
        assert len(rows) == 14
        by_domain = {r["domain"]: r for r in rows}
        tricky = by_domain["c1.ru"]
        assert tricky["name"] == TRICKY_NAME  # comma, quotes and newline survive
        assert '"Acme, ""Best""\nWidgets"' in text
        assert by_domain["ромашка.рф"]["name"] == CYRILLIC_NAME
        assert by_domain["ромашка.рф"]["batch_tag"] == ""
        c3 = by_domain["c3.ru"]
        assert c3["primary_email"] == "info@c3.ru"
        assert c3["first_seen_at"] == "2025-03-10T02:00:00Z"
        assert c3["enriched_at"] == "2025-03-10T23:00:00Z"
        assert tricky["enriched_at"] == "" and tricky["primary_email"] == ""
        assert by_domain["c5.ru"]["status_reason"] == "unreachable: connection timed out"

        _, rows = csv_of(session, "companies", batch_tag=A)
        assert len(rows) == 9 and {r["batch_tag"] for r in rows} == {A}
        _, rows = csv_of(session, "companies", status="contacts_not_found")
        assert sorted(r["domain"] for r in rows) == ["c11.ru", "c12.ru", "c5.ru", "c6.ru",
                                                      "c9.ru"]
        _, rows = csv_of(session, "companies", batch_tag=A, status="contacts_not_found,new")
        assert sorted(r["domain"] for r in rows) == ["c1.ru", "c5.ru", "c6.ru", "c9.ru"]
        _, rows = csv_of(session, "companies", batch_tag=NONE)
        assert [r["domain"] for r in rows] == ["ромашка.рф"]


def test_export_contacts_and_messages(seeded: str) -> None:
    with session_scope(seeded) as session:
        _, contacts = csv_of(session, "contacts", batch_tag=B)
        assert [(c["domain"], c["email"], c["is_primary"]) for c in contacts] == [
            ("c10.ru", "info@c10.ru", "true"), ("c10.ru", "hr@c10.ru", "false")]
        assert contacts[0]["source_url"] == "https://c10.ru/kontakty?a=1,b=2"
        assert contacts[0]["confidence"] == "0.95" and contacts[0]["mx_ok"] == "true"

        _, messages = csv_of(session, "messages")
        assert len(messages) == 8
        sent = next(m for m in messages if m["status"] == "sent")
        assert (sent["domain"], sent["to_email"], sent["mailbox"]) == ("c4.ru", "office@c4.ru",
                                                                       "main")
        assert sent["sent_at"] == "2025-03-10T21:10:00Z"
        assert sent["subject"] == "Предложение для office@c4.ru"
        assert (sent["generator"], sent["model"], float(sent["cost_usd"])) == (
            "llm", "gpt-4.1-mini", 0.0012)
        held = next(m for m in messages if m["status"] == "held")
        assert held["mailbox"] == "" and held["scheduled_for"] == "" and held["cost_usd"] == ""

        _, messages = csv_of(session, "messages", status="sent,failed")
        assert sorted((m["status"], m["last_error"]) for m in messages) == [
            ("failed", "550 5.1.1 user unknown"), ("sent", "")]
        _, messages = csv_of(session, "messages", batch_tag=A, status=["scheduled", "sending"])
        assert sorted(m["to_email"] for m in messages) == ["director@c4.ru", "info@c3.ru"]

        text, rows = csv_of(session, "messages", status="no-such-status")
        assert rows == [] and text == ",".join(FIELDS["messages"]) + "\r\n"

        with pytest.raises(ValueError):
            list(export_rows(session, "mailboxes"))  # type: ignore[arg-type]


# --- CLI --------------------------------------------------------------------------------------


def test_cli_report(seeded: str) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["report"])
    assert result.exit_code == 0, result.output
    assert A in result.output and B in result.output and "TOTAL" in result.output

    result = runner.invoke(main, ["report", "--by", "day", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["key"] for d in data] == [D1, D2, "TOTAL"]
    assert data[1]["companies_total"] == 5 and data[2]["serp_documents"] == 7

    result = runner.invoke(main, ["report", "--json", "--since", "2025-03-11"])
    assert result.exit_code == 0, result.output
    total = json.loads(result.stdout)[-1]
    assert total["queries_total"] == 5 and total["messages_total"] == 5

    result = runner.invoke(main, ["report", "--since", "11.03.2025"])
    assert result.exit_code == 2

    result = runner.invoke(main, ["report", "--sheet"])
    assert result.exit_code == 2 and "GOOGLE_SHEET_ID" in result.output


def test_cli_export(seeded: str, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["export", "companies", "--batch", A, "--status", "new,enriching"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout, newline="")))
    assert sorted(r["domain"] for r in rows) == ["c1.ru", "c2.ru"]
    assert "exported 2 companies" in result.stderr

    target = tmp_path / "messages.csv"
    result = runner.invoke(main, ["export", "messages", "--format", "csv", "--output",
                                  str(target), "--excel"])
    assert result.exit_code == 0, result.output
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == 8 and "Предложение для info@romashka.ru" in {r["subject"] for r in rows}

    target = tmp_path / "none.csv"
    result = runner.invoke(main, ["export", "contacts", "--status", "nope", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == ",".join(FIELDS["contacts"]) + "\n"

    result = runner.invoke(main, ["export", "domains"])
    assert result.exit_code == 2


# --- REPORT tab against the Sheets emulator ---------------------------------------------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    from leadgen.sandbox.runner import Sandbox

    with Sandbox(tmp_path_factory.mktemp("sandbox"), seed=7) as sb:
        yield sb


def test_report_tab_in_the_sandbox_sheet(seeded: str, sandbox, monkeypatch) -> None:
    import gspread

    from leadgen.report import METRICS, write_report_tab
    from leadgen.sheets_client import open_spreadsheet

    sb = sandbox
    for key, value in sb.env().items():
        monkeypatch.setenv(key, value)
    reset_settings()
    settings = get_settings()
    spreadsheet = open_spreadsheet(settings)
    try:  # the sandbox is shared by both database runs
        spreadsheet.del_worksheet(spreadsheet.worksheet("REPORT"))
    except gspread.WorksheetNotFound:
        pass
    # An existing, too small REPORT tab with stale content is grown and fully replaced.
    stale = spreadsheet.add_worksheet("REPORT", rows=3, cols=2)
    stale.update([["stale", "x"], ["old", "y"], ["rows", "z"]], "A1:B3")

    with session_scope(seeded) as session:
        detailed = funnel(session, settings, by="batch_day")
        by_batch = funnel(session, settings, by="batch")
    assert write_report_tab(detailed, settings) == 6
    values = sb.sheets.values("REPORT")
    assert values[0] == ["key", "batch", "day", *METRICS]
    assert [row[0] for row in values[1:]] == [f"{A} {D1}", f"{A} {D2}", f"{B} {D1}",
                                              f"{B} {D2}", f"{NONE} {D2}", "TOTAL"]

    assert write_report_tab(by_batch, settings) == 4  # fewer rows: nothing stale remains
    records = sb.sheets.records("REPORT")
    assert [r["key"] for r in records] == [A, B, NONE, "TOTAL"]
    total = records[-1]
    assert total["day"] == "" and total["queries_total"] == "9"
    assert total["companies_total"] == "14" and total["messages_sent"] == "1"
    assert float(total["llm_cost_usd"]) == pytest.approx(0.0055)
    assert records[0]["contacts_not_found"] == "3"
    assert sb.sheets.values("NICHES_INPUT")  # the input tab is untouched

    # The CLI writes the same tab.
    result = CliRunner().invoke(main, ["report", "--by", "day", "--sheet", "--json"])
    assert result.exit_code == 0, result.output
    assert "wrote 3 rows to the REPORT tab" in result.stderr
    assert [r["key"] for r in sb.sheets.records("REPORT")] == [D1, D2, "TOTAL"]
