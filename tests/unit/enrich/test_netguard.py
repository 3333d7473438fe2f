"""SSRF guard: IP literals in every spelling, DNS names resolving to private space, the allowlist."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.dnszone import ZoneResolver, serve_dns

from leadgen.config import load_settings
from leadgen.enrich.netguard import (
    BlockedAddress,
    NetGuard,
    ResolveError,
    address_allowed,
    parse_ip_literal,
    parse_networks,
)

ZONE = {
    "public.test": (["93.184.216.34"], []),
    "loop.test": (["127.0.0.1"], []),
    "meta.test": (["169.254.169.254"], []),
    "ten.test": (["10.1.2.3"], []),
    "v6loop.test": ([], ["::1"]),
    "mixed.test": (["93.184.216.34", "192.168.1.10"], []),
    "sandbox.test": (["127.77.1.2"], []),
    "sandbox-v6.test": (["127.77.1.3"], ["::1"]),
}


@pytest.fixture(scope="module")
def dns_address() -> Iterator[str]:
    with serve_dns(ZoneResolver(ZONE)) as address:
        yield address


def guard(dns_address: str, allowed: str = "") -> NetGuard:
    return NetGuard(load_settings(dns_resolvers=dns_address, enrich_allowed_networks=allowed,
                                  dns_timeout_seconds=2))


def resolve(g: NetGuard, host: str):  # type: ignore[no-untyped-def]
    return asyncio.run(g.resolve(host))


@pytest.mark.parametrize("literal, expected", [
    ("127.0.0.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
    ("0x7F.0.0.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"), ("127.1", "127.0.0.1"),
    ("[::1]", "::1"), ("::ffff:127.0.0.1", "::ffff:7f00:1"), ("169.254.169.254", "169.254.169.254"),
    ("0", "0.0.0.0"), ("10.0.0.1.", "10.0.0.1"),
])
def test_ip_literals_in_every_spelling(literal: str, expected: str) -> None:
    assert str(parse_ip_literal(literal)) == expected


def test_names_are_not_literals() -> None:
    assert parse_ip_literal("example.ru") is None
    assert parse_ip_literal("face.be") is None
    assert parse_ip_literal("1x.ru") is None


@pytest.mark.parametrize("host", [
    "127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::1]", "::1",
    "169.254.169.254", "10.0.0.5", "10.255.255.255", "192.168.0.1", "172.16.5.4", "0.0.0.0",
    "100.64.0.1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fe80::1", "fc00::1", "224.0.0.1",
    "localhost", "db.localhost", "printer.local",
])
def test_private_literals_and_local_names_blocked(host: str) -> None:
    g = NetGuard(load_settings())
    with pytest.raises(BlockedAddress):
        resolve(g, host)


def test_public_literal_allowed() -> None:
    g = NetGuard(load_settings())
    assert resolve(g, "93.184.216.34").connect_ip == "93.184.216.34"
    assert resolve(g, "[2606:2800:220:1:248:1893:25c8:1946]").connect_ip.startswith("2606:")


@pytest.mark.parametrize("host", ["loop.test", "meta.test", "ten.test", "v6loop.test", "mixed.test"])
def test_dns_names_resolving_to_private_space_blocked(dns_address: str, host: str) -> None:
    with pytest.raises(BlockedAddress):
        resolve(guard(dns_address), host)


def test_dns_name_resolving_public_allowed_and_cached(dns_address: str) -> None:
    g = guard(dns_address)
    first = resolve(g, "PUBLIC.test.")
    assert first.connect_ip == "93.184.216.34"
    ZONE["public.test"] = (["10.9.9.9"], [])  # a rebinding attempt within one crawl is not seen
    try:
        assert resolve(g, "public.test").connect_ip == "93.184.216.34"
        with pytest.raises(BlockedAddress):
            resolve(guard(dns_address), "public.test")
    finally:
        ZONE["public.test"] = (["93.184.216.34"], [])


def test_unknown_name_is_unreachable_not_blocked(dns_address: str) -> None:
    with pytest.raises(ResolveError):
        resolve(guard(dns_address), "nowhere.test")


def test_allowlist_opens_only_its_network(dns_address: str) -> None:
    g = guard(dns_address, "127.77.0.0/16")
    assert resolve(g, "sandbox.test").connect_ip == "127.77.1.2"
    assert resolve(g, "127.77.3.4").connect_ip == "127.77.3.4"
    for host in ("loop.test", "127.0.0.1", "meta.test", "sandbox-v6.test", "127.78.0.1"):
        with pytest.raises(BlockedAddress):
            resolve(g, host)
    with pytest.raises(BlockedAddress):  # without the allowlist the sandbox is private space
        resolve(guard(dns_address), "sandbox.test")


def test_address_allowed_rules() -> None:
    import ipaddress

    nets = parse_networks(["127.77.0.0/16", "fd00::/8"])
    assert address_allowed(ipaddress.ip_address("127.77.0.9"), nets)
    assert address_allowed(ipaddress.ip_address("fd00::5"), nets)
    assert address_allowed(ipaddress.ip_address("::ffff:127.77.0.9"), nets)
    assert not address_allowed(ipaddress.ip_address("127.0.0.1"), nets)
    assert address_allowed(ipaddress.ip_address("8.8.8.8"), [])


@pytest.mark.parametrize("address", [
    "64:ff9b::a9fe:a9fe",   # NAT64 of 169.254.169.254 (is_global in Python's table)
    "64:ff9b::7f00:1",      # NAT64 of 127.0.0.1
    "2002:a9fe:a9fe::1",    # 6to4 of the metadata address
    "2002:0a00:0001::",     # 6to4 of 10.0.0.1
    "::7f00:1",             # IPv4-compatible 127.0.0.1
])
def test_ipv6_wrappers_of_private_ipv4_blocked(address: str) -> None:
    import ipaddress

    assert not address_allowed(ipaddress.ip_address(address), [])


def test_ipv6_wrappers_of_public_ipv4_allowed() -> None:
    import ipaddress

    assert address_allowed(ipaddress.ip_address("64:ff9b::808:808"), [])
    assert address_allowed(ipaddress.ip_address("2002:808:808::1"), [])
