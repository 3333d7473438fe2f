"""The funnel per batch tag and/or local day: queries → SERP documents → companies → contacts →
messages, with LLM and search cost. Every number comes from a GROUP BY in the database (one
statement per table), so the report stays fast on millions of rows, on PostgreSQL and SQLite.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timezone
from typing import Any, Literal, Sequence
from zoneinfo import ZoneInfo

from rich.table import Table
from sqlalchemy import ColumnElement, Select, case, func, literal_column, select
from sqlalchemy.orm import Session

from leadgen.config import Settings
from leadgen.db import is_postgres
from leadgen.models import Company, OutreachMessage, SerpOperation, SerpQuery, SerpResult

By = Literal["batch", "day", "batch_day"]
NO_TAG = "(none)"
TOTAL = "TOTAL"
REPORT_TAB = "REPORT"
# Reasons of `contacts_not_found`, matched on the start of `status_reason` (in this order).
NOT_FOUND_REASONS: dict[str, tuple[str, ...]] = {
    "unreachable": ("unreachable",),
    "blocked": ("blocked",),
    "robots": ("robots",),
    "no_email": ("no_email", "no email", "no-email", "no emails"),
}


@dataclass
class FunnelRow:
    """One line of the funnel; `batch` and/or `day` (local ISO date) identify it."""

    batch: str | None = None
    day: str | None = None
    is_total: bool = False
    queries_total: int = 0
    queries_pending: int = 0  # pending or being submitted
    queries_submitted: int = 0  # accepted by Yandex, results not in yet
    queries_completed: int = 0
    queries_failed: int = 0
    serp_documents: int = 0
    companies_total: int = 0
    companies_new: int = 0  # new or enriching
    companies_duplicate: int = 0
    companies_opted_out: int = 0
    companies_contacted: int = 0
    contacts_ready: int = 0  # emails found (contacts_ready or already contacted)
    contacts_not_found: int = 0
    not_found_unreachable: int = 0
    not_found_blocked: int = 0
    not_found_robots: int = 0
    not_found_no_email: int = 0
    not_found_other: int = 0
    messages_total: int = 0
    messages_queued: int = 0  # held, scheduled or sending
    messages_sent: int = 0
    messages_deferred: int = 0
    messages_failed: int = 0
    messages_skipped: int = 0
    messages_unknown: int = 0
    llm_cost_usd: float = 0.0
    llm_tokens: int = 0
    search_requests: int = 0  # Yandex operations submitted
    search_cost: float = 0.0  # USD, search_requests × YANDEX_PRICE_PER_1000 / 1000

    @property
    def key(self) -> str:
        if self.is_total:
            return TOTAL
        return " ".join(part for part in (self.batch, self.day) if part is not None)

    def add(self, **values: Any) -> None:
        for name, value in values.items():
            setattr(self, name, getattr(self, name) + (value or 0))


METRICS = [f.name for f in fields(FunnelRow) if f.name not in {"batch", "day", "is_total"}]


# --- SQL building blocks ----------------------------------------------------------------------


def _tag(column: Any) -> ColumnElement[str]:
    return func.coalesce(func.nullif(column, ""), NO_TAG)


def _sql_str(value: str) -> ColumnElement[Any]:
    return literal_column("'" + value.replace("'", "''") + "'")


@functools.lru_cache(maxsize=16)
def _offset_segments(tz_name: str) -> tuple[tuple[str | None, int], ...]:
    """UTC offsets of a zone as (start in UTC 'YYYY-MM-DD HH:MM:SS' or None, seconds), oldest
    first, from 2000 to ten years ahead (SQLite has no time zone database)."""
    tz = ZoneInfo(tz_name)

    def offset(ts: int) -> int:
        delta = datetime.fromtimestamp(ts, tz).utcoffset()
        return int(delta.total_seconds()) if delta else 0

    start = int(datetime(2000, 1, 1, tzinfo=timezone.utc).timestamp())
    end = int(datetime(datetime.now(timezone.utc).year + 10, 1, 1, tzinfo=timezone.utc).timestamp())
    segments: list[tuple[str | None, int]] = [(None, offset(start))]
    step = 86_400
    ts = start
    while ts < end:
        nxt = ts + step
        if offset(nxt) != segments[-1][1]:
            lo, hi = ts, nxt  # offset(lo) is the old one, offset(hi) the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(mid) == segments[-1][1]:
                    lo = mid
                else:
                    hi = mid
            moment = datetime.fromtimestamp(hi, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            segments.append((moment, offset(hi)))
        ts = nxt
    return tuple(segments)


def local_day(session: Session, settings: Settings, column: Any) -> ColumnElement[str]:
    """The local date (APP_TIMEZONE) of a UTC timestamp column, as 'YYYY-MM-DD', in SQL."""
    if is_postgres(session):
        return func.to_char(func.timezone(_sql_str(settings.app_timezone), column), "YYYY-MM-DD")
    # SQLite keeps UTC as 'YYYY-MM-DD HH:MM:SS.ffffff' text: shift by the offset in force then.
    segments = _offset_segments(settings.app_timezone)

    def modifier(seconds: int) -> ColumnElement[Any]:
        return _sql_str(f"{seconds:+d} seconds")

    if len(segments) == 1:
        return func.date(column, modifier(segments[0][1]))
    whens = [(column >= _sql_str(start), modifier(off)) for start, off in reversed(segments[1:])]
    return func.date(column, case(*whens, else_=modifier(segments[0][1])))


def _count_rows(_sub: Any) -> ColumnElement[int]:
    return func.count()


def _count_if(condition: Any) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


class _Grouper:
    """Builds `SELECT keys, aggregates FROM (inner) GROUP BY keys` for one table."""

    def __init__(self, session: Session, settings: Settings, by: By, since: datetime | None):
        self.session, self.settings, self.by, self.since = session, settings, by, since

    def inner(self, tag_col: Any, day_col: Any, *extra: Any) -> tuple[Select[Any], list[str]]:
        cols: list[Any] = []
        keys: list[str] = []
        if self.by in ("batch", "batch_day"):
            cols.append(_tag(tag_col).label("k_batch"))
            keys.append("k_batch")
        if self.by in ("day", "batch_day"):
            cols.append(local_day(self.session, self.settings, day_col).label("k_day"))
            keys.append("k_day")
        stmt = select(*cols, *extra)
        if self.since is not None:
            stmt = stmt.where(day_col >= self.since)
        return stmt, keys

    def run(
        self, inner: Select[Any], keys: list[str], aggregates: dict[str, Any]
    ) -> list[tuple[str | None, str | None, dict[str, Any]]]:
        sub = inner.subquery()
        key_cols = [sub.c[k] for k in keys]
        names = list(aggregates)
        stmt = select(*key_cols, *(aggregates[n](sub) for n in names))
        if key_cols:
            stmt = stmt.group_by(*key_cols)
        out = []
        for row in self.session.execute(stmt):
            values = dict(zip(keys + names, row))
            batch = values.pop("k_batch", None)
            day = values.pop("k_day", None)
            if isinstance(day, (date, datetime)):
                day = day.isoformat()[:10]
            out.append((batch, day, values))
        return out


def _status_counts(mapping: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    return {
        name: (lambda sub, statuses=statuses: _count_if(sub.c.status.in_(statuses)))
        for name, statuses in mapping.items()
    }


def _reason_category(reason: Any) -> ColumnElement[str]:
    lowered = func.lower(func.coalesce(reason, ""))
    whens = []
    for category, prefixes in NOT_FOUND_REASONS.items():
        for prefix in prefixes:
            whens.append((lowered.like(prefix + "%"), category))
    return case(*whens, else_="other")


# --- the funnel -------------------------------------------------------------------------------


def funnel(
    session: Session, settings: Settings, by: By = "batch", since: datetime | None = None
) -> list[FunnelRow]:
    """Funnel rows sorted by batch then day, and a last totals row.

    Events are dated in APP_TIMEZONE: queries by submission (else schedule), documents by
    creation, companies by first sighting, enrichment outcomes by `enriched_at`, messages by
    `sent_at` (else creation). `since` keeps events at or after that moment (naive = local).
    """
    if by not in ("batch", "day", "batch_day"):
        raise ValueError(f"by must be batch, day or batch_day, not {by!r}")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=settings.tz)
    g = _Grouper(session, settings, by, since)
    rows: dict[tuple[str | None, str | None], FunnelRow] = {}

    def merge(results: list[tuple[str | None, str | None, dict[str, Any]]]) -> None:
        for batch, day, values in results:
            row = rows.setdefault((batch, day), FunnelRow(batch=batch, day=day))
            row.add(**values)

    # Queries.
    q_day = func.coalesce(SerpQuery.submitted_at, SerpQuery.scheduled_for)
    inner, keys = g.inner(SerpQuery.batch_tag, q_day, SerpQuery.status.label("status"))
    aggregates = {"queries_total": _count_rows} | _status_counts({
        "queries_pending": ("pending", "submitting"),
        "queries_submitted": ("submitted",),
        "queries_completed": ("completed",),
        "queries_failed": ("failed",),
    })
    merge(g.run(inner, keys, aggregates))

    # SERP documents.
    inner, keys = g.inner(SerpQuery.batch_tag, SerpResult.created_at, SerpResult.id.label("id"))
    inner = inner.select_from(SerpResult).join(SerpQuery, SerpQuery.id == SerpResult.query_id)
    merge(g.run(inner, keys, {"serp_documents": _count_rows}))

    # Yandex operations: each one is a billed deferred request.
    inner, keys = g.inner(
        SerpQuery.batch_tag, SerpOperation.submitted_at, SerpOperation.id.label("id")
    )
    inner = inner.select_from(SerpOperation).join(SerpQuery, SerpQuery.id == SerpOperation.query_id)
    merge(g.run(inner, keys, {"search_requests": _count_rows}))

    # Companies by first sighting.
    inner, keys = g.inner(Company.batch_tag, Company.first_seen_at, Company.status.label("status"))
    aggregates = {"companies_total": _count_rows} | _status_counts({
        "companies_new": ("new", "enriching"),
        "companies_duplicate": ("duplicate",),
        "companies_opted_out": ("opted_out",),
        "companies_contacted": ("contacted",),
    })
    merge(g.run(inner, keys, aggregates))

    # Enrichment outcomes by the time of enrichment.
    e_day = func.coalesce(Company.enriched_at, Company.updated_at)
    inner, keys = g.inner(
        Company.batch_tag,
        e_day,
        Company.status.label("status"),
        _reason_category(Company.status_reason).label("reason"),
    )
    inner = inner.where(Company.status.in_(("contacts_ready", "contacted", "contacts_not_found")))
    not_found = lambda sub: sub.c.status == "contacts_not_found"  # noqa: E731
    aggregates = {
        "contacts_ready": lambda sub: _count_if(sub.c.status.in_(("contacts_ready", "contacted"))),
        "contacts_not_found": lambda sub: _count_if(not_found(sub)),
    }
    for category in (*NOT_FOUND_REASONS, "other"):
        aggregates[f"not_found_{category}"] = (
            lambda sub, c=category: _count_if(not_found(sub) & (sub.c.reason == c))
        )
    merge(g.run(inner, keys, aggregates))

    # Messages, with their generation cost.
    m_day = func.coalesce(OutreachMessage.sent_at, OutreachMessage.created_at)
    inner, keys = g.inner(
        Company.batch_tag,
        m_day,
        OutreachMessage.status.label("status"),
        OutreachMessage.cost_usd.label("cost"),
        (
            func.coalesce(OutreachMessage.prompt_tokens, 0)
            + func.coalesce(OutreachMessage.completion_tokens, 0)
        ).label("tokens"),
    )
    inner = inner.select_from(OutreachMessage).join(Company, Company.id == OutreachMessage.company_id)
    aggregates = {"messages_total": _count_rows} | _status_counts({
        "messages_queued": ("held", "scheduled", "sending"),
        "messages_sent": ("sent",),
        "messages_deferred": ("deferred",),
        "messages_failed": ("failed",),
        "messages_skipped": ("skipped",),
        "messages_unknown": ("unknown",),
    })
    aggregates["llm_cost_usd"] = lambda sub: func.coalesce(func.sum(sub.c.cost), 0.0)
    aggregates["llm_tokens"] = lambda sub: func.coalesce(func.sum(sub.c.tokens), 0)
    merge(g.run(inner, keys, aggregates))

    price = settings.yandex_price_per_1000 / 1000.0
    result = sorted(rows.values(), key=_sort_key)
    total = FunnelRow(is_total=True)
    for row in result:
        row.search_cost = row.search_requests * price
        total.add(**{name: getattr(row, name) for name in METRICS if name != "search_cost"})
    total.search_cost = total.search_requests * price
    for row in (*result, total):
        _normalise(row)
    return [*result, total]


def _sort_key(row: FunnelRow) -> tuple[Any, ...]:
    return (row.batch == NO_TAG, row.batch or "", row.day or "")


def _normalise(row: FunnelRow) -> None:
    """Database sums arrive as Decimal/int/float depending on the backend."""
    for name in METRICS:
        value = getattr(row, name)
        if name in ("llm_cost_usd", "search_cost"):
            setattr(row, name, round(float(value or 0), 6))
        else:
            setattr(row, name, int(value or 0))


def since_local_date(day: date, settings: Settings) -> datetime:
    """The start of a local day (APP_TIMEZONE) as an aware datetime."""
    return datetime.combine(day, time(0, 0), tzinfo=settings.tz)


# --- rendering --------------------------------------------------------------------------------

# (header, attribute) of the columns shown in the terminal table.
TABLE_COLUMNS: list[tuple[str, str]] = [
    ("Queries", "queries_total"),
    ("Pending", "queries_pending"),
    ("In flight", "queries_submitted"),
    ("Done", "queries_completed"),
    ("Failed", "queries_failed"),
    ("Docs", "serp_documents"),
    ("Companies", "companies_total"),
    ("New", "companies_new"),
    ("Dup", "companies_duplicate"),
    ("Opted out", "companies_opted_out"),
    ("Emails found", "contacts_ready"),
    ("Not found", "contacts_not_found"),
    ("Queued", "messages_queued"),
    ("Sent", "messages_sent"),
    ("Deferred", "messages_deferred"),
    ("Msg failed", "messages_failed"),
    ("Skipped", "messages_skipped"),
    ("Unknown", "messages_unknown"),
    ("LLM $", "llm_cost_usd"),
    ("Search $", "search_cost"),
]


def _row_label(rows: Sequence[FunnelRow]) -> str:
    sample = next((r for r in rows if not r.is_total), None)
    if sample is None:
        return "Batch"
    if sample.batch is not None and sample.day is not None:
        return "Batch / day"
    return "Day" if sample.day is not None else "Batch"


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_table(rows: Sequence[FunnelRow], title: str = "leadgen funnel") -> Table:
    """A rich table of the main funnel columns (the totals row last, in bold).

    A few rows are shown transposed — one line per funnel step — so they fit a terminal."""
    if len(rows) <= 6:
        return _render_transposed(rows, title)
    table = Table(title=title, show_lines=False)
    table.add_column(_row_label(rows), no_wrap=True)
    for header, _ in TABLE_COLUMNS:
        table.add_column(header, justify="right")
    for row in rows:
        cells = [row.key] + [_fmt(getattr(row, attr)) for _, attr in TABLE_COLUMNS]
        table.add_row(*cells, style="bold" if row.is_total else None, end_section=row.is_total)
    return table


def _render_transposed(rows: Sequence[FunnelRow], title: str) -> Table:
    table = Table(title=title, show_lines=False)
    table.add_column("", no_wrap=True)
    for row in rows:
        table.add_column(row.key, justify="right", style="bold" if row.is_total else None)
    for header, attr in TABLE_COLUMNS:
        table.add_row(header, *(_fmt(getattr(row, attr)) for row in rows))
    return table


def row_dict(row: FunnelRow) -> dict[str, Any]:
    data = asdict(row)
    return {"key": row.key, **data}


def to_json(rows: Sequence[FunnelRow]) -> str:
    return json.dumps([row_dict(row) for row in rows], ensure_ascii=False, indent=2)


def sheet_values(rows: Sequence[FunnelRow]) -> list[list[Any]]:
    """Header + one list per row, for the REPORT tab."""
    header = ["key", "batch", "day", *METRICS]
    values: list[list[Any]] = [header]
    for row in rows:
        values.append([row.key, row.batch or "", row.day or "", *(getattr(row, m) for m in METRICS)])
    return values


def write_report_tab(rows: Sequence[FunnelRow], settings: Settings, title: str = REPORT_TAB) -> int:
    """Replace the REPORT tab of the configured sheet with the funnel; returns rows written."""
    import gspread

    from leadgen import sheets_client

    spreadsheet = sheets_client.open_spreadsheet(settings)
    values = sheet_values(rows)
    try:
        worksheet = spreadsheet.worksheet(title)
    except gspread.WorksheetNotFound:
        worksheet = spreadsheet.add_worksheet(title, rows=max(len(values), 10), cols=len(values[0]))
    # Writing outside the grid is an error in the Sheets API: grow the tab first.
    grow = [
        {"appendDimension": {"sheetId": worksheet.id, "dimension": dimension, "length": missing}}
        for dimension, missing in (("ROWS", len(values) - worksheet.row_count),
                                   ("COLUMNS", len(values[0]) - worksheet.col_count))
        if missing > 0
    ]
    if grow:
        spreadsheet.batch_update({"requests": grow})
    worksheet.clear()
    end = gspread.utils.rowcol_to_a1(len(values), len(values[0]))
    worksheet.update(values, f"A1:{end}")
    return len(values) - 1
