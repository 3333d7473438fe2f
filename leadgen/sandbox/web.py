"""The synthetic web as an HTTP/1.1 forward proxy (asyncio, own thread, 127.0.0.1 only).

Clients use it as their proxy (`ENRICH_PROXY_URL`): absolute-form `GET http://host/path` is answered
from the `World`; `CONNECT host:443` is intercepted with a certificate for that host signed by the
sandbox CA, then HTTP/1.1 requests (keep-alive) are served inside the tunnel. The proxy never opens a
connection anywhere: hosts the sandbox DNS does not know get 502, and a request for a host whose
addresses are not synthetic (127.77.0.0/16), or for an IP literal, is counted in `stats["ssrf"]`
(the crawler should have refused it) and answered 403/502.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import urlsplit

from leadgen.sandbox.tls import SandboxCA
from leadgen.sandbox.world import World
from leadgen.sandbox.world_sites import Response

MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024


@dataclass
class WebFaults:
    """Extra faults on top of the site kinds (all off by default)."""

    error_rate: float = 0.0  # share of responses replaced by 503 Service Unavailable
    reset_rate: float = 0.0  # share of requests answered by dropping the connection
    extra_delay_ms: float = 0.0  # added to every response
    seed: int = 0


@dataclass(frozen=True)
class LogEntry:
    at: float  # time.monotonic()
    method: str
    scheme: str
    host: str
    target: str
    status: int  # 0 = connection reset


class _Close(Exception):
    pass


class WebServer:
    def __init__(self, world: World, ca: SandboxCA, latency_ms: float = 0,
                 faults: WebFaults | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.world = world
        self.ca = ca
        self.latency_ms = latency_ms
        self.faults = faults or WebFaults()
        self.host = host
        self.port = port
        self.stats: Counter[str] = Counter()
        self.log: deque[LogEntry] = deque(maxlen=200_000)
        self.ssrf_log: list[str] = []
        self._rng = random.Random(self.faults.seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def proxy_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> int:
        if self._thread is not None:
            return self.port
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="sandbox-web", daemon=True)
        self._thread.start()
        ready.wait()
        fut = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, self.host, self.port, backlog=1024, limit=MAX_HEAD),
            loop)
        self._server = fut.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        self._loop = self._thread = self._server = None

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def requests_for(self, host: str) -> list[LogEntry]:
        host = host.lower()
        return [e for e in list(self.log) if e.host == host]

    # -- connection handling ------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        self.stats["connections"] += 1
        try:
            await self._serve(reader, writer, scheme=None, tunnel_host=None)
        except (_Close, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError, OSError):
            pass
        except asyncio.CancelledError:
            return  # shutting down: end quietly (asyncio logs a cancelled client callback)
        except Exception:  # noqa: BLE001 - a bug must not kill the proxy; count it
            self.stats["internal_errors"] += 1
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str, str, dict[str, str]] | None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if e.partial.strip():
                raise _Close() from e
            return None
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise _Close()
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length:
            await reader.readexactly(min(length, 10_000_000))
        return parts[0].upper(), parts[1], parts[2], headers

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     scheme: str | None, tunnel_host: str | None) -> None:
        while True:
            head = await self._read_head(reader)
            if head is None:
                return
            method, target, version, headers = head
            if method == "CONNECT" and tunnel_host is None:
                await self._connect(reader, writer, target)
                return
            if tunnel_host is not None:
                host = (headers.get("host") or tunnel_host).split(":")[0].lower()
                path = target
                req_scheme = "https"
            else:
                url = urlsplit(target)
                if url.scheme not in ("http", "https") or not url.hostname:
                    self._write_simple(writer, 400, "absolute-form URL expected", close=True)
                    raise _Close()
                host = url.hostname.lower()
                path = (url.path or "/") + (f"?{url.query}" if url.query else "")
                req_scheme = url.scheme
            keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            keep = await self._respond(writer, method, req_scheme, host, path, keep,
                                       record=host != tunnel_host)
            await writer.drain()
            if not keep:
                raise _Close()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       authority: str) -> None:
        self.stats["connects"] += 1
        host, _, _port = authority.rpartition(":")
        host = (host or authority).strip("[]").lower()
        problem = self._check_host(host)
        if problem:
            status = 403 if problem == "ssrf-literal" else 502
            self._record("CONNECT", "https", host, authority, status)
            self._write_simple(writer, status, "sandbox proxy: " + problem, close=True)
            await writer.drain()
            raise _Close()
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        ctx = self.ca.server_context([host])
        await writer.start_tls(ctx, ssl_handshake_timeout=10)
        self.stats["tls_handshakes"] += 1
        await self._serve(reader, writer, scheme="https", tunnel_host=host)

    def _check_host(self, host: str, record: bool = True) -> str | None:
        """None if the host may be served; otherwise why not (records SSRF attempts)."""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            if record:
                self.stats["ssrf"] += 1
                self.ssrf_log.append(host)
            return "ssrf-literal"
        addrs = self.world.dns_a(host)
        if not addrs:
            return "unknown host"
        if record and (not all(self.world.is_synthetic_address(a) for a in addrs)
                       or self.world.dns_aaaa(host)):
            self.stats["ssrf"] += 1
            self.ssrf_log.append(host)
            if not all(self.world.is_synthetic_address(a) for a in addrs):
                return "private address"
        if self.world.site(host) is None:
            return "unknown host"
        return None

    def _record(self, method: str, scheme: str, host: str, target: str, status: int) -> None:
        self.stats["requests"] += 1
        self.stats[f"status_{status}"] += 1
        self.log.append(LogEntry(time.monotonic(), method, scheme, host, target, status))

    async def _respond(self, writer: asyncio.StreamWriter, method: str, scheme: str, host: str,
                       target: str, keep: bool, record: bool = True) -> bool:
        if method not in ("GET", "HEAD"):
            self._record(method, scheme, host, target, 405)
            self._write_simple(writer, 405, "method not allowed", close=not keep)
            return keep
        problem = self._check_host(host, record)
        if problem:
            status = 403 if problem == "ssrf-literal" else 502
            self._record(method, scheme, host, target, status)
            self._write_simple(writer, status, "sandbox proxy: " + problem, close=not keep)
            return keep
        site = self.world.site(host)
        assert site is not None
        resp: Response = site.respond(scheme, host, target)
        f = self.faults
        if f.reset_rate and self._rng.random() < f.reset_rate:
            resp = Response(0, (), reset=True)
        elif f.error_rate and self._rng.random() < f.error_rate:
            resp = Response(503, (("Content-Type", "text/html"), ("Retry-After", "30")),
                            b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
        delay = resp.delay + (self.latency_ms + f.extra_delay_ms) / 1000
        if delay > 0:
            await asyncio.sleep(delay)
        self._record(method, scheme, host, target, resp.status)
        if resp.reset:
            writer.transport.abort()
            raise _Close()
        total = resp.stream_total or len(resp.body)
        head = [f"HTTP/1.1 {resp.status} {_phrase(resp.status)}", f"Date: {formatdate(usegmt=True)}"]
        head += [f"{k}: {v}" for k, v in resp.headers]
        head.append(f"Content-Length: {total}")
        head.append("Connection: keep-alive" if keep else "Connection: close")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("utf-8"))
        if method == "HEAD":
            return keep
        writer.write(resp.body)
        self.stats["bytes"] += len(resp.body)
        if resp.stream_total:
            sent = len(resp.body)
            filler = resp.stream_filler * max(1, CHUNK // max(1, len(resp.stream_filler)))
            while sent < total:
                piece = filler[: total - sent]
                writer.write(piece)
                sent += len(piece)
                self.stats["bytes"] += len(piece)
                await writer.drain()
        return keep

    @staticmethod
    def _write_simple(writer: asyncio.StreamWriter, status: int, text: str, close: bool) -> None:
        body = f"<html><body><h1>{status} {_phrase(status)}</h1><p>{text}</p></body></html>".encode()
        writer.write((f"HTTP/1.1 {status} {_phrase(status)}\r\nContent-Type: text/html\r\n"
                      f"Content-Length: {len(body)}\r\n"
                      f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n").encode() + body)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
