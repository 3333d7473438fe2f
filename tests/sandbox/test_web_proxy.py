"""The synthetic web behind a real forward proxy: httpx with proxy= and the sandbox CA."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from leadgen.sandbox.tls import SandboxCA
from leadgen.sandbox.web import WebFaults, WebServer
from leadgen.sandbox.world import Company, World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> SandboxCA:
    return SandboxCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def web(world: World, ca: SandboxCA) -> Iterator[WebServer]:
    server = WebServer(world, ca)
    server.start()
    yield server
    server.stop()


@pytest.fixture()
def client(web: WebServer, ca: SandboxCA) -> Iterator[httpx.Client]:
    with httpx.Client(proxy=web.proxy_url, verify=str(ca.ca_file), timeout=10) as c:
        yield c


def first(world: World, kind: str) -> Company:
    return next(c for c in world.companies() if c.kind == kind)


def test_ca_file_and_proxy_url(web: WebServer, ca: SandboxCA) -> None:
    assert ca.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert web.proxy_url == f"http://127.0.0.1:{web.port}"
    assert ca.server_context(["a.ru"]) is ca.server_context(["A.ru"])


def test_http_redirects_to_https_and_serves_the_homepage(world: World, web: WebServer,
                                                         client: httpx.Client) -> None:
    c = first(world, "normal")
    r = client.get(f"http://{c.domain}/", follow_redirects=True)
    assert r.status_code == 200
    assert r.url == f"https://{c.canonical_host}/"
    assert r.history[0].status_code == 301
    assert r.headers["content-type"].startswith("text/html")
    assert c.brand in r.text and "<nav" in r.text
    assert 10_000 < len(r.content) < 150_000
    assert web.stats["tls_handshakes"] >= 1 and web.stats["requests"] >= 2


def test_keep_alive_in_the_tunnel_and_head(world: World, web: WebServer,
                                          client: httpx.Client) -> None:
    c = first(world, "normal")
    before = web.stats["tls_handshakes"]
    for _ in range(5):
        assert client.get(f"https://{c.canonical_host}/").status_code == 200
    assert web.stats["tls_handshakes"] - before <= 1
    r = client.head(f"https://{c.canonical_host}/")
    assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 10_000
    assert client.get(f"https://{c.canonical_host}/no-such-page/").status_code == 404


def test_tls_verification_uses_the_sandbox_ca(world: World, web: WebServer) -> None:
    c = first(world, "normal")
    with httpx.Client(proxy=web.proxy_url, verify=True, timeout=10) as untrusted:
        with pytest.raises(httpx.ConnectError):
            untrusted.get(f"https://{c.canonical_host}/")


def test_robots_txt(world: World, client: httpx.Client) -> None:
    c = first(world, "robots")
    r = client.get(f"https://{c.canonical_host}/robots.txt")
    assert r.status_code == 200 and "Disallow: /\n" in r.text
    assert r.headers["content-type"].startswith("text/plain")


def test_cp1251_pages(world: World, client: httpx.Client) -> None:
    c = first(world, "cp1251")
    r = client.get(f"https://{c.canonical_host}/")
    assert r.headers["content-type"] == "text/html; charset=windows-1251"
    with pytest.raises(UnicodeDecodeError):
        r.content.decode("utf-8")
    assert c.brand in r.content.decode("cp1251")
    m = first(world, "cp1251_meta")
    r = client.get(f"https://{m.canonical_host}/")
    assert r.headers["content-type"] == "text/html"
    assert b"charset=windows-1251" in r.content


def test_redirect_www_and_loop(world: World, client: httpx.Client) -> None:
    c = first(world, "redirect_www")
    r = client.get(f"https://{c.domain}/", follow_redirects=True)
    assert r.status_code == 200 and r.url.host == f"www.{c.domain}"
    loop = first(world, "redirect_loop")
    with pytest.raises(httpx.TooManyRedirects):
        client.get(f"https://{loop.canonical_host}/", follow_redirects=True)


def test_redirect_to_private_address_is_an_ssrf_trap(world: World, web: WebServer,
                                                      client: httpx.Client) -> None:
    c = next(c for c in world.companies()
             if c.kind == "redirect_private" and c.private_target == "intranet")
    r = client.get(f"https://{c.canonical_host}/")
    assert r.status_code == 302 and r.headers["location"] == f"http://intranet.{c.domain}/"
    assert world.dns_a(f"intranet.{c.domain}")[0].startswith("10.")
    before = web.stats["ssrf"]
    assert client.get(r.headers["location"]).status_code == 502  # the proxy never connects
    assert client.get("http://169.254.169.254/latest/meta-data/").status_code == 403
    assert web.stats["ssrf"] == before + 2
    assert "169.254.169.254" in web.ssrf_log


def test_unknown_hosts_and_faulty_kinds(world: World, client: httpx.Client) -> None:
    assert client.get("http://no-such-company-anywhere.ru/").status_code == 502
    with pytest.raises(httpx.ProxyError):
        client.get("https://no-such-company-anywhere.ru/")
    nx = first(world, "nxdomain")
    assert client.get(f"http://{nx.domain}/").status_code == 502
    assert client.get(f"https://{first(world, 'http_500').canonical_host}/").status_code == 500
    r = client.get(f"https://{first(world, 'binary').canonical_host}/")
    assert r.headers["content-type"] == "application/octet-stream"
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        client.get(f"https://{first(world, 'reset').canonical_host}/")


def test_huge_page_is_streamed(world: World, client: httpx.Client) -> None:
    c = first(world, "huge")
    with client.stream("GET", f"https://{c.canonical_host}/") as r:
        assert int(r.headers["content-length"]) == 10 * 1024 * 1024
        got = b""
        for chunk in r.iter_bytes():
            got += chunk
            if len(got) > 1_000_000:
                break
    assert b"<nav" in got and len(got) > 1_000_000


def test_many_concurrent_clients(world: World, ca: SandboxCA, tmp_path: Path) -> None:
    companies = [c for c in world.companies() if c.kind == "normal"][:60]
    with WebServer(world, ca, latency_ms=20, faults=WebFaults()) as server:

        async def crawl() -> list[int]:
            async with httpx.AsyncClient(proxy=server.proxy_url, verify=str(ca.ca_file),
                                         timeout=20, limits=httpx.Limits(max_connections=50)) as c:
                async def one(co: Company) -> list[int]:
                    return [(await c.get(f"https://{co.canonical_host}{p}")).status_code
                            for p in ("/", "/robots.txt", "/uslugi/")]
                return [s for batch in await asyncio.gather(*(one(co) for co in companies))
                        for s in batch]

        statuses = asyncio.run(crawl())
        assert len(statuses) == 180 and set(statuses) <= {200, 404}  # some sites lack robots.txt
        assert statuses.count(200) >= 150
        assert server.stats["requests"] == 180
        assert len(server.requests_for(companies[0].canonical_host)) == 3


def test_fault_injection(world: World, ca: SandboxCA) -> None:
    c = first(world, "normal")
    with WebServer(world, ca, faults=WebFaults(error_rate=1.0)) as server:
        with httpx.Client(proxy=server.proxy_url, verify=str(ca.ca_file), timeout=10) as client:
            assert client.get(f"https://{c.canonical_host}/").status_code == 503
