"""Async page fetcher: safe (SSRF guard on every hop), bounded (time, bytes, redirects), polite
(robots.txt, one request at a time per host with a delay) and proxy-aware (failover).

Without a proxy the connection goes to the address the guard checked (no second lookup, so no
DNS rebinding), with the host name kept for the Host header, SNI and certificate checks. With a
proxy the proxy connects; the guard has already checked the name through DNS_RESOLVERS.

robots.txt (RFC 9309): 2xx is parsed; 4xx means no rules (allow all); 5xx means "unavailable"
and we assume complete disallow for this crawl (the site is retried later as unreachable).
"""

from __future__ import annotations

import asyncio
import codecs
import re
import ssl
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import certifi
import httpcore
import httpx
from charset_normalizer import from_bytes

from leadgen.config import Settings
from leadgen.enrich.netguard import BlockedAddress, NetGuard, ResolveError

HTML_TYPES = ("text/html", "application/xhtml+xml")
REDIRECTS = {301, 302, 303, 307, 308}
ROBOTS_MAX_BYTES = 512_000
SITES_PER_SHARD = 8
MAX_CRAWL_DELAY = 2.0  # cap on a site's Crawl-delay so one site cannot stall a batch
ROBOTS_AGENT = "leadgen"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.I)
_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _utf8_cp1251_fallback(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    bad = exc.object[exc.start:exc.end]
    return bytes(bad).decode("cp1251", errors="replace"), exc.end


_MIXED = "leadgen-utf8-cp1251"
codecs.register_error(_MIXED, _utf8_cp1251_fallback)


@dataclass
class FetchResult:
    """What one page fetch gave. `error` is None on success, else one of: blocked, unreachable,
    timeout, http_<code>, too_large, not_html, robots, robots_unavailable, redirects, bad_url."""

    url: str
    final_url: str
    status: int | None = None
    html: str | None = None
    encoding: str | None = None
    error: str | None = None
    detail: str = ""
    redirects: int = 0
    bytes_read: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.html is not None


@dataclass
class _Hop:
    status: int
    headers: httpx.Headers
    body: bytes = b""
    location: str | None = None
    error: str | None = None
    detail: str = ""


@dataclass
class FetchStats:
    requests: int = 0
    pages: int = 0
    bytes: int = 0
    failovers: int = 0
    errors: dict[str, int] = field(default_factory=dict)


class _Failure(Exception):
    def __init__(self, error: str, detail: str = "") -> None:
        super().__init__(f"{error}: {detail}")
        self.error = error
        self.detail = detail


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """Default CAs (certifi) plus ENRICH_CA_FILE when set."""
    ctx = ssl.create_default_context(cafile=certifi.where())
    if settings.enrich_ca_file:
        ctx.load_verify_locations(cafile=settings.enrich_ca_file)
    return ctx


def decode_html(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Bytes → text: BOM, then the header charset, then <meta charset>, then UTF-8 if it decodes,
    then charset-normalizer (cp1251 is common on Russian sites)."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return body[len(bom):].decode(name, errors="replace"), name
    declared = []
    if content_type:
        match = re.search(r"charset\s*=\s*[\"']?([\w\-:.]+)", content_type, re.I)
        if match:
            declared.append(match.group(1))
    meta = _META_CHARSET.search(body[:4096])
    if meta:
        declared.append(meta.group(1).decode("ascii", "ignore"))
    for name in declared:
        try:
            codec = codecs.lookup(name).name
        except LookupError:
            continue
        if codec in {"utf-8", "ascii"}:
            try:
                return body.decode("utf-8"), "utf-8"
            except UnicodeDecodeError:
                # Mostly UTF-8 with cp1251 parts (a CMS template around legacy content).
                return body.decode("utf-8", errors=_MIXED), "utf-8+cp1251"
        return body.decode(codec, errors="replace"), codec
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(body[:200_000], cp_isolation=["cp1251", "koi8_r", "cp866", "utf_8", "latin_1"]).best()
    codec = best.encoding if best is not None else "cp1251"
    return body.decode(codec, errors="replace"), codec


class Fetcher:
    """One per crawl: shared clients (one per proxy), host slots, robots and DNS caches."""

    def __init__(self, settings: Settings, guard: NetGuard | None = None) -> None:
        self.settings = settings
        self.guard = guard or NetGuard(settings)
        self.proxies: list[str | None] = list(settings.enrich_proxy_url) or [None]
        ctx = ssl_context(settings)
        # httpcore scans its whole pool on every request, so one big pool costs O(n²) at high
        # concurrency: each proxy gets a few small pools (shards), a host always the same one.
        self.shards = max(1, settings.enrich_concurrency // SITES_PER_SHARD)
        limits = httpx.Limits(
            max_connections=SITES_PER_SHARD * 4,
            max_keepalive_connections=SITES_PER_SHARD * 2,
            keepalive_expiry=5,
        )
        timeout = httpx.Timeout(settings.enrich_timeout_seconds)
        headers = {
            "User-Agent": settings.enrich_user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            "Accept-Language": "ru,en;q=0.7",
        }
        self.clients: list[list[httpx.AsyncClient]] = []
        for proxy in self.proxies:
            shards = []
            for _shard in range(self.shards):
                transport = httpx.AsyncHTTPTransport(verify=ctx, limits=limits, trust_env=False,
                                                     proxy=proxy)
                if proxy is None:
                    # Direct connections go to the address the guard checked (PinnedBackend).
                    transport._pool = httpcore.AsyncConnectionPool(
                        ssl_context=ctx,
                        max_connections=limits.max_connections,
                        max_keepalive_connections=limits.max_keepalive_connections,
                        keepalive_expiry=limits.keepalive_expiry,
                        network_backend=PinnedBackend(self.guard),
                    )
                shards.append(httpx.AsyncClient(
                    transport=transport, trust_env=False, follow_redirects=False,
                    timeout=timeout, headers=headers,
                ))
            self.clients.append(shards)
        self._preferred = 0
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._host_next: dict[str, float] = {}
        self._host_delay: dict[str, float] = {}
        self._robots: dict[str, RobotFileParser | str | None] = {}
        self._robots_locks: dict[str, asyncio.Lock] = {}
        self.stats = FetchStats()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for shards in self.clients:
            for client in shards:
                await client.aclose()

    # --- public ----------------------------------------------------------------------------

    async def fetch(self, url: str, *, check_robots: bool = True) -> FetchResult:
        """GET an HTML page: redirects followed by hand (each hop guarded and robots-checked)."""
        result = FetchResult(url=url, final_url=url)
        try:
            await self._fetch_into(result, url, check_robots)
        except _Failure as failure:
            result.error, result.detail = failure.error, failure.detail
        if result.error:
            self.stats.errors[result.error] = self.stats.errors.get(result.error, 0) + 1
        else:
            self.stats.pages += 1
        return result

    async def robots_allows(self, url: str) -> bool:
        """True when robots.txt lets us fetch `url`; raises _Failure when it is unavailable."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        lock = self._robots_locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self._robots:
                self._robots[origin] = await self._load_robots(origin)
        rules = self._robots[origin]
        if rules is None:
            return True
        if isinstance(rules, str):
            raise _Failure("robots_unavailable", rules)
        return rules.can_fetch(ROBOTS_AGENT, url)

    # --- internals -------------------------------------------------------------------------

    async def _fetch_into(self, result: FetchResult, url: str, check_robots: bool) -> None:
        budget = self.settings.enrich_timeout_seconds
        for hop in range(self.settings.enrich_max_redirects + 1):
            _split(url)
            if check_robots and self.settings.enrich_respect_robots:
                if not await self.robots_allows(url):
                    raise _Failure("robots", url)
            started = time.monotonic()
            response = await self._request(url, max_bytes=self.settings.enrich_max_bytes,
                                           html_only=True, budget=budget)
            budget -= time.monotonic() - started
            result.final_url, result.status, result.redirects = url, response.status, hop
            if response.location is not None:
                if budget <= 0:
                    raise _Failure("timeout", "redirect chain")
                try:
                    url = urljoin(url, response.location)
                except ValueError:
                    raise _Failure("bad_url", response.location) from None
                if _split(url).scheme not in {"http", "https"}:
                    raise _Failure("bad_url", f"redirect to {url[:200]}")
                continue
            if response.status >= 400:
                raise _Failure(f"http_{response.status}", url)
            if response.error and response.error != "too_large":
                raise _Failure(response.error, response.detail)
            result.bytes_read = len(response.body)
            result.html, result.encoding = decode_html(
                response.body, response.headers.get("content-type")
            )
            if response.error:  # too_large: a truncated page, still readable
                result.error, result.detail = response.error, response.detail
            return
        raise _Failure("redirects", f"more than {self.settings.enrich_max_redirects}")

    async def _load_robots(self, origin: str) -> RobotFileParser | str | None:
        """Rules of one origin (redirects followed). When robots.txt redirects to another
        origin's robots.txt (bare domain → www), the rules are kept for that origin too."""
        url = origin + "/robots.txt"
        final_origin = origin
        for _hop in range(5):
            try:
                response = await self._request(url, max_bytes=ROBOTS_MAX_BYTES, html_only=False,
                                               budget=self.settings.enrich_timeout_seconds)
            except _Failure as failure:
                if failure.error == "too_large":
                    return None
                raise
            if response.location is not None:
                url = urljoin(url, response.location)
                target = _split(url)
                if target.scheme not in {"http", "https"}:
                    return None
                final_origin = f"{target.scheme}://{target.netloc}" if target.path == "/robots.txt" else ""
                if final_origin in self._robots:
                    return self._robots[final_origin]
                continue
            rules: RobotFileParser | str | None
            if response.status >= 500:
                rules = f"robots.txt answered {response.status}"
            elif response.status >= 400:
                rules = None
            else:
                text, _ = decode_html(response.body, response.headers.get("content-type"))
                rules = RobotFileParser()
                rules.parse(text.splitlines())
                delay = rules.crawl_delay(ROBOTS_AGENT)
                if delay:
                    host = _split(final_origin or origin).hostname or ""
                    self._host_delay[host] = min(float(delay), MAX_CRAWL_DELAY)
            if final_origin and final_origin != origin:
                self._robots.setdefault(final_origin, rules)
            return rules
        return None  # a redirect loop on robots.txt: treat as no rules

    async def _request(self, url: str, *, max_bytes: int, html_only: bool, budget: float) -> _Hop:
        parts = _split(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise _Failure("bad_url", url[:200])
        host = parts.hostname
        try:
            await self.guard.resolve(host)
        except BlockedAddress as exc:
            raise _Failure("blocked", str(exc)) from None
        except ResolveError as exc:
            raise _Failure("unreachable", str(exc)) from None
        if budget <= 0:
            raise _Failure("timeout", url)
        order = [(self._preferred + i) % len(self.proxies) for i in range(len(self.proxies))]
        last: _Hop | _Failure | None = None
        for attempt, index in enumerate(order):
            if attempt:
                self.stats.failovers += 1
            async with _HostSlot(self, host, counts=html_only):
                try:
                    async with asyncio.timeout(budget):
                        hop = await self._one(index, url, max_bytes, html_only)
                except (TimeoutError, httpx.TimeoutException):
                    last = _Failure("timeout", url)
                    if self.proxies[index] is None:
                        break
                    continue
                except (httpx.ProxyError, httpx.TransportError, OSError, ssl.SSLError) as exc:
                    last = _Failure("unreachable", f"{type(exc).__name__}: {exc}"[:300])
                    continue
            if hop.status in {403, 429} and attempt + 1 < len(order):
                last = hop
                continue
            if attempt and hop.status < 400:
                self._preferred = index  # this proxy works: start with it next time
            return hop
        if isinstance(last, _Failure):
            raise last
        assert last is not None
        return last

    async def _one(self, index: int, url: str, max_bytes: int, html_only: bool) -> _Hop:
        host = urlsplit(url).hostname or ""
        client = self.clients[index][zlib.crc32(host.encode()) % self.shards]
        self.stats.requests += 1
        response = await client.send(client.build_request("GET", url), stream=True)
        try:
            status = response.status_code
            if status in REDIRECTS and response.headers.get("location"):
                return _Hop(status, response.headers, location=response.headers["location"])
            if status >= 400:
                return _Hop(status, response.headers)
            ctype = (response.headers.get("content-type") or "").split(";")[0].strip().lower()
            if html_only and ctype and ctype not in HTML_TYPES:
                return _Hop(status, response.headers, error="not_html", detail=ctype)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    # Abort; the first max_bytes are kept (a huge page's header still has links).
                    chunks.append(chunk[: len(chunk) - (size - max_bytes)])
                    self.stats.bytes += max_bytes
                    return _Hop(status, response.headers, body=b"".join(chunks),
                                error="too_large", detail=f"more than {max_bytes} bytes")
                chunks.append(chunk)
            body = b"".join(chunks)
            self.stats.bytes += size
            if html_only and not ctype and not body.lstrip()[:1] == b"<":
                return _Hop(status, response.headers, error="not_html", detail="no content type")
            return _Hop(status, response.headers, body=body)
        finally:
            await response.aclose()


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Connects a host name only to the address the guard resolved and checked for it."""

    def __init__(self, guard: NetGuard) -> None:
        self.guard = guard
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options=None) -> httpcore.AsyncNetworkStream:  # type: ignore[no-untyped-def]
        try:
            resolved = await self.guard.resolve(host)
        except (BlockedAddress, ResolveError) as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return await self.inner.connect_tcp(resolved.connect_ip, port, timeout=timeout,
                                            local_address=local_address,
                                            socket_options=socket_options)

    async def connect_unix_socket(self, *_args, **_kwargs):  # type: ignore[no-untyped-def]
        raise httpcore.ConnectError("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _HostSlot:
    """One request at a time per host, at least the per-host delay between page requests
    (robots.txt, fetched once per origin, waits for the slot but does not start the clock)."""

    def __init__(self, fetcher: Fetcher, host: str, counts: bool = True) -> None:
        self.fetcher = fetcher
        self.host = host
        self.counts = counts
        self.lock = fetcher._host_locks.setdefault(host, asyncio.Lock())

    async def __aenter__(self) -> None:
        await self.lock.acquire()
        fetcher = self.fetcher
        delay = max(fetcher.settings.enrich_per_host_delay_seconds,
                    fetcher._host_delay.get(self.host, 0.0))
        wait = fetcher._host_next.get(self.host, 0.0) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self.counts:
            fetcher._host_next[self.host] = time.monotonic() + delay

    async def __aexit__(self, *_exc: object) -> None:
        self.lock.release()


def _split(url: str):  # type: ignore[no-untyped-def]
    try:
        return urlsplit(url)
    except ValueError:
        raise _Failure("bad_url", url[:200]) from None
