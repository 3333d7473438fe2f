"""CSV export of companies, contacts and messages, streamed from the database."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import IO, Any, Literal

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from leadgen.models import Company, Contact, Mailbox, OutreachMessage

Kind = Literal["companies", "contacts", "messages"]
KINDS: tuple[str, ...] = ("companies", "contacts", "messages")
NO_TAG = "(none)"  # --batch "(none)": rows without a batch tag
STREAM_CHUNK = 1_000

FIELDS: dict[str, list[str]] = {
    "companies": [
        "id", "domain", "name", "homepage_url", "niche", "city", "region_id", "batch_tag",
        "status", "status_reason", "primary_email", "first_seen_at", "enriched_at",
    ],
    "contacts": [
        "company_id", "domain", "email", "is_primary", "method", "confidence", "source_url",
        "status", "mx_ok",
    ],
    "messages": [
        "id", "domain", "to_email", "mailbox", "status", "scheduled_for", "sent_at", "subject",
        "generator", "model", "cost_usd", "last_error",
    ],
}


def _statement(kind: str) -> tuple[Select[Any], Any]:
    """The SELECT of one kind and the column its --status filter applies to."""
    if kind == "companies":
        primary = (
            select(Contact.email)
            .where(Contact.company_id == Company.id, Contact.is_primary.is_(True))
            .order_by(Contact.id)
            .limit(1)
            .correlate(Company)
            .scalar_subquery()
        )
        stmt = select(
            Company.id, Company.domain, Company.name, Company.homepage_url, Company.niche,
            Company.city, Company.region_id, Company.batch_tag, Company.status,
            Company.status_reason, primary.label("primary_email"), Company.first_seen_at,
            Company.enriched_at,
        ).order_by(Company.id)
        return stmt, Company.status
    if kind == "contacts":
        stmt = (
            select(
                Contact.company_id, Company.domain, Contact.email, Contact.is_primary,
                Contact.method, Contact.confidence, Contact.source_url, Contact.status,
                Contact.mx_ok,
            )
            .join(Company, Company.id == Contact.company_id)
            .order_by(Contact.company_id, Contact.id)
        )
        return stmt, Contact.status
    if kind == "messages":
        stmt = (
            select(
                OutreachMessage.id, Company.domain, OutreachMessage.to_email,
                Mailbox.name.label("mailbox"), OutreachMessage.status,
                OutreachMessage.scheduled_for, OutreachMessage.sent_at, OutreachMessage.subject,
                OutreachMessage.generator, OutreachMessage.model, OutreachMessage.cost_usd,
                OutreachMessage.last_error,
            )
            .join(Company, Company.id == OutreachMessage.company_id)
            .outerjoin(Mailbox, Mailbox.id == OutreachMessage.mailbox_id)
            .order_by(OutreachMessage.id)
        )
        return stmt, OutreachMessage.status
    raise ValueError(f"unknown export kind {kind!r}: use one of {', '.join(KINDS)}")


def export_rows(
    session: Session,
    kind: Kind,
    batch_tag: str | None = None,
    status: str | Sequence[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Rows of `kind` as dicts (FIELDS order), streamed in chunks.

    `batch_tag` filters on the company's tag ("(none)" = untagged); `status` on the row's own
    status (one value, a comma-separated list or a sequence).
    """
    stmt, status_col = _statement(kind)
    if batch_tag is not None:
        if batch_tag == NO_TAG:
            stmt = stmt.where((Company.batch_tag.is_(None)) | (Company.batch_tag == ""))
        else:
            stmt = stmt.where(Company.batch_tag == batch_tag)
    statuses = _statuses(status)
    if statuses:
        stmt = stmt.where(status_col.in_(statuses))
    names = FIELDS[kind]
    result = session.execute(stmt.execution_options(yield_per=STREAM_CHUNK))
    for row in result:
        yield dict(zip(names, row))


def _statuses(status: str | Sequence[str] | None) -> list[str]:
    if status is None:
        return []
    items = status.split(",") if isinstance(status, str) else list(status)
    return [item.strip() for item in items if item.strip()]


def format_value(value: Any) -> str:
    """CSV text of a value: ISO-8601 UTC timestamps, true/false, empty for NULL."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return str(value)


def write_csv(
    rows: Iterable[dict[str, Any]],
    out: IO[str],
    fields: Sequence[str] | None = None,
    *,
    excel: bool = False,
) -> int:
    """Write RFC 4180 CSV (header always, even with no rows); returns the number of rows.

    `fields` defaults to the keys of the first row; `excel` prepends a UTF-8 BOM so Excel
    reads Cyrillic correctly. Open `out` with newline="".
    """
    iterator = iter(rows)
    first: dict[str, Any] | None = None
    if fields is None:
        first = next(iterator, None)
        fields = list(first) if first is not None else []
    if excel:
        out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(fields)
    count = 0
    head = [first] if first is not None else []
    for row in itertools.chain(head, iterator):
        writer.writerow([format_value(row.get(name)) for name in fields])
        count += 1
    return count
