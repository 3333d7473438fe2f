"""MX checks against a local DNS server: MX, RFC 5321 address fallback, null MX, NXDOMAIN,
timeouts, caching."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from dnslib import MX, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver

from tests.dnszone import serve_dns

from leadgen.config import load_settings
from leadgen.enrich.mx import MxChecker

QUERIES: list[str] = []


class _Zone(BaseResolver):
    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        qtype = request.q.qtype
        QUERIES.append(f"{name}/{QTYPE[qtype]}")
        if name == "good.ru" and qtype == QTYPE.MX:
            reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX("mx2.good.ru", 20), ttl=60))
            reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX("mx1.good.ru", 10), ttl=60))
        elif name == "nullmx.ru" and qtype == QTYPE.MX:
            reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX(".", 0), ttl=60))
        elif name == "aonly.ru" and qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("93.184.216.34"), ttl=60))
        elif name not in {"good.ru", "nullmx.ru", "aonly.ru", "bare.ru"}:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@pytest.fixture(scope="module")
def dns_address() -> Iterator[str]:
    with serve_dns(_Zone()) as address:
        yield address


def test_mx_statuses(dns_address: str) -> None:
    mx = MxChecker(load_settings(dns_resolvers=dns_address))
    assert mx.check("good.ru") is True
    assert mx.mx_hosts("GOOD.ru.") == ["mx1.good.ru", "mx2.good.ru"]
    assert mx.check("aonly.ru") is True and mx.mx_hosts("aonly.ru") == ["aonly.ru"]
    assert mx.check("nullmx.ru") is False
    assert mx.check("missing.ru") is False
    assert mx.check("bare.ru") is False  # exists, but neither MX nor an address
    assert mx.check("") is False


def test_mx_results_are_cached(dns_address: str) -> None:
    mx = MxChecker(load_settings(dns_resolvers=dns_address))
    QUERIES.clear()
    for _ in range(5):
        mx.check("good.ru")
    assert QUERIES == ["good.ru/MX"]


def test_dns_timeout_is_unknown() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        mx = MxChecker(load_settings(dns_resolvers=f"127.0.0.1:{port}", dns_timeout_seconds=0.3))
        assert mx.check("good.ru") is None
        assert mx.mx_hosts("good.ru") == []
    finally:
        silent.close()
