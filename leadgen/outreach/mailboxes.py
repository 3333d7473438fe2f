"""Sending mailboxes from configuration, mirrored into the `mailboxes` table, and MX routing.

Configuration (first that is set wins): MAILBOXES_JSON (a list of objects); GMAIL_* / YANDEX_*
(the earlier system's pair: Yandex for Russian mail hosts, Gmail for the rest); the single SMTP_*
mailbox. The table keeps each mailbox's state (active / paused / retired) across restarts.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from leadgen.config import ConfigError
from leadgen.db import is_postgres
from leadgen.models import Mailbox, utcnow

log = logging.getLogger(__name__)

ROUTES = ("ru", "other", "any")


@dataclass(frozen=True)
class MailboxConfig:
    name: str
    host: str
    port: int
    security: str  # starttls | ssl | none
    username: str
    password: str
    from_email: str
    from_name: str = ""
    reply_to: str = ""
    daily_cap: int = 100
    gap_min_seconds: int = 240
    gap_max_seconds: int = 480
    route: str = "any"  # ru | other | any

    @property
    def from_domain(self) -> str:
        return self.from_email.rsplit("@", 1)[-1].lower()


def _from_pair(value: str, default_name: str) -> tuple[str, str]:
    name, address = parseaddr(value or "")
    return address, name or default_name


def configured_mailboxes(settings: Any) -> list[MailboxConfig]:
    """Every sending mailbox the configuration defines (may be empty)."""
    common = {
        "daily_cap": settings.smtp_daily_cap,
        "gap_min_seconds": settings.send_gap_min_seconds,
        "gap_max_seconds": settings.send_gap_max_seconds,
    }
    if settings.mailboxes_json.strip():
        boxes = []
        for index, item in enumerate(json.loads(settings.mailboxes_json)):
            if not isinstance(item, dict):
                raise ConfigError(f"MAILBOXES_JSON[{index}] is not an object")
            data = {**common, "security": "starttls", "port": 587, "username": "", "password": "",
                    **item}
            data.setdefault("from_email", data.get("username", ""))
            data.setdefault("name", data["from_email"])
            missing = [key for key in ("name", "host", "from_email") if not data.get(key)]
            if missing:
                raise ConfigError(f"MAILBOXES_JSON[{index}] lacks {missing}")
            unknown = set(data) - set(MailboxConfig.__dataclass_fields__)
            if unknown:
                raise ConfigError(f"MAILBOXES_JSON[{index}] has unknown keys {sorted(unknown)}")
            box = MailboxConfig(**data)
            _check(box, f"MAILBOXES_JSON[{index}]")
            boxes.append(box)
        names = [box.name for box in boxes]
        if len(set(names)) != len(names):
            raise ConfigError("MAILBOXES_JSON: mailbox names must be unique")
        return boxes
    boxes = []
    for prefix, route in (("yandex", "ru"), ("gmail", "other")):
        user = getattr(settings, f"{prefix}_user")
        if not user:
            continue
        port = getattr(settings, f"{prefix}_smtp_port")
        address, name = _from_pair(getattr(settings, f"{prefix}_from"), settings.smtp_from_name)
        boxes.append(MailboxConfig(
            name=prefix, host=getattr(settings, f"{prefix}_smtp_host"), port=port,
            security="ssl" if port == 465 else "starttls", username=user,
            password=getattr(settings, f"{prefix}_pass"), from_email=address or user,
            from_name=name, reply_to=settings.smtp_reply_to, route=route, **common))
    if boxes:
        return boxes
    if settings.smtp_username or settings.smtp_from_email:
        box = MailboxConfig(
            name="default", host=settings.smtp_host, port=settings.smtp_port,
            security=settings.smtp_security, username=settings.smtp_username,
            password=settings.smtp_password,
            from_email=settings.smtp_from_email or settings.smtp_username,
            from_name=settings.smtp_from_name, reply_to=settings.smtp_reply_to, **common)
        _check(box, "SMTP_*")
        return [box]
    return []


def _check(box: MailboxConfig, where: str) -> None:
    if box.security not in ("starttls", "ssl", "none"):
        raise ConfigError(f"{where}: security must be starttls, ssl or none")
    if box.route not in ROUTES:
        raise ConfigError(f"{where}: route must be one of {ROUTES}")
    if "@" not in box.from_email:
        raise ConfigError(f"{where}: from_email {box.from_email!r} is not an address")
    if box.gap_min_seconds > box.gap_max_seconds or box.gap_min_seconds < 0:
        raise ConfigError(f"{where}: need 0 <= gap_min_seconds <= gap_max_seconds")
    if box.daily_cap < 1:
        raise ConfigError(f"{where}: daily_cap must be at least 1")


def sync_mailboxes(session: Session, settings: Any) -> dict[str, Mailbox]:
    """Mirror the configured mailboxes into the table (by name; status kept). Returns the rows
    of configured mailboxes; rows no longer configured become `retired`."""
    configs = configured_mailboxes(settings)
    dialect = postgresql if is_postgres(session) else sqlite
    now = utcnow()
    for box in configs:
        session.execute(
            dialect.insert(Mailbox)
            .values(name=box.name, from_email=box.from_email, daily_cap=box.daily_cap,
                    status="active", created_at=now, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
    rows = {row.name: row for row in session.scalars(select(Mailbox))}
    by_name = {box.name: box for box in configs}
    for name, row in rows.items():
        box = by_name.get(name)
        if box is None:
            if row.status != "retired":
                row.status, row.status_reason = "retired", "no longer configured"
            continue
        if row.from_email != box.from_email or row.daily_cap != box.daily_cap:
            row.from_email, row.daily_cap = box.from_email, box.daily_cap
        if row.status == "retired":
            row.status, row.status_reason = "active", None
    session.flush()
    return {name: rows[name] for name in by_name}


def pause_mailbox(session: Session, mailbox_id: int, reason: str, until: Any = None) -> None:
    session.execute(update(Mailbox).where(Mailbox.id == mailbox_id).values(
        status="paused", status_reason=reason[:1000], paused_until=until, updated_at=utcnow()))


def resume_due(session: Session, now: Any) -> int:
    """Mailboxes paused until a time that has passed become active again (manual pauses stay)."""
    result = session.execute(
        update(Mailbox)
        .where(Mailbox.status == "paused", Mailbox.paused_until.is_not(None),
               Mailbox.paused_until <= now)
        .values(status="active", status_reason=None, paused_until=None, updated_at=now)
    )
    return result.rowcount or 0


# --- MX routing -------------------------------------------------------------------------------


class MxRouter:
    """Classifies a recipient domain as `ru` (Russian mail hosts) or `other` by its MX records.

    Answers are cached for ROUTING_MX_CACHE_TTL_HOURS; a failed lookup only for a few minutes,
    so one DNS glitch does not pin a domain to the wrong mailbox for a week.
    """

    FAILURE_TTL = 300.0

    def __init__(self, settings: Any, lookup: Any = None) -> None:
        self.settings = settings
        self._lookup = lookup
        self._cache: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._checker: Any = None

    def _mx_hosts(self, domain: str) -> list[str]:
        """MX hosts; raises when DNS could not answer (so the failure is cached briefly)."""
        if self._lookup is not None:
            return list(self._lookup(domain))
        try:
            from leadgen.enrich.mx import UNKNOWN, MxChecker  # the enrich stage's cached checker
        except ImportError:
            return _dns_mx_hosts(domain, self.settings)
        with self._lock:
            if self._checker is None:
                self._checker = MxChecker(self.settings)
        result = self._checker.lookup(domain)
        if result.status == UNKNOWN:
            raise RuntimeError("DNS gave no answer")
        return list(result.hosts)

    def classify_hosts(self, domain: str, hosts: list[str]) -> str:
        settings = self.settings
        if domain in {d.lower() for d in settings.routing_force_ru_domains}:
            return "ru"
        patterns = [p.lower() for p in settings.routing_ru_mx_patterns]
        tlds = [t.lower().lstrip(".") for t in settings.routing_ru_mx_tlds]
        for host in hosts:
            host = host.lower().rstrip(".")
            if any(pattern in host for pattern in patterns):
                return "ru"
            if any(host.endswith("." + tld) for tld in tlds):
                return "ru"
        return "other"

    def route_for(self, email: str) -> str:
        domain = email.rsplit("@", 1)[-1].lower()
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(domain)
            if cached and cached[0] > now:
                return cached[1]
        try:
            hosts = self._mx_hosts(domain)
            ttl = self.settings.routing_mx_cache_ttl_hours * 3600
        except Exception as exc:  # noqa: BLE001 - DNS trouble must not stop queueing
            log.warning("MX lookup for %s failed: %s", domain, exc)
            hosts, ttl = [], self.FAILURE_TTL
        route = self.classify_hosts(domain, hosts)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[domain] = (now + ttl, route)
        return route


def _dns_mx_hosts(domain: str, settings: Any) -> list[str]:
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=not settings.dns_resolvers)
    if settings.dns_resolvers:
        nameservers, port = [], 53
        for item in settings.dns_resolvers:
            host, _, port_text = item.partition(":")
            nameservers.append(host)
            port = int(port_text) if port_text else 53
        resolver.nameservers, resolver.port = nameservers, port
    resolver.lifetime = settings.dns_timeout_seconds
    try:
        answer = resolver.resolve(domain, "MX")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise RuntimeError(f"MX lookup failed: {exc}") from exc
    return [str(record.exchange).rstrip(".").lower() for record in answer]


_routers: dict[int, MxRouter] = {}


def router_for(settings: Any) -> MxRouter:
    """One router (and cache) per settings object."""
    router = _routers.get(id(settings))
    if router is None or router.settings is not settings:
        router = _routers[id(settings)] = MxRouter(settings)
    return router
