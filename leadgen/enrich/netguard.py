"""SSRF guard: a host is fetched only when every address it resolves to is public.

Hosts are resolved with dnspython (DNS_RESOLVERS, or the system's resolv.conf when empty), IP
literals are parsed the way a socket library would read them (decimal `2130706433`, hex
`0x7f000001`, octal `0177.0.0.1`, short `127.1`, bracketed IPv6), and every address must be
`is_global` or inside ENRICH_ALLOWED_NETWORKS. The sandbox runs on loopback only because its
network is in that allowlist: there is no other bypass.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from leadgen.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DNS_PARALLEL = 32  # queries in flight at once (a burst of hundreds loses UDP packets)
_NUMERIC_V4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)


class BlockedAddress(Exception):
    """The host resolves to an address we must not connect to."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class ResolveError(Exception):
    """The host does not resolve (NXDOMAIN, no address, DNS timeout)."""


@dataclass(frozen=True)
class Resolved:
    host: str
    addresses: tuple[IPAddress, ...]

    @property
    def connect_ip(self) -> str:
        """The address to connect to (IPv4 first)."""
        ordered = sorted(self.addresses, key=lambda ip: ip.version)
        return str(ordered[0])


def parse_networks(values: list[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(value.strip(), strict=False) for value in values if value.strip()]


def parse_ip_literal(host: str) -> IPAddress | None:
    """An IP written in any form a resolver library accepts, or None for a DNS name."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.split("%", 1)[0]  # IPv6 zone id
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except (OSError, ValueError):
            raise BlockedAddress(host, "unparseable numeric host") from None
    return None


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address reaches through a translator or tunnel (NAT64, 6to4,
    Teredo, IPv4-compatible): Python counts several of these prefixes as global."""
    found = []
    if ip in _NAT64 or ip in _V4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def address_allowed(ip: IPAddress, allowed: list[IPNetwork]) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed if net.version == ip.version):
        return True
    if isinstance(ip, ipaddress.IPv6Address) and not all(
            address_allowed(inner, allowed) for inner in _embedded_ipv4(ip)):
        return False
    return ip.is_global and not ip.is_multicast


def _resolver_nameservers(values: list[str]) -> tuple[list[str], int | None]:
    hosts: list[str] = []
    port: int | None = None
    for value in values:
        value = value.strip()
        if not value:
            continue
        host, sep, tail = value.rpartition(":")
        if sep and tail.isdigit() and (host.count(":") == 0 or host.startswith("[")):
            hosts.append(host.strip("[]"))
            port = int(tail)
        else:
            hosts.append(value.strip("[]"))
    return hosts, port


def make_resolver(settings: Settings, *, asynchronous: bool = True):  # type: ignore[no-untyped-def]
    """A dnspython resolver from DNS_RESOLVERS ("host" or "host:port"), or the system one."""
    cls = dns.asyncresolver.Resolver if asynchronous else dns.resolver.Resolver
    hosts, port = _resolver_nameservers(settings.dns_resolvers)
    if hosts:
        resolver = cls(configure=False)
        resolver.nameservers = hosts
        if port:
            resolver.port = port
    else:
        resolver = cls()
    # Several tries within the lifetime: one lost UDP packet must not cost the whole budget.
    resolver.lifetime = settings.dns_timeout_seconds
    resolver.timeout = max(0.2, settings.dns_timeout_seconds / 4)
    return resolver


class NetGuard:
    """Resolve-and-check, cached per host for the life of one crawl."""

    def __init__(self, settings: Settings) -> None:
        self.allowed = parse_networks(settings.enrich_allowed_networks)
        self.resolver = make_resolver(settings)
        self._cache: dict[str, Resolved | Exception] = {}
        self._queries = asyncio.Semaphore(DNS_PARALLEL)

    def check_ip(self, ip: IPAddress, host: str) -> None:
        if not address_allowed(ip, self.allowed):
            raise BlockedAddress(host, f"non-public address {ip}")

    async def resolve(self, host: str) -> Resolved:
        """Every address of `host`, all checked; raises BlockedAddress or ResolveError."""
        key = host.strip().lower().rstrip(".")
        cached = self._cache.get(key)
        if isinstance(cached, Exception):
            raise cached
        if cached is not None:
            return cached
        try:
            result = await self._resolve(key)
        except (BlockedAddress, ResolveError) as exc:
            self._cache[key] = exc
            raise
        self._cache[key] = result
        return result

    async def _resolve(self, host: str) -> Resolved:
        if not host:
            raise BlockedAddress(host, "empty host")
        literal = parse_ip_literal(host)
        if literal is not None:
            self.check_ip(literal, host)
            return Resolved(host, (literal,))
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise BlockedAddress(host, "local name")
        try:
            name = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise ResolveError(f"{host}: not a valid host name") from None
        answers = await asyncio.gather(
            self._query(name, "A"), self._query(name, "AAAA"), return_exceptions=True
        )
        addresses: list[IPAddress] = []
        timeouts = 0
        for answer in answers:
            if isinstance(answer, dns.exception.Timeout):
                timeouts += 1
            elif isinstance(answer, BaseException):
                continue
            else:
                addresses.extend(answer)
        if not addresses:
            raise ResolveError(f"{host}: {'DNS timeout' if timeouts else 'no address'}")
        for ip in addresses:
            self.check_ip(ip, host)
        return Resolved(host, tuple(addresses))

    async def _query(self, name: str, rdtype: str) -> list[IPAddress]:
        try:
            async with self._queries:
                answer = await self.resolver.resolve(name, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer, dns.resolver.NoNameservers):
            return []
        return [ipaddress.ip_address(record.address) for record in answer]
