"""Every table of the pipeline. The database enforces idempotency: each stage's natural key is
unique, and work items carry a status, attempts, a next-attempt time and a lease.

The same models run on PostgreSQL (production) and SQLite (the embedded default).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


JsonDoc = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


class WorkItem:
    """A row that a dispatcher claims: attempts, next attempt and a lease."""

    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)


# --- intake and search ------------------------------------------------------------------------


class SearchBatchLog(Base):
    """One line per sheet/CSV row per sync pass."""

    __tablename__ = "search_batch_logs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    sync_id: Mapped[str] = mapped_column(String(40), nullable=False, index=True)
    source: Mapped[str] = mapped_column(String(20), nullable=False)  # sheet | csv
    row_number: Mapped[int | None] = mapped_column(Integer)
    niche: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(Text)
    batch_tag: Mapped[str | None] = mapped_column(String(200))
    generated_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    inserted_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    first_scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), nullable=False)  # done | error | skipped
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class SerpQuery(WorkItem, Timestamped, Base):
    """A search to run: pending → submitted → completed | failed."""

    __tablename__ = "serp_queries"
    __table_args__ = (Index("ix_serp_queries_due", "status", "scheduled_for"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    query_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    query_text: Mapped[str] = mapped_column(Text, nullable=False)
    page: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    region_id: Mapped[int] = mapped_column(Integer, nullable=False)
    region_source: Mapped[str] = mapped_column(String(20), nullable=False)  # city|country|default
    region_warning: Mapped[str | None] = mapped_column(Text)
    niche: Mapped[str] = mapped_column(Text, nullable=False)
    city: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(Text)
    batch_tag: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result_count: Mapped[int | None] = mapped_column(Integer)


class SerpOperation(Timestamped, Base):
    """A Yandex deferred operation: pending → fetched → ingested | failed | expired."""

    __tablename__ = "serp_operations"
    __table_args__ = (Index("ix_serp_operations_due", "status", "next_poll_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    query_id: Mapped[int] = mapped_column(
        ForeignKey("serp_queries.id", ondelete="CASCADE"), nullable=False, index=True
    )
    operation_id: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    next_poll_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    polls: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    raw_xml: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    doc_count: Mapped[int | None] = mapped_column(Integer)


class SerpResult(Base):
    """One document of one operation, kept with its position and provenance."""

    __tablename__ = "serp_results"
    __table_args__ = (UniqueConstraint("operation_id", "url"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    operation_id: Mapped[int] = mapped_column(
        ForeignKey("serp_operations.id", ondelete="CASCADE"), nullable=False
    )
    query_id: Mapped[int] = mapped_column(
        ForeignKey("serp_queries.id", ondelete="CASCADE"), nullable=False, index=True
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    domain: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    title: Mapped[str | None] = mapped_column(Text)
    snippet: Mapped[str | None] = mapped_column(Text)
    lang: Mapped[str | None] = mapped_column(String(10))
    blocked: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


# --- companies and contacts -------------------------------------------------------------------


class Company(WorkItem, Timestamped, Base):
    """One company per registrable domain.

    Status: new → enriching → contacts_ready | contacts_not_found → contacted;
    or duplicate, opted_out.
    """

    __tablename__ = "companies"
    __table_args__ = (
        Index("ix_companies_due", "status", "next_attempt_at"),
        Index("ix_companies_name_key", "name_key", "city"),
        Index("ix_companies_duplicate_of_id", "duplicate_of_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    name_source: Mapped[str] = mapped_column(String(20), default="domain", nullable=False)
    # The name without legal form, quotes and punctuation (leadgen.serp.names.name_key), for
    # fuzzy dedupe; NULL when the name only comes from the domain.
    name_key: Mapped[str | None] = mapped_column(String(200))
    homepage_url: Mapped[str] = mapped_column(Text, nullable=False)
    niche: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    region_id: Mapped[int | None] = mapped_column(Integer)
    batch_tag: Mapped[str | None] = mapped_column(String(200), index=True)
    query_id: Mapped[int | None] = mapped_column(
        ForeignKey("serp_queries.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(30), default="new", nullable=False)
    status_reason: Mapped[str | None] = mapped_column(Text)
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("companies.id", ondelete="SET NULL")
    )
    opt_out: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    homepage_excerpt: Mapped[str | None] = mapped_column(Text)
    pages_fetched: Mapped[int | None] = mapped_column(Integer)
    enriched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Contact(Timestamped, Base):
    """An email found on a company's site, with where and how it was found."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("company_id", "email"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), nullable=False
    )
    email: Mapped[str] = mapped_column(String(320), nullable=False, index=True)
    source_url: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(30), nullable=False)
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    mx_ok: Mapped[bool | None] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20), default="ok", nullable=False)


# --- outreach ---------------------------------------------------------------------------------


class Mailbox(Timestamped, Base):
    """A sending mailbox; configuration defines it, the database keeps its state."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    from_email: Mapped[str] = mapped_column(String(320), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="active", nullable=False)
    status_reason: Mapped[str | None] = mapped_column(Text)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    daily_cap: Mapped[int] = mapped_column(Integer, nullable=False)


class OutreachMessage(WorkItem, Timestamped, Base):
    """The first email to a contact.

    Status: held | scheduled → sending → sent; deferred → scheduled again; failed, skipped;
    unknown (found in `sending` after a crash: never resent automatically).
    """

    __tablename__ = "outreach_messages"
    __table_args__ = (
        Index("ix_outreach_messages_due", "status", "scheduled_for"),
        Index("ix_outreach_messages_mailbox_slot", "mailbox_id", "scheduled_for"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    company_id: Mapped[int] = mapped_column(
        ForeignKey("companies.id", ondelete="CASCADE"), nullable=False, index=True
    )
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="SET NULL"))
    to_email: Mapped[str] = mapped_column(String(320), nullable=False, index=True)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sending_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    generator: Mapped[str] = mapped_column(String(20), nullable=False)  # llm | template
    model: Mapped[str | None] = mapped_column(String(100))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    generation_notes: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)


class OptOut(Base):
    """Someone asked not to be contacted: an email address or a whole domain."""

    __tablename__ = "opt_outs"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)  # email | domain
    value: Mapped[str] = mapped_column(String(320), nullable=False)
    source: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Suppression(Base):
    """An address that bounced permanently (SMTP 5.1.x): never mailed again."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    reason: Mapped[str | None] = mapped_column(Text)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
