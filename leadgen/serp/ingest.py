"""SERP ingest: a fetched operation's XML → `serp_results` rows and one company per
registrable domain, in bulk statements; `ingest_operations` does several operations in one
transaction. Idempotent: an ingested operation returns its company ids again and writes
nothing."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from collections.abc import Iterable
from typing import Any, NamedTuple

from sqlalchemy import case, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadgen.config import Settings, get_settings
from leadgen.models import Company, SerpOperation, SerpQuery, SerpResult
from leadgen.serp.blocklist import Blocklist, blocklist_from_settings
from leadgen.serp.domains import homepage_url, normalize_url_host, registrable_domain
from leadgen.serp.names import NAME_RANK, NameChoice, choose_name, name_key
from leadgen.serp.parse import ERROR_NOT_FOUND, QUOTA_ERRORS, SerpPage, SerpParseError, parse_serp
from leadgen.windows import night_window

log = logging.getLogger(__name__)

DAILY_LIMIT = 32
RETRYABLE_ERRORS = frozenset({20})  # "unknown error": retry like a bad payload
CHUNK = 500  # rows per INSERT statement (SQLite caps bound parameters)
# Longer URLs do not fit PostgreSQL's btree entry (~2.7 kB) of unique (operation_id, url).
MAX_URL_BYTES = 2048


@dataclass
class IngestResult:
    company_ids: list[int] = field(default_factory=list)
    doc_count: int = 0
    blocked_count: int = 0
    error_code: int | None = None
    skipped_count: int = 0  # documents whose URL could not be used
    # ingested | already_ingested | empty | requeued | failed | not_ready
    outcome: str = "ingested"


def _insert(session: Session, table: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def ingest_operation(
    session: Session, operation_pk: int, settings: Settings | None = None,
    *, blocklist: Blocklist | None = None,
) -> IngestResult:
    """Ingest one fetched operation (see the module docstring). Commits nothing itself."""
    settings = settings or get_settings()
    pg = _is_pg(session)
    if pg:
        op = query = session.execute(_PG_CLAIM, {"op_id": operation_pk}).one_or_none()
    else:
        op = session.execute(
            select(SerpOperation.id, SerpOperation.status, SerpOperation.raw_xml,
                   SerpOperation.query_id)
            .where(SerpOperation.id == operation_pk)
            .with_for_update()
        ).one_or_none()
    early = _early_outcome(session, operation_pk, op)
    if early is not None:
        return early

    query = _query_of(op) if pg else _read_query(session, op.query_id)
    now = _now()
    page = _parse_or_fail(session, op, query, settings, now)
    if isinstance(page, IngestResult):
        return page
    result = _store(session, op.id, query, page, settings, blocklist, now)
    if page.error_code == ERROR_NOT_FOUND:
        result.outcome, result.error_code = "empty", ERROR_NOT_FOUND
    return result


def _fail_in_batch(session: Session, op: Any, settings: Settings, now: datetime
                   ) -> IngestResult:
    # Re-read the query: an earlier failure in the batch may have counted an attempt.
    outcome = _parse_or_fail(session, op, _read_query(session, op.query_id), settings, now)
    assert isinstance(outcome, IngestResult)
    return outcome


def _read_query(session: Session, query_id: int) -> Any:
    return session.execute(
        select(SerpQuery.id, SerpQuery.niche, SerpQuery.city, SerpQuery.region_id,
               SerpQuery.batch_tag, SerpQuery.attempts)
        .where(SerpQuery.id == query_id)
    ).one()


def _early_outcome(session: Session, operation_pk: int, op: Any) -> IngestResult | None:
    """The outcome for an operation that is missing or not `fetched`; None to ingest it."""
    if op is None:
        log.warning("serp ingest: operation %s does not exist", operation_pk)
        return IngestResult(outcome="not_ready")
    if op.status == "ingested":
        return IngestResult(company_ids=_existing_company_ids(session, op.id),
                            outcome="already_ingested")
    if op.status != "fetched" or op.raw_xml is None:
        log.info("serp ingest: operation %s is %s, nothing to ingest", op.id, op.status)
        return IngestResult(outcome="not_ready" if op.status == "pending" else op.status)
    return None


def _parse_or_fail(session: Session, op: Any, query: Any, settings: Settings,
                   now: datetime) -> SerpPage | IngestResult:
    """The parsed page to store, or the outcome of a bad payload or a search error."""
    try:
        page = parse_serp(op.raw_xml)
    except SerpParseError as exc:
        return _parse_failed(session, op.id, query, str(exc), settings, now)
    if page.error_code is not None and page.error_code != ERROR_NOT_FOUND:
        return _search_error(session, op.id, query, page, settings, now)
    return page


def ingest_operations(
    session: Session, operation_pks: Iterable[int], settings: Settings | None = None,
    *, blocklist: Blocklist | None = None,
) -> dict[int, IngestResult]:
    """Ingest several operations in one transaction: for each, the rows and outcome that
    ingest_operation gives, in fewer round trips. On PostgreSQL the result inserts are
    pipelined, so the database stores one page while the next one is parsed, and the
    companies of the whole batch are upserted in one sorted statement (concurrent batches
    cannot deadlock on them). Commits nothing itself."""
    settings = settings or get_settings()
    pks = sorted({int(pk) for pk in operation_pks})  # lock in id order
    if not _is_pg(session):
        return {pk: ingest_operation(session, pk, settings, blocklist=blocklist) for pk in pks}
    blocklist = blocklist or blocklist_from_settings(settings)
    claimed = {row.id: row for row in session.execute(_PG_CLAIM_MANY, {"op_ids": pks})}
    now = _now()
    outcomes: dict[int, IngestResult] = {}
    to_store: list[tuple[Any, Any]] = []
    for pk in pks:
        op = claimed.get(pk)
        early = _early_outcome(session, pk, op)
        if early is not None:
            outcomes[pk] = early
        else:
            to_store.append((op, _query_of(op)))
    stored: list[tuple[int, Any, IngestResult, _Companies]] = []
    driver = session.connection().connection.driver_connection
    pages: dict[int, SerpPage] = {}
    with driver.pipeline():
        for op, query in to_store:
            try:
                page = parse_serp(op.raw_xml)
            except SerpParseError:
                continue  # handled after the pipeline, like a search error
            if page.error_code is not None and page.error_code != ERROR_NOT_FOUND:
                continue
            pages[op.id] = page
            result = IngestResult(doc_count=len(page.docs))
            rows, companies = _collect(page, query.city, settings, blocklist, result)
            if rows:  # sent now; the database works on it while the next page is parsed
                driver.execute(_PG_RESULTS_DRIVER, _results_params(op.id, query.id, rows, now))
            if page.error_code == ERROR_NOT_FOUND:
                result.outcome, result.error_code = "empty", ERROR_NOT_FOUND
            stored.append((op.id, query, result, companies))
    # Failures, in id order. One that follows a stored operation of its query is handled once
    # that query is completed, as one by one it would find it completed.
    first_stored: dict[int, int] = {}
    for op_id, query, _result, _companies in stored:
        first_stored.setdefault(query.id, op_id)
    failed = [op for op, _query in to_store if op.id not in pages]
    late = [op for op in failed if first_stored.get(op.query_id, op.id) < op.id]
    for op in failed:
        if op not in late:
            outcomes[op.id] = _fail_in_batch(session, op, settings, now)
    if stored:
        ids = _pg_finish_batch(session, stored, now)
        for op_id, _query, result, companies in stored:
            order = sorted(companies, key=lambda d: companies[d][0])
            result.company_ids = [ids[domain] for domain in order if domain in ids]
            outcomes[op_id] = result
    for op in late:
        outcomes[op.id] = _fail_in_batch(session, op, settings, now)
    return {pk: outcomes[pk] for pk in pks}


def _store(
    session: Session, op_id: int, query: Any, page: SerpPage, settings: Settings,
    blocklist: Blocklist | None, now: datetime,
) -> IngestResult:
    """Write the page's results and companies and mark the operation ingested."""
    blocklist = blocklist or blocklist_from_settings(settings)
    result = IngestResult(doc_count=len(page.docs))
    rows, companies = _collect(page, query.city, settings, blocklist, result)
    doc_count = len(page.docs)
    if _is_pg(session):
        ids = _pg_write(session, op_id, query, rows, companies, doc_count, now)
    else:
        if rows:
            _insert_results_generic(session, op_id, query.id, rows, now)
        ids = _upsert_companies_generic(session, _company_values(query, companies, now)) \
            if companies else {}
        _mark_done(session, op_id, query.id, doc_count, now)
    order = sorted(companies, key=lambda d: companies[d][0])
    result.company_ids = [ids[domain] for domain in order if domain in ids]
    return result


# A stored result row: position, url, host, domain, title, snippet, lang, blocked.
_Row = tuple[int, str, str, str, "str | None", "str | None", "str | None", bool]
# domain → (first position, best name, url of the first sighting)
_Companies = dict[str, tuple[int, NameChoice, str]]


def _collect(page: SerpPage, city: str | None, settings: Settings, blocklist: Blocklist,
             result: IngestResult) -> tuple[list[_Row], _Companies]:
    rows: list[_Row] = []
    seen_urls: set[str] = set()
    companies: _Companies = {}
    skip_touchdown = settings.serp_skip_touchdown
    for doc in page.docs:
        try:
            url, host = normalize_url_host(doc.url)
        except ValueError:
            result.skipped_count += 1
            continue
        if len(url.encode("utf-8")) > MAX_URL_BYTES:
            result.skipped_count += 1
            continue
        if url in seen_urls:
            continue
        seen_urls.add(url)
        domain = registrable_domain(host)
        blocked = (domain is None or blocklist.is_blocked(host, domain)
                   or (skip_touchdown and doc.touchdown is not None))
        snippet = doc.snippet
        rows.append((doc.position, url, host[:255], (domain or host)[:255], doc.title, snippet,
                     doc.lang[:10] if doc.lang else None, blocked))
        if blocked:
            result.blocked_count += 1
            continue
        assert domain is not None
        choice = choose_name(doc.title, snippet, domain, city)
        known = companies.get(domain)
        if known is None:
            companies[domain] = (doc.position, choice, url)
        elif choice.rank > known[1].rank:
            companies[domain] = (known[0], choice, known[2])
    return rows, companies


_RESULT_COLUMNS = ("position", "url", "host", "domain", "title", "snippet", "lang", "blocked")


def _insert_results_generic(session: Session, op_id: int, query_id: int, rows: list[_Row],
                            now: datetime) -> None:
    table = SerpResult.__table__
    values = [{"operation_id": op_id, "query_id": query_id, "created_at": now,
               **dict(zip(_RESULT_COLUMNS, row))} for row in rows]
    # RETURNING turns the executemany into batched multi-row VALUES (insertmanyvalues).
    stmt = (_insert(session, table)
            .on_conflict_do_nothing(index_elements=["operation_id", "url"])
            .returning(table.c.id))
    for start in range(0, len(values), CHUNK):
        session.execute(stmt, values[start : start + CHUNK]).all()


def _rank(column: Any) -> Any:
    return case({source: rank for source, rank in NAME_RANK.items()}, value=column, else_=0)


def _company_values(query: Any, companies: _Companies, now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "domain": domain, "name": choice.name, "name_source": choice.source,
            "name_key": name_key(choice.name, choice.source),
            "homepage_url": homepage_url(domain, url), "niche": query.niche,
            "city": query.city, "region_id": query.region_id, "batch_tag": query.batch_tag,
            "query_id": query.id, "status": "new", "opt_out": False, "attempts": 0,
            "first_seen_at": now, "last_seen_at": now, "created_at": now, "updated_at": now,
        }
        # A stable order keeps concurrent upserts from deadlocking.
        for domain, (_pos, choice, url) in sorted(companies.items())
    ]


def _upsert_companies_generic(session: Session, values: list[dict[str, Any]]) -> dict[str, int]:
    table = Company.__table__
    insert = _insert(session, table)
    excluded = insert.excluded
    better = _rank(excluded.name_source) > _rank(table.c.name_source)
    stmt = insert.on_conflict_do_update(
        index_elements=["domain"],
        set_={
            "last_seen_at": excluded.last_seen_at,
            "updated_at": excluded.updated_at,
            "name": case((better, excluded.name), else_=table.c.name),
            "name_key": case((better, excluded.name_key), else_=table.c.name_key),
            "name_source": case((better, excluded.name_source), else_=table.c.name_source),
        },
    )
    stmt = stmt.returning(table.c.domain, table.c.id)  # DO UPDATE returns every row
    ids: dict[str, int] = {}
    for start in range(0, len(values), CHUNK):
        ids.update(session.execute(stmt, values[start : start + CHUNK]).all())
    return ids


# PostgreSQL: two round trips per operation. The claim reads and locks the operation with its
# query, and switches off the commit's WAL flush: ingest re-derives everything from the stored
# raw XML, so a commit lost in a database crash only leaves the operation `fetched`, to be
# ingested again. The write stores results and companies and marks the operation ingested in
# one statement. Rows travel as one jsonb parameter: far cheaper to send than arrays, and
# cheaper for the server to read than json.
_CLAIM_SQL = """
SELECT set_config('synchronous_commit', 'off', true) AS sync, o.id, o.status,
       CASE WHEN o.status = 'fetched' THEN o.raw_xml END AS raw_xml, o.query_id,
       q.niche, q.city, q.region_id, q.batch_tag, q.attempts
FROM serp_operations o JOIN serp_queries q ON q.id = o.query_id
WHERE {where}
ORDER BY o.id
FOR UPDATE OF o
"""
_PG_CLAIM = text(_CLAIM_SQL.format(where="o.id = :op_id"))
_PG_CLAIM_MANY = text(_CLAIM_SQL.format(where="o.id = ANY(CAST(:op_ids AS bigint[]))"))


class _QueryRow(NamedTuple):
    id: int
    niche: str | None
    city: str | None
    region_id: int | None
    batch_tag: str | None
    attempts: int


def _query_of(op: Any) -> _QueryRow:
    return _QueryRow(op.query_id, op.niche, op.city, op.region_id, op.batch_tag, op.attempts)


# Placeholders are written {name}: `:name` for SQLAlchemy text(), `%(name)s` for psycopg.
_RESULTS_INSERT = """
INSERT INTO serp_results (operation_id, query_id, position, url, host, domain, title, snippet,
                          lang, blocked, created_at)
SELECT {op_id}, {query_id}, (r->>0)::integer, r->>1, r->>2, r->>3, r->>4, r->>5, r->>6,
       (r->>7)::boolean, {now}
FROM jsonb_array_elements(CAST({results} AS jsonb)) AS r
ON CONFLICT (operation_id, url) DO NOTHING
"""
_PG_RANK = ("CASE {col} WHEN 'legal' THEN 3 WHEN 'title' THEN 2 WHEN 'domain' THEN 1 "
            "ELSE 0 END")
_PG_BETTER = (_PG_RANK.format(col="EXCLUDED.name_source") + " > "
              + _PG_RANK.format(col="companies.name_source"))
# Company rows: domain, name, name_source, name_key, homepage_url, then (batch only) niche,
# city, region_id, batch_tag, query_id.
_COMPANIES_UPSERT = f"""
INSERT INTO companies (domain, name, name_source, name_key, homepage_url, niche, city,
                       region_id, batch_tag, query_id, status, opt_out, attempts,
                       first_seen_at, last_seen_at, created_at, updated_at)
SELECT c->>0, c->>1, c->>2, c->>3, c->>4, {{niche}}, {{city}}, {{region_id}}, {{batch_tag}},
       {{query_id}}, 'new', false, 0, {{now}}, {{now}}, {{now}}, {{now}}
FROM jsonb_array_elements(CAST({{companies}} AS jsonb)) AS c
ON CONFLICT (domain) DO UPDATE SET
    last_seen_at = EXCLUDED.last_seen_at,
    updated_at = EXCLUDED.updated_at,
    name = CASE WHEN {_PG_BETTER} THEN EXCLUDED.name ELSE companies.name END,
    name_key = CASE WHEN {_PG_BETTER} THEN EXCLUDED.name_key ELSE companies.name_key END,
    name_source = CASE WHEN {_PG_BETTER} THEN EXCLUDED.name_source
                       ELSE companies.name_source END
RETURNING domain, id
"""
_NAMES = ("op_id", "query_id", "now", "results", "niche", "city", "region_id", "batch_tag",
          "companies", "doc_count")
_BIND = {name: f":{name}" for name in _NAMES}
_PG_WRITE = text(f"""
WITH results AS ({_RESULTS_INSERT.format(**_BIND)}
), upserted AS ({_COMPANIES_UPSERT.format(**_BIND)}
), operation AS (
    UPDATE serp_operations
    SET status = 'ingested', doc_count = :doc_count, lease_until = NULL, updated_at = :now
    WHERE id = :op_id AND status = 'fetched'
), query AS (
    UPDATE serp_queries
    SET status = 'completed', result_count = :doc_count, completed_at = :now,
        last_error = NULL, next_attempt_at = NULL, lease_until = NULL, updated_at = :now
    WHERE id = :query_id AND (status <> 'completed' OR result_count IS NULL)
)
SELECT domain, id FROM upserted
""")
_PG_RESULTS_DRIVER = _RESULTS_INSERT.format(**{name: f"%({name})s" for name in _NAMES})
# The batch's companies carry their own query columns; `operations` rows are [operation id,
# doc count], `queries` rows [operation id, doc count, query id] for each query's first one.
_PG_FINISH_BATCH = text(f"""
WITH upserted AS ({_COMPANIES_UPSERT.format(
    niche="c->>5", city="c->>6", region_id="(c->>7)::integer", batch_tag="c->>8",
    query_id="(c->>9)::bigint", now=":now", companies=":companies")}
), operations AS (
    UPDATE serp_operations o
    SET status = 'ingested', doc_count = (d->>1)::integer, lease_until = NULL, updated_at = :now
    FROM jsonb_array_elements(CAST(:operations AS jsonb)) AS d
    WHERE o.id = (d->>0)::bigint AND o.status = 'fetched'
), queries AS (
    UPDATE serp_queries q
    SET status = 'completed', result_count = (d->>1)::integer, completed_at = :now,
        last_error = NULL, next_attempt_at = NULL, lease_until = NULL, updated_at = :now
    FROM jsonb_array_elements(CAST(:queries AS jsonb)) AS d
    WHERE q.id = (d->>2)::bigint AND (q.status <> 'completed' OR q.result_count IS NULL)
)
SELECT domain, id FROM upserted
""")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, check_circular=False)


def _company_row(domain: str, choice: NameChoice, url: str) -> list[Any]:
    return [domain, choice.name, choice.source, name_key(choice.name, choice.source),
            homepage_url(domain, url)]


def _results_params(op_id: int, query_id: int, rows: list[_Row], now: datetime
                    ) -> dict[str, Any]:
    return {"op_id": op_id, "query_id": query_id, "now": now, "results": _json(rows)}


def _pg_write(session: Session, op_id: int, query: Any, rows: list[_Row],
              companies: _Companies, doc_count: int, now: datetime) -> dict[str, int]:
    # A stable order keeps concurrent upserts from deadlocking.
    company_rows = [_company_row(domain, choice, url)
                    for domain, (_pos, choice, url) in sorted(companies.items())]
    params = _results_params(op_id, query.id, rows, now)
    params.update(niche=query.niche, city=query.city, region_id=query.region_id,
                  batch_tag=query.batch_tag, doc_count=doc_count,
                  companies=_json(company_rows))
    return dict(session.execute(_PG_WRITE, params).all())


def _pg_finish_batch(session: Session, stored: list[tuple[int, Any, IngestResult, _Companies]],
                     now: datetime) -> dict[str, int]:
    """Upsert the batch's companies (as successive per-operation upserts would: first
    sighting's query and URL, the first of the best names) and mark operations ingested."""
    merged: dict[str, list[Any]] = {}
    queries: dict[int, list[int]] = {}
    for op_id, query, result, companies in stored:
        queries.setdefault(query.id, [op_id, result.doc_count, query.id])
        for domain, (_pos, choice, url) in companies.items():
            known = merged.get(domain)
            if known is None:
                merged[domain] = [choice, url, query]
            elif choice.rank > known[0].rank:
                known[0] = choice
    company_rows = [
        [*_company_row(domain, choice, url), query.niche, query.city, query.region_id,
         query.batch_tag, query.id]
        for domain, (choice, url, query) in sorted(merged.items())
    ]
    params = {
        "now": now, "companies": _json(company_rows),
        "operations": _json([[op_id, result.doc_count] for op_id, _q, result, _c in stored]),
        "queries": _json(list(queries.values())),
    }
    return dict(session.execute(_PG_FINISH_BATCH, params).all())


def _existing_company_ids(session: Session, op_id: int) -> list[int]:
    first = func.min(SerpResult.position).label("first_position")
    rows = session.execute(
        select(Company.id, first)
        .join(SerpResult, SerpResult.domain == Company.domain)
        .where(SerpResult.operation_id == op_id, SerpResult.blocked.is_(False))
        .group_by(Company.id)
        .order_by(first, Company.id)
    ).all()
    return [row.id for row in rows]


def _mark_done(session: Session, op_id: int, query_id: int, doc_count: int,
               now: datetime) -> None:
    session.execute(
        update(SerpOperation)
        .where(SerpOperation.id == op_id, SerpOperation.status == "fetched")
        .values(status="ingested", doc_count=doc_count, lease_until=None, updated_at=now)
    )
    session.execute(
        update(SerpQuery)
        # The poll already marked it completed; the first ingested operation counts.
        .where(SerpQuery.id == query_id,
               or_(SerpQuery.status != "completed", SerpQuery.result_count.is_(None)))
        .values(status="completed", result_count=doc_count, completed_at=now, last_error=None,
                next_attempt_at=None, lease_until=None, updated_at=now)
    )


def quota_backoff(code: int, attempts: int, settings: Settings, now: datetime) -> datetime:
    """When to try a query again after a quota error: the daily limit waits for the next
    local day (and night window when enforced); RPS/CAPTCHA back off exponentially."""
    if code == DAILY_LIMIT:
        local = now.astimezone(settings.tz)
        tomorrow = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(),
                                    settings.tz).astimezone(timezone.utc)
        if settings.yandex_enforce_night_window:
            return night_window(settings).next_open(tomorrow)
        return tomorrow
    return now + timedelta(seconds=settings.serp_rps_backoff_seconds * 2 ** min(attempts, 6))


def _requeue(session: Session, query: Any, reason: str, when: datetime, failed: bool,
             now: datetime) -> None:
    values: dict[str, Any] = {"attempts": SerpQuery.attempts + 1, "last_error": reason[:2000],
                              "lease_until": None, "updated_at": now}
    if failed:
        values.update(status="failed", next_attempt_at=None, completed_at=now)
    else:
        values.update(
            status="pending", next_attempt_at=when,
            scheduled_for=case((SerpQuery.scheduled_for < when, when),
                               else_=SerpQuery.scheduled_for),
        )
    # The poll marks the query completed when it fetches the payload; it is only really
    # completed once one of its operations was ingested.
    ingested = (select(SerpOperation.id)
                .where(SerpOperation.query_id == query.id, SerpOperation.status == "ingested")
                .exists())
    session.execute(update(SerpQuery)
                    .where(SerpQuery.id == query.id,
                           or_(SerpQuery.status != "completed", ~ingested))
                    .values(**values))


def _fail_operation(session: Session, op_id: int, reason: str, now: datetime) -> None:
    session.execute(
        update(SerpOperation)
        .where(SerpOperation.id == op_id, SerpOperation.status == "fetched")
        .values(status="failed", error=reason[:2000], doc_count=0, lease_until=None,
                updated_at=now)
    )


def _search_error(session: Session, op_id: int, query: Any, page: SerpPage,
                  settings: Settings, now: datetime) -> IngestResult:
    code = page.error_code
    assert code is not None
    reason = f"yandex error {code}: {page.error_text or ''}".strip()
    _fail_operation(session, op_id, reason, now)
    if code in QUOTA_ERRORS:  # not the query's fault: never fails it
        _requeue(session, query, reason, quota_backoff(code, query.attempts, settings, now),
                 failed=False, now=now)
        log.warning("serp ingest: operation %s hit a quota (%s); query %s re-queued",
                    op_id, code, query.id)
        return IngestResult(error_code=code, outcome="requeued")
    exhausted = code not in RETRYABLE_ERRORS or query.attempts + 1 >= settings.yandex_max_attempts
    _requeue(session, query, reason, _retry_at(query.attempts, settings, now), exhausted, now)
    log.warning("serp ingest: operation %s: %s", op_id, reason)
    return IngestResult(error_code=code, outcome="failed" if exhausted else "requeued")


def _retry_at(attempts: int, settings: Settings, now: datetime) -> datetime:
    return now + timedelta(seconds=settings.serp_rps_backoff_seconds * 2 ** min(attempts, 6))


def _parse_failed(session: Session, op_id: int, query: Any, reason: str, settings: Settings,
                  now: datetime) -> IngestResult:
    reason = f"unparseable SERP: {reason}"
    _fail_operation(session, op_id, reason, now)
    exhausted = query.attempts + 1 >= settings.yandex_max_attempts
    _requeue(session, query, reason, _retry_at(query.attempts, settings, now), exhausted, now)
    log.warning("serp ingest: operation %s: %s", op_id, reason)
    return IngestResult(outcome="failed")
