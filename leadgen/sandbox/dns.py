"""Authoritative DNS for the synthetic web (dnslib, UDP + TCP on 127.0.0.1, own threads).

Answers A/AAAA/MX/NS/SOA from the `World`: synthetic hosts resolve to 127.77.0.0/16 (stable per
host), trap hosts to 10.x, 127.0.0.1 or `::1`; company domains have Yandex/Mail.ru/Google/own MX or
none; free-mail domains have MX; unknown names are NXDOMAIN. Point a resolver at `.address`
(`DNS_RESOLVERS=127.0.0.1:PORT`).
"""

from __future__ import annotations

import contextlib
import threading

from dnslib import AAAA, MX, NS, QTYPE, RCODE, RR, SOA, A, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from leadgen.sandbox.world import World

TTL = 300


class _QuietLogger(DNSLogger):
    def __init__(self) -> None:
        super().__init__(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False,
                         logf=lambda *_: None)


class WorldResolver(BaseResolver):
    def __init__(self, world: World) -> None:
        self.world = world
        self.queries = 0
        self._lock = threading.Lock()

    def _soa(self, name: str) -> RR:
        zone = ".".join(name.split(".")[-2:]) or "sandbox"
        return RR(zone, QTYPE.SOA, ttl=TTL, rdata=SOA(f"ns1.{zone}", f"hostmaster.{zone}",
                                                      (2025010101, 3600, 600, 86400, TTL)))

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        with self._lock:
            self.queries += 1
        reply = request.reply()
        qname: DNSLabel = request.q.qname
        qtype = request.q.qtype
        name = str(qname).rstrip(".").lower()
        w = self.world
        a, aaaa, mx = w.dns_a(name), w.dns_aaaa(name), w.dns_mx(name)
        if not (a or aaaa or mx):
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(self._soa(name))
            return reply
        want_any = qtype == QTYPE.ANY
        if qtype == QTYPE.A or want_any:
            for ip in a:
                reply.add_answer(RR(qname, QTYPE.A, ttl=TTL, rdata=A(ip)))
        if qtype == QTYPE.AAAA or want_any:
            for ip in aaaa:
                reply.add_answer(RR(qname, QTYPE.AAAA, ttl=TTL, rdata=AAAA(ip)))
        if qtype == QTYPE.MX or want_any:
            for pref, host in mx:
                reply.add_answer(RR(qname, QTYPE.MX, ttl=TTL, rdata=MX(host, pref)))
                for ip in w.dns_a(host):
                    reply.add_ar(RR(host, QTYPE.A, ttl=TTL, rdata=A(ip)))
        if qtype == QTYPE.NS:
            zone = ".".join(name.split(".")[-2:])
            reply.add_answer(RR(qname, QTYPE.NS, ttl=TTL, rdata=NS(f"ns1.{zone}")))
        if not reply.rr:
            reply.add_auth(self._soa(name))  # NODATA
        return reply


class DnsServer:
    def __init__(self, world: World, host: str = "127.0.0.1", port: int = 0, tcp: bool = True) -> None:
        self.world = world
        self.host = host
        self.port = port
        self.tcp = tcp
        self.resolver = WorldResolver(world)
        self._servers: list[DNSServer] = []

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def queries(self) -> int:
        return self.resolver.queries

    def start(self) -> int:
        if self._servers:
            return self.port
        logger = _QuietLogger()
        for _attempt in range(20):
            udp = DNSServer(self.resolver, port=self.port, address=self.host, logger=logger)
            port = udp.server.server_address[1]
            if not self.tcp:
                self._servers = [udp]
                break
            try:
                tcp = DNSServer(self.resolver, port=port, address=self.host, logger=logger, tcp=True)
            except OSError:
                udp.server.server_close()
                if self.port:
                    raise
                continue
            self._servers = [udp, tcp]
            break
        else:
            raise OSError("no free port for the sandbox DNS (UDP and TCP)")
        self.port = port
        for s in self._servers:
            s.start_thread()
        return port

    def stop(self) -> None:
        for s in self._servers:
            with contextlib.suppress(Exception):
                s.stop()
                s.server.server_close()
        self._servers = []

    def __enter__(self) -> DnsServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
