"""Set-based company dedupe in SQL (PostgreSQL and SQLite ≥ 3.33, both with UPDATE … FROM).

(a) One company per registrable domain is the table's unique key already.
(b) Same normalised name (`companies.name_key`: legal form, quotes and punctuation stripped)
    in the same city → duplicates of the oldest company of the group.
(c) A contact email shared by several companies → duplicates of the oldest one (an address
    shared by more than DEDUPE_SHARED_EMAIL_MAX_COMPANIES companies is a web studio's or a
    directory's, not one business, and is ignored).
Companies that opted out or were contacted are never touched, and no opt-out is ever reset.
Each pass only writes rows that change, so running it again writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from leadgen.config import Settings, get_settings

log = logging.getLogger(__name__)

# Beyond this many ids a restricted pass costs more than a whole-table one.
MAX_RESTRICTED = 5_000
_TOUCHABLE = "companies.status NOT IN ('duplicate', 'opted_out', 'contacted') " \
             "AND companies.opt_out = false"

_OPT_OUT_DOMAINS = """
UPDATE companies SET status = 'opted_out', opt_out = true,
       status_reason = 'domain is in the opt-out registry', updated_at = :now
WHERE companies.status IN ('new', 'contacts_ready', 'contacts_not_found', 'duplicate')
  AND companies.domain IN (SELECT value FROM opt_outs WHERE kind = 'domain') {restrict}
"""

_SAME_NAME = """
UPDATE companies SET status = 'duplicate', duplicate_of_id = g.canon,
       status_reason = 'same name and city as an older company', updated_at = :now
FROM (
    SELECT c.name_key AS name_key, COALESCE(c.city, '') AS city_key,
           MIN(COALESCE(c.duplicate_of_id, c.id)) AS canon
    FROM companies c
    WHERE c.name_key IS NOT NULL {restrict}
    GROUP BY c.name_key, COALESCE(c.city, '')
    HAVING COUNT(*) > 1
) g
WHERE companies.name_key = g.name_key AND COALESCE(companies.city, '') = g.city_key
  AND companies.id <> g.canon AND {touchable}
"""

_SHARED_EMAIL = """
UPDATE companies SET status = 'duplicate', duplicate_of_id = m.canon,
       status_reason = 'shares a contact email with an older company', updated_at = :now
FROM (
    SELECT e.company_id AS company_id, MIN(g.canon) AS canon
    FROM (SELECT DISTINCT LOWER(email) AS email, company_id FROM contacts {restrict}) e
    JOIN (
        SELECT s.email AS email, MIN(COALESCE(c.duplicate_of_id, c.id)) AS canon
        FROM (SELECT DISTINCT LOWER(email) AS email, company_id FROM contacts {restrict}) s
        JOIN companies c ON c.id = s.company_id
        GROUP BY s.email
        HAVING COUNT(*) > 1 AND COUNT(*) <= :max_companies
    ) g ON g.email = e.email
    GROUP BY e.company_id
) m
WHERE companies.id = m.company_id AND companies.id <> m.canon AND {touchable}
"""

# A company marked in this run may have had duplicates of its own: point them at its root.
# Driven by the marked ids (an indexed IN), never a self-join: statistics are stale right
# after the marking, and a planner trusting them picks a quadratic nested loop.
_FLATTEN = """
UPDATE companies SET updated_at = :now, duplicate_of_id = (
    SELECT p.duplicate_of_id FROM companies p WHERE p.id = companies.duplicate_of_id)
WHERE companies.duplicate_of_id IN :marked AND companies.status = 'duplicate'
  AND EXISTS (SELECT 1 FROM companies p WHERE p.id = companies.duplicate_of_id
              AND p.duplicate_of_id IS NOT NULL)
"""

_RESTRICT_NAME = (
    "AND c.name_key IN (SELECT name_key FROM companies WHERE id IN :ids "
    "AND name_key IS NOT NULL)"
)
# Index-friendly (contacts.email is indexed, LOWER(email) is not): the crawler stores emails
# lower-cased; the whole-table pass also catches mixed-case copies.
_RESTRICT_EMAIL = (
    "WHERE email IN (SELECT email FROM contacts WHERE company_id IN :ids)"
)


def _stmt(sql: str, restricted: bool) -> object:
    statement = text(sql)
    if restricted:
        statement = statement.bindparams(bindparam("ids", expanding=True))
    return statement


def dedupe(
    session: Session, company_ids: Iterable[int] | None = None,
    settings: Settings | None = None,
) -> list[int]:
    """Mark duplicates; return the ids among `company_ids` (all when None) still active,
    i.e. not duplicate and not opted out, in the given order."""
    settings = settings or get_settings()
    ids = None if company_ids is None else list(dict.fromkeys(int(i) for i in company_ids))
    if ids is not None and not ids:
        return []
    restricted = ids is not None and len(ids) <= MAX_RESTRICTED
    params: dict[str, object] = {"now": datetime.now(timezone.utc)}
    if restricted:
        params["ids"] = ids

    counts: dict[str, int] = {}
    restrict = "AND companies.id IN :ids" if restricted else ""
    counts["opted_out"] = session.execute(
        _stmt(_OPT_OUT_DOMAINS.format(restrict=restrict), restricted), params).rowcount
    marked: list[int] = []
    if settings.dedupe_fuzzy_names:
        sql = _SAME_NAME.format(restrict=_RESTRICT_NAME if restricted else "",
                                touchable=_TOUCHABLE) + " RETURNING companies.id"
        marked += session.execute(_stmt(sql, restricted), params).scalars().all()
    counts["same_name"] = len(marked)
    if settings.dedupe_shared_emails:
        sql = _SHARED_EMAIL.format(restrict=_RESTRICT_EMAIL if restricted else "",
                                   touchable=_TOUCHABLE) + " RETURNING companies.id"
        marked += session.execute(
            _stmt(sql, restricted),
            {**params, "max_companies": settings.dedupe_shared_email_max_companies},
        ).scalars().all()
    counts["shared_email"] = len(marked) - counts["same_name"]
    _flatten(session, marked, params["now"])
    if any(counts.values()):
        log.info("dedupe: %s", counts)
    return active_ids(session, ids)


def _flatten(session: Session, marked: list[int], now: datetime) -> None:
    # Earlier runs left every chain flat, so only companies marked now can head a chain.
    statement = text(_FLATTEN).bindparams(bindparam("marked", expanding=True))
    for start in range(0, len(marked), MAX_RESTRICTED):
        chunk = marked[start : start + MAX_RESTRICTED]
        for _ in range(10):
            if not session.execute(statement, {"marked": chunk, "now": now}).rowcount:
                break


def active_ids(session: Session, ids: list[int] | None) -> list[int]:
    """Ids still in the pipeline (not duplicate, not opted out), in the given order."""
    sql = ("SELECT id FROM companies WHERE status NOT IN ('duplicate', 'opted_out') "
           "AND opt_out = false")
    if ids is None:
        return list(session.execute(text(sql + " ORDER BY id")).scalars())
    active: set[int] = set()
    statement = text(sql + " AND id IN :ids").bindparams(bindparam("ids", expanding=True))
    for start in range(0, len(ids), MAX_RESTRICTED):
        active.update(session.execute(statement, {"ids": ids[start : start + MAX_RESTRICTED]})
                      .scalars())
    return [i for i in ids if i in active]
