"""The sandbox DNS answers dnspython like a real authoritative server."""

from __future__ import annotations

from collections.abc import Iterator

import dns.resolver
import pytest

from leadgen.sandbox.dns import DnsServer
from leadgen.sandbox.world import Company, World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[DnsServer]:
    with DnsServer(world) as s:
        yield s


@pytest.fixture()
def resolver(server: DnsServer) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = server.port
    r.lifetime = 3
    return r


def company(world: World, kind: str, mx: str | None = None) -> Company:
    return next(c for c in world.companies() if c.kind == kind and (mx is None or c.mx == mx))


def a(resolver: dns.resolver.Resolver, name: str, rdtype: str = "A", tcp: bool = False) -> list[str]:
    return sorted(r.to_text() for r in resolver.resolve(name, rdtype, tcp=tcp))


def test_address(server: DnsServer) -> None:
    host, port = server.address.split(":")
    assert host == "127.0.0.1" and int(port) == server.port > 0


def test_a_records_are_synthetic_and_stable(world: World, resolver: dns.resolver.Resolver) -> None:
    c = company(world, "normal")
    got = a(resolver, c.domain)
    assert got == world.dns_a(c.domain) and got[0].startswith("127.77.")
    assert a(resolver, f"www.{c.domain}")[0].startswith("127.77.")
    assert a(resolver, c.domain.upper() + ".") == got
    assert a(resolver, c.domain, tcp=True) == got


def test_mx_records(world: World, resolver: dns.resolver.Resolver) -> None:
    y = company(world, "normal", "yandex")
    assert a(resolver, y.domain, "MX") == ["10 mx.yandex.net."]
    g = company(world, "normal", "google")
    assert "1 aspmx.l.google.com." in a(resolver, g.domain, "MX")
    own = company(world, "normal", "own")
    assert a(resolver, own.domain, "MX") == [f"10 mail.{own.domain}."]
    assert a(resolver, f"mail.{own.domain}")[0].startswith("127.77.")
    assert a(resolver, "mail.ru", "MX") == ["10 mxs.mail.ru."]
    assert a(resolver, "gmail.com", "MX")
    assert a(resolver, "mx.yandex.net")[0].startswith("127.77.")
    none = company(world, "normal", "none")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve(none.domain, "MX")
    assert a(resolver, none.domain)  # A-only domain


def test_nxdomain(world: World, resolver: dns.resolver.Resolver) -> None:
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("there-is-no-such-company.ru", "A")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve(company(world, "nxdomain").domain, "A")
    with pytest.raises(dns.resolver.NXDOMAIN):
        resolver.resolve("random-sub." + company(world, "normal").domain, "A")


def test_trap_addresses(world: World, resolver: dns.resolver.Resolver) -> None:
    private = company(world, "dns_private")
    addr = a(resolver, private.domain)[0]
    assert addr == "127.0.0.1" or addr.startswith("10.")
    v6 = company(world, "dns_ipv6_loopback")
    assert a(resolver, v6.domain, "AAAA") == ["::1"]
    assert a(resolver, v6.domain)[0].startswith("127.77.")
    normal = company(world, "normal")
    with pytest.raises(dns.resolver.NoAnswer):
        resolver.resolve(normal.domain, "AAAA")
    trap = next(c for c in world.companies()
                if c.kind == "redirect_private" and c.private_target == "intranet")
    assert a(resolver, f"intranet.{trap.domain}")[0].startswith("10.")
