"""SERP ingest and dedupe on both databases (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from leadgen.config import get_settings, load_settings
from leadgen.models import Company, Contact, OptOut, SerpOperation, SerpQuery, SerpResult
from leadgen.serp.dedupe import dedupe
from leadgen.serp.ingest import ingest_operation, ingest_operations
from leadgen.serp.xmlgen import render_serp

NOW = datetime.now(timezone.utc)


def make_query(session: Session, n: int = 1, *, city: str = "Москва", attempts: int = 0,
               status: str = "submitted") -> SerpQuery:
    query = SerpQuery(
        query_hash=f"hash-{n}-{city}", query_text=f"стоматология {city}", page=0, region_id=213,
        region_source="city", niche="стоматология", city=city, country="Россия",
        batch_tag="batch-1", status=status, scheduled_for=NOW - timedelta(hours=1),
        attempts=attempts,
    )
    session.add(query)
    session.flush()
    return query


def make_operation(session: Session, query: SerpQuery, xml: str | None, n: int = 1,
                   status: str = "fetched") -> SerpOperation:
    op = SerpOperation(query_id=query.id, operation_id=f"op-{query.id}-{n}", status=status,
                       raw_xml=xml)
    session.add(op)
    session.commit()
    return op


DOCS = [
    {"url": "https://www.ulybka-dent.ru/uslugi?utm_source=yandex",
     "title": "Стоматология в Москве недорого — цены | Клиника «Улыбка»",
     "passages": ["Лечение зубов без боли. Запись онлайн."]},
    {"url": "https://msk.ulybka-dent.ru/contacts", "title": "Контакты",
     "passages": ["© ООО «Улыбка Дент», 2024"]},
    {"url": "https://www.avito.ru/moskva/uslugi", "title": "Стоматология — Авито"},
    {"url": "https://market.yandex.ru/x", "title": "Яндекс Маркет"},
    {"url": "https://smile-clinic.ru/", "title": "Смайл Клиник: стоматология",
     "headline": "Семейная стоматология"},
    {"url": "http://xn--80aqafcrtq.xn--p1ai/", "title": None, "passages": ["Без заголовка"]},
    {"url": "https://flagged.ru/", "title": "Flagged", "touchdown": "РКН: сайт нарушает закон РФ"},
    {"url": "mailto:info@bad.ru", "title": "junk"},
    {"url": "http://10.0.0.1/admin", "title": "ip literal"},
]


def companies(session: Session) -> dict[str, Company]:
    session.expire_all()
    return {c.domain: c for c in session.scalars(select(Company))}


def test_ingest_stores_results_and_companies(session: Session) -> None:
    query = make_query(session)
    op = make_operation(session, query, render_serp(DOCS, highlight=["Стоматология"]))
    result = ingest_operation(session, op.id, get_settings())
    session.commit()

    assert result.outcome == "ingested" and result.doc_count == len(DOCS)
    assert result.skipped_count == 1  # mailto:
    # avito, market.yandex, touchdown, ip literal
    assert result.blocked_count == 4
    found = companies(session)
    assert set(found) == {"ulybka-dent.ru", "smile-clinic.ru", "xn--80aqafcrtq.xn--p1ai"}
    assert result.company_ids == [found["ulybka-dent.ru"].id, found["smile-clinic.ru"].id,
                                  found["xn--80aqafcrtq.xn--p1ai"].id]
    ulybka = found["ulybka-dent.ru"]
    # the legal name in the second doc's snippet beats the first doc's title brand
    assert (ulybka.name, ulybka.name_source, ulybka.name_key) == (
        "ООО «Улыбка Дент»", "legal", "улыбкадент")
    assert ulybka.homepage_url == "https://ulybka-dent.ru/"
    assert (ulybka.niche, ulybka.city, ulybka.region_id, ulybka.batch_tag, ulybka.query_id) == (
        "стоматология", "Москва", 213, "batch-1", query.id)
    assert ulybka.status == "new"
    assert found["smile-clinic.ru"].name == "Смайл Клиник"
    idn = found["xn--80aqafcrtq.xn--p1ai"]
    assert idn.name_source == "domain" and idn.homepage_url == "http://xn--80aqafcrtq.xn--p1ai/"
    assert idn.name_key is None

    rows = session.scalars(select(SerpResult).order_by(SerpResult.position)).all()
    assert len(rows) == len(DOCS) - 1
    first = rows[0]
    assert (first.position, first.url, first.host, first.domain, first.lang) == (
        1, "https://ulybka-dent.ru/uslugi", "ulybka-dent.ru", "ulybka-dent.ru", "ru")
    assert first.title == "Стоматология в Москве недорого — цены | Клиника «Улыбка»"
    assert first.snippet == "Лечение зубов без боли. Запись онлайн."
    assert first.query_id == query.id and not first.blocked
    blocked = {r.host: r.blocked for r in rows}
    assert blocked["avito.ru"] and blocked["market.yandex.ru"] and blocked["flagged.ru"]
    assert blocked["10.0.0.1"]

    session.expire_all()
    op_row, query_row = session.get(SerpOperation, op.id), session.get(SerpQuery, query.id)
    assert (op_row.status, op_row.doc_count) == ("ingested", len(DOCS))
    assert (query_row.status, query_row.result_count) == ("completed", len(DOCS))
    assert query_row.completed_at is not None


def test_ingest_twice_is_idempotent(session: Session) -> None:
    query = make_query(session)
    op = make_operation(session, query, render_serp(DOCS))
    first = ingest_operation(session, op.id)
    session.commit()
    counts = (session.scalar(select(func.count(SerpResult.id))),
              session.scalar(select(func.count(Company.id))))
    again = ingest_operation(session, op.id)
    session.commit()
    assert again.outcome == "already_ingested"
    assert again.company_ids == first.company_ids
    assert counts == (session.scalar(select(func.count(SerpResult.id))),
                      session.scalar(select(func.count(Company.id))))

    # a fetched copy of the same XML (a replayed poll) adds no results and no companies
    session.execute(SerpOperation.__table__.update().where(SerpOperation.id == op.id)
                    .values(status="fetched"))
    session.commit()
    replay = ingest_operation(session, op.id)
    session.commit()
    assert replay.company_ids == first.company_ids
    assert counts == (session.scalar(select(func.count(SerpResult.id))),
                      session.scalar(select(func.count(Company.id))))


def test_upsert_improves_names_never_worsens(session: Session) -> None:
    query = make_query(session)
    op1 = make_operation(session, query, render_serp(
        [{"url": "https://romashka-flowers.ru/", "title": "Купить цветы недорого"}]), n=1)
    ingest_operation(session, op1.id)
    session.commit()
    company = companies(session)["romashka-flowers.ru"]
    assert company.name_source == "domain"
    first_seen = company.first_seen_at

    op2 = make_operation(session, query, render_serp(
        [{"url": "https://romashka-flowers.ru/a", "title": "Ромашка — цветы с доставкой"}]), n=2)
    ingest_operation(session, op2.id)
    session.commit()
    company = companies(session)["romashka-flowers.ru"]
    assert (company.name, company.name_source) == ("Ромашка", "title")

    op3 = make_operation(session, query, render_serp(
        [{"url": "https://romashka-flowers.ru/b", "title": "Контакты",
          "passages": ['ООО "Ромашка Флауэрс", ИНН 7700000000']}]), n=3)
    ingest_operation(session, op3.id)
    session.commit()
    company = companies(session)["romashka-flowers.ru"]
    assert (company.name, company.name_source) == ("ООО «Ромашка Флауэрс»", "legal")

    other = make_query(session, 2, city="Казань")
    op4 = make_operation(session, other, render_serp(
        [{"url": "https://romashka-flowers.ru/c", "title": "Цветы Ромашка | Доставка"}]), n=4)
    ingest_operation(session, op4.id)
    session.commit()
    company = companies(session)["romashka-flowers.ru"]
    assert (company.name, company.name_source) == ("ООО «Ромашка Флауэрс»", "legal")
    assert company.city == "Москва" and company.query_id == query.id  # kept from the insert
    assert company.first_seen_at == first_seen
    assert company.last_seen_at >= first_seen
    assert session.scalar(select(func.count(Company.id))) == 1


def test_bulk_operation_of_many_docs(session: Session) -> None:
    query = make_query(session)
    docs = [{"url": f"https://company{i}.ru/page{i}", "title": f"Компания{i} — услуги"}
            for i in range(250)]
    docs += [{"url": f"https://sub{i}.company{i}.ru/x", "title": "дубль"} for i in range(50)]
    op = make_operation(session, query, render_serp(docs))
    result = ingest_operation(session, op.id)
    session.commit()
    assert len(result.company_ids) == 250 == len(set(result.company_ids))
    assert session.scalar(select(func.count(SerpResult.id))) == 300
    assert session.scalar(select(func.count(Company.id))) == 250


def test_extra_blocked_domains_from_settings(session: Session, monkeypatch) -> None:  # noqa: ANN001
    query = make_query(session)
    op = make_operation(session, query, render_serp(
        [{"url": "https://shop.competitor.ru/", "title": "X"},
         {"url": "https://fine.ru/", "title": "Fine"}]))
    settings = load_settings(search_blocked_domains="competitor.ru")
    result = ingest_operation(session, op.id, settings)
    session.commit()
    assert set(companies(session)) == {"fine.ru"}
    assert result.blocked_count == 1


def test_error_15_completes_the_query(session: Session, samples_dir: Path) -> None:
    query = make_query(session)
    op = make_operation(session, query, (samples_dir / "error-15-not-found.xml").read_text())
    result = ingest_operation(session, op.id)
    session.commit()
    assert (result.outcome, result.error_code, result.company_ids) == ("empty", 15, [])
    session.expire_all()
    assert session.get(SerpQuery, query.id).status == "completed"
    assert session.get(SerpQuery, query.id).result_count == 0
    assert session.get(SerpOperation, op.id).status == "ingested"


def test_error_55_requeues_the_query(session: Session, samples_dir: Path) -> None:
    query = make_query(session, attempts=5)  # beyond max attempts: quota never fails a query
    op = make_operation(session, query, (samples_dir / "error-55-rps-exceeded.xml").read_text())
    before = datetime.now(timezone.utc)
    result = ingest_operation(session, op.id)
    session.commit()
    assert (result.outcome, result.error_code) == ("requeued", 55)
    session.expire_all()
    row = session.get(SerpQuery, query.id)
    assert row.status == "pending" and row.attempts == 6
    assert row.next_attempt_at > before and row.scheduled_for >= row.next_attempt_at
    assert "55" in row.last_error
    op_row = session.get(SerpOperation, op.id)
    assert op_row.status == "failed" and "RPS" in op_row.error
    # consumed: ingesting again does nothing
    assert ingest_operation(session, op.id).company_ids == []
    session.commit()
    session.expire_all()
    assert session.get(SerpQuery, query.id).attempts == 6


def test_error_32_waits_for_the_next_day(session: Session, samples_dir: Path) -> None:
    query = make_query(session)
    op = make_operation(session, query, (samples_dir / "error-32-daily-limit.xml").read_text())
    ingest_operation(session, op.id)
    session.commit()
    session.expire_all()
    row = session.get(SerpQuery, query.id)
    settings = get_settings()
    local_next = row.next_attempt_at.astimezone(settings.tz)
    assert row.status == "pending"
    assert local_next.date() > datetime.now(settings.tz).date()


def test_malformed_xml_fails_the_operation_and_retries_the_query(session: Session) -> None:
    query = make_query(session)
    op = make_operation(session, query, "PD94bWwgdmVyc2lvbj0iMS4wIj8+")
    result = ingest_operation(session, op.id, load_settings(yandex_max_attempts=2))
    session.commit()
    assert result.outcome == "failed" and result.company_ids == []
    session.expire_all()
    assert session.get(SerpOperation, op.id).status == "failed"
    assert "base64" in session.get(SerpOperation, op.id).error
    row = session.get(SerpQuery, query.id)
    assert (row.status, row.attempts) == ("pending", 1)

    op2 = make_operation(session, query, "<yandexsearch><response>", n=2)
    ingest_operation(session, op2.id, load_settings(yandex_max_attempts=2))
    session.commit()
    session.expire_all()
    row = session.get(SerpQuery, query.id)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "malformed" in row.last_error


def test_not_fetched_operation_is_left_alone(session: Session) -> None:
    query = make_query(session)
    op = make_operation(session, query, None, status="pending")
    assert ingest_operation(session, op.id).outcome == "not_ready"
    assert ingest_operation(session, 999_999).outcome == "not_ready"


# --- batches -----------------------------------------------------------------------------------


def _batch_world(session: Session, samples_dir: Path) -> list[int]:
    """Operations of every kind, sharing companies whose names improve from one to the next."""
    q1, q2, q3 = (make_query(session, n) for n in (1, 2, 3))
    q4 = make_query(session, 4, city="Казань")
    q5 = make_query(session, 5, attempts=1)
    q6, q7 = make_query(session, 6), make_query(session, 7)
    earlier = make_operation(session, q1, render_serp(
        [{"url": "https://romashka-flowers.ru/", "title": "Купить цветы недорого"}]), n=9)
    ingest_operation(session, earlier.id)  # already ingested before the batch
    session.commit()
    ops = [
        earlier,
        make_operation(session, q1, render_serp(DOCS, highlight=["Стоматология"]), n=1),
        make_operation(session, q2, render_serp(
            [{"url": "https://romashka-flowers.ru/a", "title": "Ромашка — цветы с доставкой"},
             {"url": "https://smile-clinic.ru/x", "title": "Контакты",
              "passages": ["© ООО «Смайл»"]}]), n=2),
        make_operation(session, q4, render_serp(
            [{"url": "https://www.romashka-flowers.ru/b", "title": "Контакты",
              "passages": ['ООО "Ромашка Флауэрс"']},
             {"url": "https://new-firm.ru/", "title": "Новая Фирма | Главная"}]), n=4),
        make_operation(session, q2, render_serp(  # a second operation of the same query
            [{"url": "https://late.ru/", "title": "Позже"},
             {"url": "https://new-firm.ru/x", "title": "Другая Фирма | Главная"}]), n=22),
        make_operation(session, q3, (samples_dir / "error-15-not-found.xml").read_text(), n=3),
        make_operation(session, q5, (samples_dir / "error-55-rps-exceeded.xml").read_text(),
                       n=5),
        make_operation(session, q5, "<yandexsearch><response>", n=6),
        make_operation(session, q3, None, n=7, status="pending"),
        # a failure after a stored operation of the same query, and one before
        make_operation(session, q6, render_serp([{"url": "https://six.ru/", "title": "Шесть"}]),
                       n=10),
        make_operation(session, q6, "<yandexsearch><response>", n=11),
        make_operation(session, q7, (samples_dir / "error-55-rps-exceeded.xml").read_text(),
                       n=12),
        make_operation(session, q7, render_serp([{"url": "https://seven.ru/", "title": "Семь"}]),
                       n=13),
    ]
    return [op.id for op in ops] + [999_999]


def _snapshot(session: Session, outcomes: dict[int, object]) -> dict[str, object]:
    session.expire_all()
    domain_of = {c.id: c.domain for c in session.scalars(select(Company))}
    return {
        "outcomes": {pk: (r.outcome, r.error_code, r.doc_count, r.blocked_count,
                          r.skipped_count, [domain_of[i] for i in r.company_ids])
                     for pk, r in outcomes.items()},
        "results": sorted((r.operation_id, r.position, r.url, r.host, r.domain, r.title,
                           r.snippet, r.lang, r.blocked)
                          for r in session.scalars(select(SerpResult))),
        "companies": sorted((c.domain, c.name, c.name_source, c.name_key, c.homepage_url,
                             c.niche, c.city, c.region_id, c.batch_tag, c.query_id, c.status)
                            for c in session.scalars(select(Company))),
        "operations": sorted((o.id, o.status, o.doc_count, o.error)
                             for o in session.scalars(select(SerpOperation))),
        "queries": sorted((q.id, q.status, q.result_count, q.attempts, q.last_error)
                          for q in session.scalars(select(SerpQuery))),
    }


def _clear(session: Session) -> None:
    for model in (SerpResult, Company, SerpOperation, SerpQuery):
        session.execute(model.__table__.delete())
    session.commit()


def test_batch_gives_what_one_by_one_gives(session: Session, samples_dir: Path) -> None:
    pks = _batch_world(session, samples_dir)
    one_by_one = {pk: ingest_operation(session, pk) for pk in pks}
    session.commit()
    expected = _snapshot(session, one_by_one)
    _clear(session)

    pks = _batch_world(session, samples_dir)  # same ids: the tables' sequences moved on
    batch = ingest_operations(session, reversed(pks))
    session.commit()
    assert list(batch) == sorted(pks)
    got = _snapshot(session, batch)

    def by_position(snapshot: dict) -> dict:  # row ids differ between the two worlds
        ranks = {old: new for new, old in enumerate(sorted(snapshot["outcomes"]))}
        out = dict(snapshot)
        out["outcomes"] = {ranks[pk]: value for pk, value in snapshot["outcomes"].items()}
        op_ranks = {row[0]: n for n, row in enumerate(snapshot["operations"])}
        out["operations"] = [(n, *row[1:]) for n, row in enumerate(snapshot["operations"])]
        out["results"] = sorted((op_ranks[row[0]], *row[1:]) for row in snapshot["results"])
        q_ranks = {row[0]: n for n, row in enumerate(snapshot["queries"])}
        out["queries"] = [(n, *row[1:]) for n, row in enumerate(snapshot["queries"])]
        out["companies"] = [(*row[:9], q_ranks[row[9]], row[10]) for row in snapshot["companies"]]
        return out

    assert by_position(got) == by_position(expected)
    outcomes = [value[0] for value in by_position(got)["outcomes"].values()]
    assert outcomes == ["already_ingested", "ingested", "ingested", "ingested", "ingested",
                        "empty", "requeued", "failed", "not_ready", "ingested", "failed",
                        "requeued", "ingested", "not_ready"]
    flowers = next(c for c in got["companies"] if c[0] == "romashka-flowers.ru")
    assert flowers[1:3] == ("ООО «Ромашка Флауэрс»", "legal")
    firm = next(c for c in got["companies"] if c[0] == "new-firm.ru")
    assert firm[1:3] == ("Новая Фирма", "title")  # an equally good later name does not win


def test_batch_twice_is_idempotent(session: Session) -> None:
    queries = [make_query(session, n) for n in range(3)]
    ops = [make_operation(session, q, render_serp(DOCS), n=i) for i, q in enumerate(queries)]
    first = ingest_operations(session, [op.id for op in ops])
    session.commit()
    counts = (session.scalar(select(func.count(SerpResult.id))),
              session.scalar(select(func.count(Company.id))))
    again = ingest_operations(session, [op.id for op in ops])
    session.commit()
    assert {r.outcome for r in again.values()} == {"already_ingested"}
    assert {pk: r.company_ids for pk, r in again.items()} == {
        pk: r.company_ids for pk, r in first.items()}
    assert counts == (session.scalar(select(func.count(SerpResult.id))),
                      session.scalar(select(func.count(Company.id))))
    assert ingest_operations(session, []) == {}


def test_ingest_batch_task_falls_back_to_one_by_one(
    session: Session, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from leadgen.serp import ingest
    from leadgen.tasks.serp import ingest_batch

    queries = [make_query(session, n) for n in range(2)]
    ops = [make_operation(session, q, render_serp(DOCS[:2] + DOCS[4:6]), n=i)
           for i, q in enumerate(queries)]
    ids = ingest_batch([op.id for op in ops])
    found = companies(session)
    assert ids == [found["ulybka-dent.ru"].id, found["smile-clinic.ru"].id,
                   found["xn--80aqafcrtq.xn--p1ai"].id]

    more = make_operation(session, make_query(session, 9), render_serp(
        [{"url": "https://fresh.ru/", "title": "Свежая"}]), n=9)

    def broken(*_args, **_kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("batch failed")

    monkeypatch.setattr(ingest, "ingest_operations", broken)
    assert ingest_batch([more.id, ops[0].id]) == [ids[0], ids[1], ids[2],
                                                  companies(session)["fresh.ru"].id]
    session.expire_all()
    assert session.get(SerpOperation, more.id).status == "ingested"


# --- dedupe ------------------------------------------------------------------------------------


def add_company(session: Session, domain: str, name: str, key: str | None, *,
                city: str | None = "Москва", status: str = "new", opt_out: bool = False) -> int:
    company = Company(domain=domain, name=name, name_source="legal" if key else "domain",
                      name_key=key, homepage_url=f"https://{domain}/", city=city, status=status,
                      opt_out=opt_out)
    session.add(company)
    session.flush()
    return company.id


def state(session: Session, company_id: int) -> tuple[str, int | None, bool]:
    session.expire_all()
    company = session.get(Company, company_id)
    return company.status, company.duplicate_of_id, company.opt_out


def test_dedupe_by_name_and_city(session: Session) -> None:
    a = add_company(session, "romashka.ru", "ООО «Ромашка»", "ромашка")
    b = add_company(session, "romashka-msk.ru", "Ромашка", "ромашка")
    c = add_company(session, "romashka-kzn.ru", "Ромашка", "ромашка", city="Казань")
    d = add_company(session, "other.ru", "Другая", "другая")
    e = add_company(session, "x.ru", "x.ru", None)
    f = add_company(session, "y.ru", "y.ru", None)
    session.commit()
    assert dedupe(session, [b, c, d, e, f]) == [c, d, e, f]
    session.commit()
    assert state(session, a) == ("new", None, False)
    assert state(session, b) == ("duplicate", a, False)
    assert state(session, c)[0] == "new"
    # idempotent: nothing changes the second time, the answer is the same
    assert dedupe(session, [b, c, d, e, f]) == [c, d, e, f]
    assert dedupe(session) == [a, c, d, e, f]
    session.commit()
    assert state(session, b) == ("duplicate", a, False)


def test_dedupe_never_touches_opt_outs_or_contacted(session: Session) -> None:
    a = add_company(session, "a.ru", "ООО «Альфа»", "альфа")
    b = add_company(session, "b.ru", "Альфа", "альфа", opt_out=True)
    c = add_company(session, "c.ru", "Альфа", "альфа", status="opted_out", opt_out=True)
    d = add_company(session, "d.ru", "Альфа", "альфа", status="contacted")
    e = add_company(session, "e.ru", "Альфа", "альфа")
    session.commit()
    assert dedupe(session) == [a, d]
    session.commit()
    assert state(session, b) == ("new", None, True)
    assert state(session, c) == ("opted_out", None, True)
    assert state(session, d) == ("contacted", None, False)
    assert state(session, e) == ("duplicate", a, False)
    # a later run never resets an opt-out either
    dedupe(session)
    session.commit()
    assert state(session, b)[2] is True and state(session, c) == ("opted_out", None, True)


def test_dedupe_canonical_may_be_opted_out(session: Session) -> None:
    a = add_company(session, "a.ru", "ООО «Бета»", "бета", status="opted_out", opt_out=True)
    b = add_company(session, "b.ru", "Бета", "бета")
    session.commit()
    assert dedupe(session, [b]) == []
    session.commit()
    assert state(session, b) == ("duplicate", a, False)


def test_dedupe_by_shared_email(session: Session) -> None:
    a = add_company(session, "a.ru", "a.ru", None)
    b = add_company(session, "b.ru", "b.ru", None)
    c = add_company(session, "c.ru", "c.ru", None)
    studio = [add_company(session, f"client{i}.ru", f"client{i}.ru", None) for i in range(5)]
    d = add_company(session, "d.ru", "d.ru", None)
    e = add_company(session, "e.ru", "e.ru", None)
    session.add_all([
        Contact(company_id=d, email="boss@d.ru", method="mailto", confidence=0.9),
        Contact(company_id=e, email="boss@d.ru", method="mailto", confidence=0.9),
        Contact(company_id=a, email="info@a.ru", method="mailto", confidence=0.9),
        Contact(company_id=b, email="INFO@a.ru", method="text", confidence=0.9),
        Contact(company_id=c, email="sales@c.ru", method="text", confidence=0.9),
        *[Contact(company_id=s, email="hello@webstudio.ru", method="text", confidence=0.5)
          for s in studio],
    ])
    session.commit()
    assert dedupe(session, [e]) == []  # a chain run for the newer company
    session.commit()
    assert state(session, e) == ("duplicate", d, False)
    assert dedupe(session, [c, *studio]) == [c, *studio]  # a web studio's footer: ignored
    session.commit()
    assert state(session, b) == ("new", None, False)  # restricted to other companies' emails
    assert dedupe(session) == [a, c, *studio, d]  # the whole table, case-insensitive
    session.commit()
    assert state(session, b) == ("duplicate", a, False)
    settings = load_settings(dedupe_shared_emails=False, dedupe_fuzzy_names=False)
    assert dedupe(session, [a, c], settings) == [a, c]


def test_dedupe_chains_point_at_the_root(session: Session) -> None:
    a = add_company(session, "a.ru", "a.ru", None)
    b = add_company(session, "b.ru", "ООО «Гамма»", "гамма")
    c = add_company(session, "c.ru", "Гамма", "гамма")
    session.add_all([
        Contact(company_id=a, email="office@gamma.ru", method="mailto", confidence=0.9),
        Contact(company_id=b, email="office@gamma.ru", method="mailto", confidence=0.9),
    ])
    session.commit()
    dedupe(session)  # names first: c → b; then email: b → a; flatten: c → a
    session.commit()
    assert state(session, b) == ("duplicate", a, False)
    assert state(session, c) == ("duplicate", a, False)
    assert dedupe(session) == [a]


def test_dedupe_respects_domain_opt_outs(session: Session) -> None:
    a = add_company(session, "a.ru", "a.ru", None)
    session.add(OptOut(kind="domain", value="a.ru", source="cli"))
    session.commit()
    assert dedupe(session, [a]) == []
    session.commit()
    assert state(session, a) == ("opted_out", None, True)


def test_ingest_then_dedupe_end_to_end(session: Session) -> None:
    query = make_query(session)
    op = make_operation(session, query, render_serp([
        {"url": "https://ulybka.ru/", "title": "ООО «Улыбка» — стоматология"},
        {"url": "https://ulybka-clinic.ru/", "title": "Клиника | ООО \"Улыбка\""},
        {"url": "https://zub.ru/", "title": "Зуб.ру — стоматология"},
    ]))
    ids = ingest_operation(session, op.id).company_ids
    session.commit()
    active = dedupe(session, ids)
    session.commit()
    found = companies(session)
    first, second = sorted([found["ulybka.ru"], found["ulybka-clinic.ru"]], key=lambda c: c.id)
    assert sorted(active) == sorted([first.id, found["zub.ru"].id])
    assert (second.status, second.duplicate_of_id) == ("duplicate", first.id)
    assert ids == [found["ulybka.ru"].id, found["ulybka-clinic.ru"].id, found["zub.ru"].id]


@pytest.mark.parametrize("batch", [False, True])
def test_ingest_counts_results_of_a_query_the_poll_completed(session: Session,
                                                             batch: bool) -> None:
    # The poll marks the query `completed` when it fetches the payload; ingest must still
    # record how many results the query got.
    query = make_query(session, status="completed")
    op = make_operation(session, query, render_serp(DOCS))
    if batch:
        ingest_operations(session, [op.id])
    else:
        ingest_operation(session, op.id)
    session.commit()
    session.expire_all()
    row = session.get(SerpQuery, query.id)
    assert (row.status, row.result_count) == ("completed", len(DOCS))


def test_overlong_url_is_skipped_not_fatal(session: Session) -> None:
    # A URL too long for the (operation_id, url) btree index used to abort the whole page on
    # PostgreSQL, leaving the operation `fetched` and re-ingested forever.
    import hashlib
    noise = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(100))
    docs = [{"url": f"https://long-url.ru/p?t={noise}", "title": "Long"},
            {"url": "https://ok-site.ru/", "title": "OK"}]
    query = make_query(session)
    op = make_operation(session, query, render_serp(docs))
    result = ingest_operation(session, op.id, get_settings())
    session.commit()
    assert result.outcome == "ingested" and result.skipped_count == 1
    assert set(companies(session)) == {"ok-site.ru"}
    assert session.get(SerpOperation, op.id).status == "ingested"
