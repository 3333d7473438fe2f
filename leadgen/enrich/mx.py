"""Does a mail domain accept mail? MX lookup with the RFC 5321 fallback to A/AAAA, cached.

`MxChecker.check(domain)` → True (has MX, or an address to fall back to), False (NXDOMAIN, null
MX, or neither MX nor address: undeliverable), None (DNS did not answer: unknown).
`mx_hosts(domain)` gives the mail hosts by preference (the outreach stage routes by them).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import dns.exception
import dns.resolver

from leadgen.config import Settings
from leadgen.enrich.netguard import make_resolver

OK, NONE, UNKNOWN = "ok", "none", "unknown"


@dataclass(frozen=True)
class MxResult:
    status: str  # ok | none | unknown
    hosts: tuple[str, ...] = ()


class MxChecker:
    """Thread-safe, LRU-with-TTL cached MX lookups through DNS_RESOLVERS (or the system's)."""

    def __init__(self, settings: Settings, *, ttl_seconds: float = 3600.0,
                 unknown_ttl_seconds: float = 60.0, maxsize: int = 20_000) -> None:
        self.resolver = make_resolver(settings, asynchronous=False)
        self.ttl = ttl_seconds
        self.unknown_ttl = unknown_ttl_seconds
        self.maxsize = maxsize
        self._cache: OrderedDict[str, tuple[float, MxResult]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, domain: str) -> bool | None:
        result = self.lookup(domain)
        return None if result.status == UNKNOWN else result.status == OK

    def mx_hosts(self, domain: str) -> list[str]:
        return list(self.lookup(domain).hosts)

    def lookup(self, domain: str) -> MxResult:
        key = domain.strip().lower().rstrip(".")
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                return hit[1]
        result = self._resolve(key)
        ttl = self.unknown_ttl if result.status == UNKNOWN else self.ttl
        with self._lock:
            self._cache[key] = (now + ttl, result)
            self._cache.move_to_end(key)
            while len(self._cache) > self.maxsize:
                self._cache.popitem(last=False)
        return result

    def _resolve(self, domain: str) -> MxResult:
        try:
            name = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return MxResult(NONE)
        if not name or "." not in name:
            return MxResult(NONE)
        try:
            answer = self.resolver.resolve(name, "MX", search=False)
        except dns.resolver.NXDOMAIN:
            return MxResult(NONE)
        except dns.resolver.NoAnswer:
            return self._address_fallback(name)
        except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout):
            return MxResult(UNKNOWN)
        except dns.exception.DNSException:
            return MxResult(UNKNOWN)
        records = sorted(answer, key=lambda r: (r.preference, str(r.exchange)))
        hosts = [str(r.exchange).rstrip(".").lower() for r in records]
        if not hosts or hosts == [""]:  # RFC 7505 null MX: "this domain accepts no mail"
            return MxResult(NONE)
        hosts = [h for h in hosts if h]
        return MxResult(OK, tuple(hosts))

    def _address_fallback(self, name: str) -> MxResult:
        """No MX: RFC 5321 §5.1 says deliver to the domain's own address, if it has one."""
        timeouts = 0
        for rdtype in ("A", "AAAA"):
            try:
                self.resolver.resolve(name, rdtype, search=False)
                return MxResult(OK, (name,))
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:
                timeouts += 1
        return MxResult(UNKNOWN if timeouts == 2 else NONE)
