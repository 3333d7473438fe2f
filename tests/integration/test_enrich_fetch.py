"""The fetcher and the site crawler against real local servers (HTTP on 127.0.0.1, dnslib DNS):
SSRF on redirects, size and time limits, robots.txt, charsets, content types, proxy failover,
per-host politeness."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from tests.dnszone import ZoneResolver, serve_dns

from leadgen.config import load_settings
from leadgen.enrich.crawl import CompanyRef, crawl_site
from leadgen.enrich.fetch import Fetcher, FetchResult

ZONE: dict[str, tuple[list[str], list[str]]] = {
    "site.test": (["127.0.0.1"], []),
    "other.test": (["127.0.0.1"], []),
    "cp.test": (["127.0.0.1"], []),
    "meta.test": (["169.254.169.254"], []),
    "ten.test": (["10.0.0.7"], []),
    "six.test": (["127.0.0.1"], ["::1"]),
    "trap.test": (["127.0.0.2"], []),
    # email-validator refuses special-use names (.test), so crawled sites have .ru names; this
    # zone is served only by the local DNS server below and points at 127.0.0.1.
    "stroy-site.ru": (["127.0.0.1"], []),
}

@dataclass
class Resp:
    status: int = 200
    body: bytes = b""
    ctype: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    chunked: bool = False


Route = Callable[[str], Resp]


class Web:
    """A tiny HTTP/1.1 server (keep-alive) in its own thread; also answers absolute-form
    requests, so it can play a forward proxy."""

    def __init__(self, routes: dict[str, Resp | Route] | None = None, host: str = "127.0.0.1",
                 always: Resp | None = None) -> None:
        self.routes = routes or {}
        self.host = host
        self.always = always
        self.hits: list[tuple[str, str]] = []  # (host header, path)
        self.inflight: dict[str, int] = {}
        self.max_inflight = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> Web:
        self.thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, self.host, 0), self.loop).result(5)
        self.server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *_exc: object) -> None:
        async def stop() -> None:
            self.server.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in
                           (line.partition(":") for line in lines[1:] if ":" in line)}
                host = headers.get("host", "").split(":")[0]
                if target.startswith("http://"):
                    parts = urlsplit(target)
                    host, target = parts.hostname or "", parts.path or "/"
                path = target.split("?", 1)[0]
                self.hits.append((host, path))
                self.inflight[host] = self.inflight.get(host, 0) + 1
                self.max_inflight = max(self.max_inflight, self.inflight[host])
                try:
                    route = self.always or self.routes.get(path)
                    resp = route(host) if callable(route) else route
                    if resp is None:
                        resp = Resp(404, b"<html>not found</html>")
                    if resp.delay:
                        await asyncio.sleep(resp.delay)
                    await self._write(writer, resp)
                finally:
                    self.inflight[host] -= 1

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, resp: Resp) -> None:
        lines = [f"HTTP/1.1 {resp.status} X", f"Content-Type: {resp.ctype}"]
        lines += [f"{k}: {v}" for k, v in resp.headers.items()]
        if resp.chunked:
            lines.append("Transfer-Encoding: chunked")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            for start in range(0, len(resp.body), 8192):
                piece = resp.body[start:start + 8192]
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
        else:
            lines.append(f"Content-Length: {len(resp.body)}")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + resp.body)
        await writer.drain()


@pytest.fixture(scope="module")
def dns_address() -> Iterator[str]:
    with serve_dns(ZoneResolver(ZONE)) as address:
        yield address


def settings_for(dns_address: str, **overrides):  # type: ignore[no-untyped-def]
    values = dict(dns_resolvers=dns_address, enrich_allowed_networks="127.0.0.1/32",
                  enrich_per_host_delay_seconds=0, enrich_timeout_seconds=2,
                  mx_check_enabled=False)
    values.update(overrides)
    return load_settings(**values)


def fetch(settings, *urls: str) -> list[FetchResult]:  # type: ignore[no-untyped-def]
    async def run() -> list[FetchResult]:
        async with Fetcher(settings) as fetcher:
            return [await fetcher.fetch(url) for url in urls]
    return asyncio.run(run())


HOME = "<html><body><p>Добро пожаловать</p></body></html>".encode()


# --- SSRF --------------------------------------------------------------------------------------


def test_plain_fetch_through_checked_name(dns_address: str) -> None:
    with Web({"/": Resp(body=HOME)}) as web:
        [result] = fetch(settings_for(dns_address), f"http://site.test:{web.port}/")
    assert result.ok and "Добро пожаловать" in (result.html or "")
    assert ("site.test", "/") in web.hits  # the Host header keeps the name


@pytest.mark.parametrize("target", [
    "http://127.0.0.2:{trap}/", "http://2130706434:{trap}/", "http://0x7f000002:{trap}/",
    "http://trap.test:{trap}/", "http://169.254.169.254/latest/meta-data/", "http://meta.test/",
    "http://10.0.0.5/admin/", "http://ten.test/", "http://[::1]:{trap}/", "http://six.test:{trap}/",
    "http://localhost:{trap}/",
])
def test_redirect_to_private_address_is_never_fetched(dns_address: str, target: str) -> None:
    with Web({"/": Resp(body=b"<html>secret</html>")}, host="127.0.0.2") as trap:
        location = target.format(trap=trap.port)
        with Web({"/": Resp(302, headers={"Location": location})}) as web:
            [result] = fetch(settings_for(dns_address), f"http://site.test:{web.port}/")
        assert result.error == "blocked", result
        assert result.html is None
        assert trap.hits == []


def test_direct_private_targets_blocked(dns_address: str) -> None:
    results = fetch(settings_for(dns_address), "http://meta.test/", "http://127.0.0.3/",
                    "http://[::1]/", "http://ten.test/")
    assert [r.error for r in results] == ["blocked"] * 4


def test_redirect_limit_and_scheme(dns_address: str) -> None:
    routes = {f"/r{i}": Resp(301, headers={"Location": f"/r{i + 1}"}) for i in range(10)}
    routes["/ftp"] = Resp(302, headers={"Location": "ftp://site.test/file"})
    routes["/ok"] = Resp(302, headers={"Location": "/r8"})
    with Web(routes) as web:
        base = f"http://site.test:{web.port}"
        loop, ftp, ok = fetch(settings_for(dns_address, enrich_max_redirects=3),
                              f"{base}/r0", f"{base}/ftp", f"{base}/ok")
    assert loop.error == "redirects"
    assert ftp.error == "bad_url"
    assert ok.error == "http_404" and ok.redirects == 3  # /ok → /r8 → /r9 → /r10 (404)


# --- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True])
def test_size_cap_aborts_and_keeps_the_head(dns_address: str, chunked: bool) -> None:
    body = b"<html><body><a href='/kontakty/'>Contacts</a>" + b"<p>filler</p>" * 30_000
    with Web({"/": Resp(body=body, chunked=chunked)}) as web:
        [result] = fetch(settings_for(dns_address, enrich_max_bytes=50_000),
                         f"http://site.test:{web.port}/")
    assert result.error == "too_large"
    assert result.bytes_read <= 50_000
    assert "/kontakty/" in (result.html or "")


def test_timeout(dns_address: str) -> None:
    with Web({"/": Resp(body=HOME, delay=3), "/fast": Resp(body=HOME)}) as web:
        slow, fast = fetch(settings_for(dns_address, enrich_timeout_seconds=1),
                           f"http://site.test:{web.port}/", f"http://site.test:{web.port}/fast")
    assert slow.error == "timeout"
    assert fast.ok


def test_unreachable_port_and_unknown_name(dns_address: str) -> None:
    refused, unknown = fetch(settings_for(dns_address), "http://site.test:1/",
                             "http://nowhere.test/")
    assert refused.error == "unreachable" and unknown.error == "unreachable"


# --- robots.txt --------------------------------------------------------------------------------


def test_robots_rules_are_honoured_and_fetched_once(dns_address: str) -> None:
    robots = b"User-agent: *\nDisallow: /private\n\nUser-agent: leadgen\nDisallow: /secret\n"
    routes = {"/robots.txt": Resp(body=robots, ctype="text/plain"), "/": Resp(body=HOME),
              "/private/x": Resp(body=HOME), "/secret": Resp(body=HOME), "/public": Resp(body=HOME)}
    with Web(routes) as web:
        base = f"http://site.test:{web.port}"
        home, private, secret, public = fetch(settings_for(dns_address), f"{base}/",
                                              f"{base}/private/x", f"{base}/secret", f"{base}/public")
    assert home.ok and public.ok
    assert secret.error == "robots"
    assert private.ok  # our agent has its own group, which does not forbid /private
    assert [path for _, path in web.hits].count("/robots.txt") == 1
    assert ("site.test", "/secret") not in web.hits


def test_robots_disallow_all_and_switch_off(dns_address: str) -> None:
    routes = {"/robots.txt": Resp(body=b"User-agent: *\nDisallow: /\n", ctype="text/plain"),
              "/": Resp(body=HOME)}
    with Web(routes) as web:
        [denied] = fetch(settings_for(dns_address), f"http://site.test:{web.port}/")
        [allowed] = fetch(settings_for(dns_address, enrich_respect_robots=False),
                          f"http://site.test:{web.port}/")
    assert denied.error == "robots" and allowed.ok


@pytest.mark.parametrize("status, expected", [(404, None), (403, None), (503, "robots_unavailable")])
def test_robots_status_codes(dns_address: str, status: int, expected: str | None) -> None:
    with Web({"/robots.txt": Resp(status, b"x"), "/": Resp(body=HOME)}) as web:
        [result] = fetch(settings_for(dns_address), f"http://site.test:{web.port}/")
    assert result.error == expected


# --- content -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype, meta", [
    ("text/html; charset=windows-1251", ""),
    ("text/html", '<meta charset="windows-1251">'),
    ("text/html", '<meta http-equiv="Content-Type" content="text/html; charset=cp1251">'),
    ("text/html", ""),  # nothing declared: detected
])
def test_cp1251_pages(dns_address: str, ctype: str, meta: str) -> None:
    html = (f"<html><head>{meta}</head><body><h1>Контакты компании</h1><p>Пишите нам: "
            "info собака cp.test, мы ответим в течение рабочего дня. Режим работы: "
            "понедельник–пятница.</p></body></html>")
    with Web({"/": Resp(body=html.encode("cp1251"), ctype=ctype)}) as web:
        [result] = fetch(settings_for(dns_address), f"http://cp.test:{web.port}/")
    assert result.ok and "Контакты компании" in (result.html or "")
    assert result.encoding == "cp1251"


def test_utf8_page_with_cp1251_parts(dns_address: str) -> None:
    body = "<html><head></head><body>Привет".encode() + " мир, контакты".encode("cp1251")
    with Web({"/": Resp(body=body)}) as web:
        [result] = fetch(settings_for(dns_address), f"http://site.test:{web.port}/")
    assert "Привет мир, контакты" in (result.html or "")


@pytest.mark.parametrize("ctype, ok", [
    ("image/png", False), ("application/pdf", False), ("application/octet-stream", False),
    ("application/xhtml+xml; charset=utf-8", True), ("TEXT/HTML", True),
])
def test_content_type_check(dns_address: str, ctype: str, ok: bool) -> None:
    with Web({"/": Resp(body=HOME, ctype=ctype)}) as web:
        [result] = fetch(settings_for(dns_address), f"http://site.test:{web.port}/")
    assert result.ok is ok
    if not ok:
        assert result.error == "not_html"


# --- proxies and politeness --------------------------------------------------------------------


def test_proxy_failover_on_connection_error_403_and_429(dns_address: str) -> None:
    with Web(always=Resp(403, b"banned")) as banned, Web(always=Resp(429, b"slow down")) as limited, \
            Web({"/": Resp(body=HOME)}) as good:
        proxies = f"http://127.0.0.1:1,{banned.url},{limited.url},{good.url}"
        settings = settings_for(dns_address, enrich_proxy_url=proxies, enrich_respect_robots=False)

        async def run():  # type: ignore[no-untyped-def]
            async with Fetcher(settings) as fetcher:
                first = await fetcher.fetch("http://site.test/")
                second = await fetcher.fetch("http://other.test/")
                return first, second, fetcher.stats.failovers
        first, second, failovers = asyncio.run(run())
    assert first.ok and second.ok
    assert failovers == 3  # the second request starts with the proxy that worked
    assert ("site.test", "/") in good.hits and ("other.test", "/") in good.hits
    assert len(banned.hits) == 1 and len(limited.hits) == 1


def test_all_proxies_refusing_reports_blocked_status(dns_address: str) -> None:
    with Web(always=Resp(403, b"banned")) as banned:
        settings = settings_for(dns_address, enrich_proxy_url=f"{banned.url},{banned.url}",
                                enrich_respect_robots=False)
        [result] = fetch(settings, "http://site.test/")
    assert result.error == "http_403"


def test_proxy_is_not_asked_for_private_hosts(dns_address: str) -> None:
    with Web({"/": Resp(body=HOME)}) as proxy:
        settings = settings_for(dns_address, enrich_proxy_url=proxy.url)
        results = fetch(settings, "http://meta.test/", "http://10.0.0.1/", "http://ten.test/")
    assert [r.error for r in results] == ["blocked"] * 3
    assert proxy.hits == []


def test_one_request_at_a_time_per_host(dns_address: str) -> None:
    routes = {f"/p{i}": Resp(body=HOME, delay=0.05) for i in range(6)}
    with Web(routes) as web:
        settings = settings_for(dns_address, enrich_respect_robots=False)

        async def run():  # type: ignore[no-untyped-def]
            async with Fetcher(settings) as fetcher:
                return await asyncio.gather(*(fetcher.fetch(f"http://site.test:{web.port}/p{i}")
                                              for i in range(6)))
        results = asyncio.run(run())
    assert all(r.ok for r in results)
    assert web.max_inflight == 1


# --- the site crawler --------------------------------------------------------------------------


def _site(port: int) -> dict[str, Resp | Route]:
    home = ("<html><body><nav><a href='/uslugi/'>Услуги</a><a href='/page/7'>Контакты</a>"
            "<a href='/o-kompanii/'>О компании</a><a href='http://evil.test/contacts'>Контакты</a>"
            "</nav><p>Мы\x00 строим\x07 дома.</p><footer>Сайт разработан: Студия, hello@studio.ru"
            "</footer></body></html>")
    contacts = ("<html><body><p>Email: <a href='mailto:zakaz@stroy-site.ru'>zakaz@stroy-site.ru</a></p>"
                "<p>Пример: email@domain.ru</p></body></html>")
    return {"/": Resp(body=home.encode()), "/page/7": Resp(body=contacts.encode()),
            "/o-kompanii/": Resp(body=b"<p>director@stroy-site.ru</p>"),
            "/uslugi/": Resp(body=b"<p>uslugi@stroy-site.ru</p>")}


def crawl(settings, company: CompanyRef):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        async with Fetcher(settings) as fetcher:
            return await crawl_site(fetcher, company)
    return asyncio.run(run())


def test_crawl_site_finds_contact_page_by_link_text(dns_address: str) -> None:
    with Web() as web:
        web.routes = _site(web.port)
        settings = settings_for(dns_address, enrich_proxy_url=web.url, enrich_respect_robots=False)
        result = crawl(settings, CompanyRef(1, "stroy-site.ru", "http://stroy-site.ru/"))
    assert result.outcome == "ok"
    assert result.emails[0].email == "zakaz@stroy-site.ru"
    assert result.emails[0].source_url.endswith("/page/7")
    assert "hello@studio.ru" not in [c.email for c in result.emails]
    assert ("stroy-site.ru", "/uslugi/") not in web.hits  # not contact-like
    assert all(host != "evil.test" for host, _ in web.hits)
    assert result.pages_fetched == 2  # a confident inbox on the contact page ends the crawl
    assert "\x00" not in result.excerpt and "\x07" not in result.excerpt
    assert "Мы строим дома." in result.excerpt


@pytest.mark.parametrize("routes, outcome", [
    ({"/robots.txt": Resp(body=b"User-agent: *\nDisallow: /", ctype="text/plain")}, "robots"),
    ({"/": Resp(302, headers={"Location": "http://169.254.169.254/"})}, "blocked"),
    ({"/": Resp(403, b"no")}, "blocked"),
    ({"/": Resp(500, b"oops")}, "unreachable"),
    ({"/": Resp(body=b"<html><body><p>no address here</p></body></html>")}, "no_email"),
])
def test_crawl_outcomes(dns_address: str, routes: dict, outcome: str) -> None:
    with Web(routes) as web:
        settings = settings_for(dns_address, enrich_proxy_url=web.url)
        result = crawl(settings, CompanyRef(1, "stroy-site.ru", "https://stroy-site.ru/"))
    assert result.outcome == outcome, result.detail


def test_crawl_guesses_contact_paths_when_home_has_no_links(dns_address: str) -> None:
    routes = {"/": Resp(body=b"<html><body>nothing</body></html>"),
              "/kontakty/": Resp(body=b"<p>info@stroy-site.ru</p>")}
    with Web(routes) as web:
        settings = settings_for(dns_address, enrich_proxy_url=web.url)
        result = crawl(settings, CompanyRef(1, "stroy-site.ru", "http://stroy-site.ru/"))
    assert result.outcome == "ok" and result.emails[0].email == "info@stroy-site.ru"
