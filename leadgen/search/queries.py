"""Query generation: row → query texts (templates × pages) with region and idempotency hash,
scheduled into the night window within the daily quota, inserted once per hash."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from leadgen.config import Settings
from leadgen.db import is_postgres
from leadgen.models import SerpQuery
from leadgen.search.regions import resolve_region
from leadgen.windows import night_window

MAX_QUERY_CHARS = 400  # Yandex rejects longer queryText
MAX_PLACE_CHARS = 100
MAX_NIGHTS = 400

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
_HYPHENS = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"), "-")
_PLACE_PREFIX = re.compile(r"^(?:г\.\s*|гор\.\s*|город\s+)", re.IGNORECASE)
_SHEET_ERROR = re.compile(r"^#(?:REF!|N/A|VALUE!|DIV/0!|NAME\?|NUM!|NULL!|ERROR!|SPILL!|CALC!)")


class RowError(ValueError):
    """A row cannot produce queries; the message goes to the row's `last_error`."""


@dataclass
class InputRow:
    niche: str
    city: str = ""
    country: str = ""
    batch_tag: str = ""
    status: str = ""
    row_number: int | None = None


@dataclass
class PlannedQuery:
    query_text: str
    page: int
    region_id: int
    region_source: str
    region_warning: str | None
    niche: str
    city: str | None
    country: str | None
    batch_tag: str | None
    query_hash: str
    scheduled_for: datetime | None = None
    id: int | None = field(default=None, compare=False)  # set once inserted or refreshed


def normalise_query(text: str) -> str:
    """Lower case, ё→е, whitespace collapsed: the text part of the idempotency key."""
    text = unicodedata.normalize("NFKC", text).translate(_HYPHENS).casefold().replace("ё", "е")
    return " ".join(text.split())


def query_hash(text: str, region_id: int, page: int) -> str:
    key = f"{normalise_query(text)}|{region_id}|{page}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def clean_cell(value: object) -> str:
    """A cell as text: control and zero-width characters gone, hyphens ASCII, spaces collapsed."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub(" ", unicodedata.normalize("NFKC", text)).translate(_HYPHENS)
    return " ".join(text.split())


def clean_place(value: str) -> str:
    """'г. Санкт-Петербург' → 'Санкт-Петербург' (the prefix adds nothing to a query)."""
    return _PLACE_PREFIX.sub("", value).strip()


def _check_value(name: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise RowError(f"{name} is {len(value)} characters long (limit {limit})")
    if value[:1] in {"=", "+", "@"}:
        raise RowError(f"{name} looks like a formula: {value[:40]!r}")
    if _SHEET_ERROR.match(value.upper()):
        raise RowError(f"{name} is a spreadsheet error value: {value[:40]!r}")
    if value and not any(ch.isalpha() for ch in value):
        raise RowError(f"{name} has no letters: {value[:40]!r}")


def _render(template: str, niche: str, place: str, city: str, country: str) -> str:
    # str.replace, not str.format: a stray brace in a user template must not break it.
    text = (template.replace("{niche}", niche).replace("{place}", place)
            .replace("{city}", city).replace("{country}", country))
    return " ".join(text.split())


def generate_queries(row: InputRow, settings: Settings, now: datetime | None = None) -> list[PlannedQuery]:
    """The queries of one row (unscheduled). Raises RowError for a malformed row."""
    del now  # scheduling is separate (`schedule`); kept for a uniform call signature
    niche = clean_cell(row.niche)
    city, country = clean_place(clean_cell(row.city)), clean_place(clean_cell(row.country))
    if not niche:
        raise RowError("niche is empty")
    _check_value("niche", niche, settings.query_max_niche_chars)
    for name, value in (("city", city), ("country", country)):
        _check_value(name, value, MAX_PLACE_CHARS)
    region = resolve_region(city, country)
    place = city or country
    templates = settings.query_templates if place else ["{niche}"]
    batch_tag = clean_cell(row.batch_tag)[:200] or None
    planned: list[PlannedQuery] = []
    seen: set[str] = set()
    for template in templates:
        text = _render(template, niche, place, city, country)
        if len(text) > MAX_QUERY_CHARS:
            raise RowError(f"query is {len(text)} characters long (Yandex limit {MAX_QUERY_CHARS})")
        for page in range(settings.query_pages):
            digest = query_hash(text, region.id, page)
            if digest in seen:
                continue
            seen.add(digest)
            planned.append(PlannedQuery(
                query_text=text, page=page, region_id=region.id, region_source=region.source,
                region_warning=region.warning, niche=niche, city=city or None,
                country=country or None, batch_tag=batch_tag, query_hash=digest,
            ))
    return planned


# --- scheduling -------------------------------------------------------------------------------

Booked = Callable[[datetime, datetime], int]


def _van_der_corput(n: int) -> float:
    """0, .5, .25, .75, .125 …: any prefix of the sequence is spread evenly over [0, 1)."""
    result, denom = 0.0, 1.0
    while n:
        n, digit = divmod(n, 2)
        denom *= 2
        result += digit / denom
    return result


def schedule(planned: Sequence[PlannedQuery], settings: Settings, now: datetime,
             booked: Booked | None = None) -> list[PlannedQuery]:
    """Set `scheduled_for`: the current or next night window, spread over it; queries beyond
    YANDEX_DAILY_QUOTA (counting what is already booked that night) spill to later nights.

    The n-th query of a night goes to the n-th point of a van der Corput sequence over the
    window, so queries added by many separate syncs still spread over the whole night.
    """
    booked = booked or (lambda _start, _end: 0)
    quota = settings.yandex_daily_quota
    remaining = list(planned)
    for opens, closes in night_window(settings).occurrences(now, limit=MAX_NIGHTS):
        if not remaining:
            break
        start = max(opens, now)
        taken = booked(opens, closes)
        capacity = quota - taken
        if capacity <= 0 or closes <= start:
            continue
        chunk, remaining = remaining[:capacity], remaining[capacity:]
        span = (closes - start).total_seconds()
        offsets = sorted(_van_der_corput(taken + i) for i in range(len(chunk)))
        for query, offset in zip(chunk, offsets):
            query.scheduled_for = start + timedelta(seconds=int(span * offset))
    if remaining:
        raise ValueError(f"{len(remaining)} queries do not fit in {MAX_NIGHTS} nights of quota")
    return list(planned)


def db_booked(session: Session) -> Booked:
    """Queries already scheduled in [start, end): they use that night's quota."""

    def count(start: datetime, end: datetime) -> int:
        stmt = select(func.count()).select_from(SerpQuery).where(
            SerpQuery.scheduled_for >= start, SerpQuery.scheduled_for < end)
        return int(session.scalar(stmt) or 0)

    return count


# --- insertion --------------------------------------------------------------------------------

REFRESHABLE = ("completed", "failed")


def _row(query: PlannedQuery) -> dict[str, object]:
    if query.scheduled_for is None:
        raise ValueError("schedule() the queries before inserting them")
    return {
        "query_hash": query.query_hash, "query_text": query.query_text, "page": query.page,
        "region_id": query.region_id, "region_source": query.region_source,
        "region_warning": query.region_warning, "niche": query.niche, "city": query.city,
        "country": query.country, "batch_tag": query.batch_tag, "status": "pending",
        "scheduled_for": query.scheduled_for, "attempts": 0,
    }


def _refresh(session: Session, query: PlannedQuery, refresh_days: int, now: datetime) -> int | None:
    """Re-arm a finished query older than `refresh_days` (conditional, so only once)."""
    cutoff = now - timedelta(days=refresh_days)
    stmt = (
        update(SerpQuery)
        .where(SerpQuery.query_hash == query.query_hash, SerpQuery.status.in_(REFRESHABLE),
               or_(SerpQuery.completed_at < cutoff,
                   (SerpQuery.completed_at.is_(None)) & (SerpQuery.updated_at < cutoff)))
        .values(status="pending", scheduled_for=query.scheduled_for, attempts=0,
                next_attempt_at=None, lease_until=None, last_error=None, submitted_at=None,
                completed_at=None, result_count=None, batch_tag=query.batch_tag, updated_at=now)
        .returning(SerpQuery.id)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(stmt)


def insert_queries(session: Session, planned: Sequence[PlannedQuery], *, refresh_days: int = 0,
                   now: datetime | None = None) -> tuple[list[int], int]:
    """INSERT … ON CONFLICT (query_hash) DO NOTHING; with `refresh_days` > 0 an old finished
    query is re-armed instead. Returns (ids inserted or refreshed, duplicates)."""
    unique: dict[str, PlannedQuery] = {}
    for query in planned:
        unique.setdefault(query.query_hash, query)
    if not unique:
        return [], len(planned)
    insert = pg_insert if is_postgres(session) else sqlite_insert
    stmt = (insert(SerpQuery).values([_row(q) for q in unique.values()])
            .on_conflict_do_nothing(index_elements=["query_hash"])
            .returning(SerpQuery.id, SerpQuery.query_hash))
    ids: list[int] = []
    for query_id, digest in session.execute(stmt).all():
        unique[digest].id = query_id
        ids.append(query_id)
    if refresh_days > 0:
        moment = now or datetime.now().astimezone()
        for query in unique.values():
            if query.id is None:
                refreshed = _refresh(session, query, refresh_days, moment)
                if refreshed is not None:
                    query.id = refreshed
                    ids.append(refreshed)
    return ids, len(planned) - len(ids)


def plan_and_insert(session: Session, planned: Sequence[PlannedQuery], settings: Settings,
                    now: datetime) -> tuple[list[PlannedQuery], int]:
    """Schedule only what is new (or due for a refresh), then insert it.

    Returns (queries inserted or refreshed, duplicate count).
    """
    unique: dict[str, PlannedQuery] = {}
    for query in planned:
        unique.setdefault(query.query_hash, query)
    existing = _existing(session, unique)
    cutoff = now - timedelta(days=settings.query_refresh_days)
    candidates = []
    for digest, query in unique.items():
        known = existing.get(digest)
        if known is None:
            candidates.append(query)
        elif settings.query_refresh_days > 0 and known[0] in REFRESHABLE and known[1] < cutoff:
            candidates.append(query)
    schedule(candidates, settings, now, db_booked(session))
    insert_queries(session, candidates, refresh_days=settings.query_refresh_days, now=now)
    done = [query for query in candidates if query.id is not None]
    return done, len(planned) - len(done)


def _existing(session: Session, unique: dict[str, PlannedQuery]) -> dict[str, tuple[str, datetime]]:
    if not unique:
        return {}
    rows = session.execute(
        select(SerpQuery.query_hash, SerpQuery.status, SerpQuery.completed_at, SerpQuery.updated_at)
        .where(SerpQuery.query_hash.in_(list(unique)))
    ).all()
    return {digest: (status, completed or updated) for digest, status, completed, updated in rows}


def bounds(queries: Iterable[PlannedQuery]) -> tuple[datetime | None, datetime | None]:
    times = [q.scheduled_for for q in queries if q.scheduled_for is not None]
    return (min(times), max(times)) if times else (None, None)
