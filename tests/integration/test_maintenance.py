from datetime import timedelta

from leadgen.maintenance import sweep_leases
from leadgen.models import Company, Contact, OutreachMessage, SerpQuery, utcnow


def test_sweeper_frees_expired_claims_and_never_resends(session):
    now = utcnow()
    past, future = now - timedelta(minutes=5), now + timedelta(minutes=5)
    session.add_all([
        SerpQuery(query_hash="a", query_text="q a", region_id=213, region_source="city",
                  niche="n", status="submitting", scheduled_for=now, lease_until=past),
        SerpQuery(query_hash="b", query_text="q b", region_id=213, region_source="city",
                  niche="n", status="submitting", scheduled_for=now, lease_until=future),
        Company(domain="old.ru", name="Old", homepage_url="https://old.ru/", status="enriching",
                lease_until=past),
        Company(domain="busy.ru", name="Busy", homepage_url="https://busy.ru/",
                status="enriching", lease_until=future),
    ])
    session.flush()
    company = session.query(Company).filter_by(domain="old.ru").one()
    contact = Contact(company_id=company.id, email="info@old.ru", method="mailto", confidence=1.0)
    session.add(contact)
    session.flush()
    session.add(OutreachMessage(contact_id=contact.id, company_id=company.id,
                                to_email="info@old.ru", subject="s", body="b", status="sending",
                                generator="template", lease_until=past))
    session.commit()

    report = sweep_leases(session, now)
    session.commit()

    assert (report.queries, report.companies, report.messages_unknown) == (1, 1, 1)
    statuses = {q.query_hash: q.status for q in session.query(SerpQuery)}
    assert statuses == {"a": "pending", "b": "submitting"}
    assert {c.domain: c.status for c in session.query(Company)} == {
        "old.ru": "new", "busy.ru": "enriching"}
    assert session.query(OutreachMessage).one().status == "unknown"
    assert sweep_leases(session, now).messages_unknown == 0  # idempotent


def test_sweeper_gives_up_on_a_company_that_keeps_killing_its_worker(session):
    """A site whose crawl never finishes (worker killed, store keeps failing) must not go back to
    `new` forever: each claim counted an attempt, and at ENRICH_MAX_ATTEMPTS it is final."""
    now = utcnow()
    past = now - timedelta(minutes=5)
    session.add_all([
        Company(domain="poison.ru", name="P", homepage_url="https://poison.ru/",
                status="enriching", lease_until=past, attempts=3),
        Company(domain="again.ru", name="A", homepage_url="https://again.ru/",
                status="enriching", lease_until=past, attempts=1),
    ])
    session.commit()

    assert sweep_leases(session, now).companies == 2
    session.commit()

    rows = {c.domain: c for c in session.query(Company)}
    assert rows["again.ru"].status == "new"
    poison = rows["poison.ru"]
    assert (poison.status, poison.status_reason, poison.next_attempt_at, poison.lease_until) == (
        "contacts_not_found", "unreachable", None, None)
    assert "lease expired" in poison.last_error


def test_sweeper_fails_a_query_whose_submits_keep_dying(session):
    from leadgen.config import load_settings

    now = utcnow()
    past = now - timedelta(minutes=5)
    settings = load_settings(yandex_max_attempts=3)
    session.add_all([
        SerpQuery(query_hash="last", query_text="q", region_id=213, region_source="city",
                  niche="n", status="submitting", scheduled_for=now, lease_until=past,
                  attempts=2),
        SerpQuery(query_hash="first", query_text="q2", region_id=213, region_source="city",
                  niche="n", status="submitting", scheduled_for=now, lease_until=past),
    ])
    session.commit()
    assert sweep_leases(session, now, settings).queries == 2
    session.commit()
    rows = {q.query_hash: (q.status, q.attempts) for q in session.query(SerpQuery)}
    assert rows == {"last": ("failed", 3), "first": ("pending", 1)}
    failed = session.query(SerpQuery).filter_by(query_hash="last").one()
    assert "last attempt" in failed.last_error
