"""The opt-out registry (emails and whole domains), suppressions, and unsubscribe tokens."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadgen.db import is_postgres
from leadgen.models import Company, Contact, OptOut, OutreachMessage, Suppression, utcnow

QUEUED = ("held", "scheduled", "deferred")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class OptOutError(ValueError):
    """The value is neither an email address nor a domain."""


def normalise_domain(value: str) -> str:
    """`https://www.Пример.РФ/path` → `xn--e1afmkfd.xn--p1ai`."""
    text = value.strip().lower()
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text)
    text = text.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0].strip(".")
    if text.startswith("www."):
        text = text[4:]
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise OptOutError(f"not a domain: {value!r}") from exc
    labels = text.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise OptOutError(f"not a domain: {value!r}")
    return text


def normalise_email(value: str) -> str:
    text = value.strip()
    if text.lower().startswith("mailto:"):
        text = text[7:].split("?", 1)[0]
    local, at, domain = text.rpartition("@")
    if not at or not local or any(ch.isspace() for ch in local) or len(local) > 64:
        raise OptOutError(f"not an email address: {value!r}")
    return f"{local.lower()}@{normalise_domain(domain)}"


def classify(value: str) -> tuple[str, str]:
    """("email" | "domain", normalised value)."""
    return ("email", normalise_email(value)) if "@" in value else ("domain", normalise_domain(value))


def _domain_and_parents(domain: str) -> list[str]:
    labels = domain.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def _email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].lower()


def optout_match(email: str, company_domain: str | None = None) -> Any:
    """A WHERE clause on opt_outs matching the address, its domain or a parent domain, or the
    company's domain."""
    try:
        address = normalise_email(email)
    except OptOutError:
        address = email.strip().lower()
    domains = set(_domain_and_parents(_email_domain(address)))
    if company_domain:
        domains.update(_domain_and_parents(company_domain.lower()))
    return or_((OptOut.kind == "email") & (OptOut.value == address),
               (OptOut.kind == "domain") & (OptOut.value.in_(domains)))


def is_opted_out(session: Session, email: str, company_domain: str | None = None) -> bool:
    """The address, its domain (or a parent domain), or the company's domain is opted out."""
    hit = session.scalar(select(OptOut.id).where(optout_match(email, company_domain)).limit(1))
    return hit is not None


def suppression_match(email: str) -> Any:
    return Suppression.email == email.strip().lower()


def is_suppressed(session: Session, email: str) -> bool:
    return session.scalar(select(Suppression.id).where(suppression_match(email)).limit(1)) \
        is not None


def suppress(session: Session, email: str, reason: str, smtp_code: int | None) -> None:
    dialect = postgresql if is_postgres(session) else sqlite
    session.execute(
        dialect.insert(Suppression)
        .values(email=email.strip().lower(), reason=reason[:1000], smtp_code=smtp_code,
                created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["email"])
    )


@dataclass
class AddResult:
    kind: str
    value: str
    created: bool
    companies: int  # companies moved to opted_out
    messages: int  # queued messages skipped


def add(session: Session, value: str, *, source: str = "cli", reason: str | None = None) -> AddResult:
    """Register an opt-out and apply it: matching companies → opted_out, queued mail → skipped."""
    kind, normal = classify(value)
    dialect = postgresql if is_postgres(session) else sqlite
    inserted = session.execute(
        dialect.insert(OptOut)
        .values(kind=kind, value=normal, source=source, reason=reason, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["kind", "value"])
        .returning(OptOut.id)
    ).first()
    companies, messages = apply_optout(session, kind, normal)
    return AddResult(kind, normal, inserted is not None, companies, messages)


def apply_optout(session: Session, kind: str, value: str) -> tuple[int, int]:
    now = utcnow()
    if kind == "email":
        contact_match = func.lower(Contact.email) == value
        message_match = func.lower(OutreachMessage.to_email) == value
        company_ids = select(Contact.company_id).where(contact_match)
    else:
        suffix = "%." + value
        contact_match = or_(func.lower(Contact.email).like("%@" + value),
                            func.lower(Contact.email).like("%@%" + suffix))
        message_match = or_(func.lower(OutreachMessage.to_email).like("%@" + value),
                            func.lower(OutreachMessage.to_email).like("%@%" + suffix))
        company_ids = select(Contact.company_id).where(contact_match).union(
            select(Company.id).where(or_(Company.domain == value, Company.domain.like(suffix))))
    ids = set(session.scalars(company_ids))
    companies = 0
    if ids:
        companies = session.execute(
            update(Company).where(Company.id.in_(ids), Company.status != "opted_out")
            .values(status="opted_out", opt_out=True, status_reason=f"opt-out: {value}",
                    updated_at=now)
        ).rowcount or 0
    message_filter = [OutreachMessage.status.in_(QUEUED)]
    if kind == "domain" and ids:
        message_filter.append(or_(message_match, OutreachMessage.company_id.in_(ids)))
    else:
        message_filter.append(message_match)
    messages = session.execute(
        update(OutreachMessage).where(*message_filter)
        .values(status="skipped", last_error=f"opt_out: {value}", updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount or 0
    return companies, messages


def remove(session: Session, value: str) -> bool:
    """Forget an opt-out. Companies already marked opted_out stay so (never reset silently)."""
    kind, normal = classify(value)
    result = session.execute(delete(OptOut).where(OptOut.kind == kind, OptOut.value == normal))
    return bool(result.rowcount)


@dataclass
class ImportResult:
    added: int = 0
    existing: int = 0
    invalid: int = 0
    companies: int = 0
    messages: int = 0


def import_file(session: Session, path: str | Path, *, source: str = "import",
                reason: str | None = None) -> ImportResult:
    """One value per line, or a CSV whose column `email`/`domain`/`value` (else the first) holds
    the values. Bad lines are counted, not fatal."""
    text = Path(path).read_text(encoding="utf-8-sig")
    return import_text(session, text, source=source, reason=reason)


def import_text(session: Session, text: str, *, source: str = "import",
                reason: str | None = None) -> ImportResult:
    rows = list(csv.reader(io.StringIO(text)))
    column = 0
    if rows:
        header = [cell.strip().lower() for cell in rows[0]]
        for name in ("email", "domain", "value", "e-mail"):
            if name in header:
                column = header.index(name)
                rows = rows[1:]
                break
    result = ImportResult()
    for row in rows:
        if len(row) <= column or not row[column].strip() or row[column].lstrip().startswith("#"):
            continue
        try:
            outcome = add(session, row[column], source=source, reason=reason)
        except OptOutError:
            result.invalid += 1
            continue
        result.added += outcome.created
        result.existing += not outcome.created
        result.companies += outcome.companies
        result.messages += outcome.messages
    return result


def list_optouts(session: Session, kind: str | None = None) -> list[OptOut]:
    query = select(OptOut).order_by(OptOut.kind, OptOut.value)
    if kind:
        query = query.where(OptOut.kind == kind)
    return list(session.scalars(query))


# --- unsubscribe tokens (RFC 8058 one-click URL) ----------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def unsubscribe_token(email: str, secret: str) -> str:
    """An opaque, URL-safe token naming the recipient, signed with HMAC-SHA256."""
    if not secret:
        raise ValueError("UNSUBSCRIBE_SECRET is empty")
    address = email.strip().lower().encode("utf-8")
    mac = hmac.new(secret.encode("utf-8"), b"unsubscribe:" + address, hashlib.sha256).digest()
    return f"{_b64(address)}.{_b64(mac[:16])}"


def verify_token(token: str, secret: str) -> str | None:
    """The email the token was made for, or None when it is forged or malformed."""
    if not secret or token.count(".") != 1:
        return None
    encoded, signature = token.split(".")
    try:
        address = _unb64(encoded)
        given = _unb64(signature)
    except (ValueError, TypeError):
        return None
    mac = hmac.new(secret.encode("utf-8"), b"unsubscribe:" + address, hashlib.sha256).digest()
    if not hmac.compare_digest(mac[:16], given):
        return None
    try:
        return address.decode("utf-8")
    except UnicodeDecodeError:
        return None
