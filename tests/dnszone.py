"""A tiny authoritative DNS server on loopback for tests (dnslib), serving a fixed zone."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dnslib import AAAA, QTYPE, RCODE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):
    """Answers A/AAAA from {name: ([ipv4…], [ipv6…])}; NXDOMAIN for other names."""

    def __init__(self, zone: dict[str, tuple[list[str], list[str]]]) -> None:
        self.zone = zone

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if name not in self.zone:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        v4, v6 = self.zone[name]
        for ip in v4 if request.q.qtype == QTYPE.A else []:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(ip), ttl=60))
        for ip in v6 if request.q.qtype == QTYPE.AAAA else []:
            reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(ip), ttl=60))
        return reply


@contextmanager
def serve_dns(resolver: BaseResolver) -> Iterator[str]:
    """Run `resolver` on a free loopback UDP port; yields "127.0.0.1:PORT"."""
    logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data",
                       logf=lambda *_: None)
    server = DNSServer(resolver, port=0, address="127.0.0.1", logger=logger)
    server.start_thread()
    try:
        yield f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.stop()
