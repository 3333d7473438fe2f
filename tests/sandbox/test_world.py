"""The synthetic world: company set, SERP XML shape, determinism, errors, sites and ground truth."""

from __future__ import annotations

import html
import re
from collections import Counter
from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

import pytest
from lxml import etree
from publicsuffixlist import PublicSuffixList

from leadgen.sandbox.world import World, detect_niche, normalize_query
from leadgen.sandbox.world_sites import UNREACHABLE
from leadgen.sandbox.world_vocab import NICHES

NOW = datetime(2026, 1, 15, 21, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7)


def parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode("utf-8"))


def test_world_size_and_variety(world: World) -> None:
    companies = list(world.companies())
    assert 1300 <= len(companies) <= 1800
    assert len(NICHES) >= 12
    gt = world.ground_truth()
    assert len(gt) == len(companies)  # one company per registrable domain
    psl = PublicSuffixList()
    for domain in gt:
        assert psl.privatesuffix(domain) == domain, domain
        assert domain.isascii()
    kinds = Counter(v["kind"] for v in gt.values())
    assert 0.05 < kinds["no_email"] / len(gt) < 0.12
    for kind in ("robots", "redirect_private", "redirect_loop", "huge", "http_404", "binary", "reset"):
        assert 0 < kinds[kind] / len(gt) <= 0.035, kind
    assert any(d.endswith(".xn--p1ai") for d in gt)
    assert any(d.endswith(".msk.ru") for d in gt)
    assert any(d.endswith(".com") for d in gt) and any(d.endswith(".su") for d in gt)
    assert any(len(c.regions) > 1 for c in companies)
    assert any(len(c.niches) > 1 for c in companies)
    names = [v["name"] for v in gt.values()]
    assert any(n.startswith("ООО «") for n in names) and any(n.startswith("ИП ") for n in names)


def test_ground_truth_primary_rules(world: World) -> None:
    freemail = ("mail.ru", "yandex.ru", "gmail.com", "bk.ru", "inbox.ru", "list.ru", "ya.ru")
    for c in world.companies():
        truth = world.ground_truth()[c.domain] if c.id == 1 else None
        if truth:
            assert set(truth) >= {"name", "primary", "emails", "traps", "kind"}
        if c.kind in UNREACHABLE:
            continue
        assert c.primary in c.emails
        local, _, dom = c.primary.partition("@")
        if c.kind == "freemail_only":
            assert dom in freemail
        else:
            assert dom == c.mail_domain
        if c.kind in ("normal", "cp1251", "cp1251_meta", "redirect_www", "slow", "huge",
                      "broken_encoding"):
            assert local in ("info", "office", "sales", "zakaz", "mail", "hello", "contact", "priem")
        assert not set(c.traps) & set(c.emails)
    assert sum(1 for c in world.companies() if c.kind == "no_email" and c.traps) > 10


def test_deterministic_world_and_xml() -> None:
    a, b = World(seed=7), World(seed=7)
    assert a.ground_truth() == b.ground_truth()
    assert a.search_xml("стоматология Москва", 213, now=NOW) == b.search_xml(
        "стоматология Москва", 213, now=NOW)
    later = a.search_xml("стоматология Москва", 213, now=datetime(2026, 2, 1, tzinfo=UTC))
    strip = lambda s: re.sub(r'date="\d+T\d+"|<reqid>[^<]*</reqid>', "", s)  # noqa: E731
    assert strip(later) == strip(a.search_xml("стоматология Москва", 213, now=NOW))
    assert World(seed=8).ground_truth() != a.ground_truth()


def test_serp_xml_has_the_real_v2_shape(world: World) -> None:
    root = parse(world.search_xml("стоматология Москва", 213, groups_on_page=100, max_passages=3,
                                  now=NOW))
    assert root.tag == "yandexsearch" and root.get("version") == "1.0"
    assert root.findtext("request/query") == "стоматология Москва"
    groupby = root.find("request/groupings/groupby")
    assert groupby.get("attr") == "d" and groupby.get("groups-on-page") == "100"
    resp = root.find("response")
    assert re.fullmatch(r"\d{8}T\d{6}", resp.get("date"))
    assert resp.get("date") == "20260115T213000"
    assert [e.get("priority") for e in resp.findall("found")] == ["phrase", "strict", "all"]
    assert resp.findtext("found-human").startswith("Нашлось")
    children = [c.tag for c in root]
    assert children == ["request", "response", "resource-usage"]
    grouping = resp.find("results/grouping")
    tags = [c.tag for c in grouping]
    assert tags[0] == "page"
    last_group = max(i for i, t in enumerate(tags) if t == "group")
    assert tags[last_group + 1:] == ["found"] * 3 + ["found-docs"] * 3 + ["found-docs-human"]
    groups = grouping.findall("group")
    assert len(groups) == 100
    assert grouping.find("page").get("first") == "1" and grouping.find("page").get("last") == "100"
    for g in groups:
        assert g.find("categ").get("attr") == "d"
        doc = g.find("doc")
        order = [c.tag for c in doc]
        assert order[0] == "relevance"
        if "saved-copy-url" in order:
            assert order.index("saved-copy-url") < order.index("url")
        assert order.index("url") < order.index("domain")
        assert doc.find("properties/_PassagesType").text == "0"
        assert re.fullmatch(r"Z[0-9A-F]{16}", doc.get("id"))
        assert urlsplit(doc.findtext("url")).hostname == doc.findtext("domain")
        passages = doc.findall("passages/passage")
        assert len(passages) <= 3


def _docs(world: World, queries: list[tuple[str, int]]) -> list[etree._Element]:
    out = []
    for q, r in queries:
        for page in range(3):
            root = parse(world.search_xml(q, r, page=page, now=NOW))
            out += root.findall(".//doc")
    return out


def test_serp_mix_and_optional_fields(world: World) -> None:
    docs = _docs(world, [("стоматология Москва", 213), ("ремонт квартир в Санкт-Петербурге", 2),
                         ("Юридические услуги Казань", 43), ("клининг", 65)])
    assert len(docs) > 300
    titles = [d.find("title") for d in docs]
    assert any(t is None for t in titles)  # some docs have no title
    assert sum(1 for t in titles if t is not None and t.find("hlword") is not None) > 200
    assert any(d.find("passages") is None for d in docs)
    assert any(d.find("headline") is not None for d in docs)
    assert any(d.find("properties/lang") is None for d in docs)
    assert any(d.get("touchdown", "").startswith("РКН") for d in docs)
    hosts = [d.findtext("domain") for d in docs]
    urls = [d.findtext("url") for d in docs]
    aggs = ("avito.ru", "2gis.ru", "zoon.ru", "vk.com", "profi.ru", "hh.ru", "yell.ru",
            "market.yandex.ru", "www.youtube.com")
    assert sum(agg in hosts for agg in aggs) >= 5
    assert any(h.startswith("www.") for h in hosts)
    assert any("utm_source=" in u for u in urls)
    assert any(u.startswith("http://") for u in urls)
    assert any(urlsplit(u).path not in ("", "/") for u in urls if "avito" not in u)
    psl = PublicSuffixList()
    gt = world.ground_truth()
    subdomain_hosts = [h for h in hosts if psl.privatesuffix(h) in gt
                       and h not in (psl.privatesuffix(h), "www." + psl.privatesuffix(h))]
    assert subdomain_hosts  # msk.brand.ru and the like
    # every company host in the SERP maps back to a site of the world
    for h in hosts:
        if psl.privatesuffix(h) in gt:
            assert world.site(h) is not None


def test_hlword_flattening_gives_plain_title(world: World) -> None:
    root = parse(world.search_xml("СТОМАТОЛОГИЯ москва", 213, now=NOW))
    title = next(t for t in root.iter("title") if t.find("hlword") is not None)
    words = [h.text for h in title.iter("hlword")]
    assert any(w.lower().startswith("стоматолог") or w.lower().startswith("москв") for w in words)
    assert "<" not in "".join(title.itertext())


def test_query_normalisation_case_and_yo(world: World) -> None:
    urls = lambda q: [u for u, _, _ in world.results_for(q, 213)]  # noqa: E731
    assert urls("СТОМАТОЛОГИЯ   Москва") == urls("стоматология москва")
    assert detect_niche(normalize_query("Химчистка ковров в Москве")).key == "drycleaning"
    assert detect_niche(normalize_query("Ремонт окон")).key == "windows"
    assert detect_niche(normalize_query("ремонт квартир под ключ")).key == "renovation"
    assert detect_niche(normalize_query("Грузоперевозки по городу")).key == "freight"
    assert detect_niche(normalize_query("Салон красоты на Тверской")).key == "beauty"
    assert detect_niche(normalize_query("риэлтор")).key == "realestate"
    assert world.results_for("Ёлка", 213) == []
    # ё = е: "остеклённые" matches the stem "остеклен"
    assert detect_niche(normalize_query("Остеклённые балконы")).key == "windows"


def test_error_15_for_unknown_niche_and_past_the_end(world: World) -> None:
    root = parse(world.search_xml("купить слона недорого", 213, now=NOW))
    err = root.find("response/error")
    assert err.get("code") == "15"
    assert err.text == "Искомая комбинация слов нигде не встречается"
    assert root.find("request/query").text == "купить слона недорого"
    assert root.find("response/results") is None
    total = len(world.results_for("клининг Казань", 43))
    assert 100 < total <= 250
    last_page = (total - 1) // 100
    tail = parse(world.search_xml("клининг Казань", 43, page=last_page, now=NOW))
    assert len(tail.findall(".//group")) == total - last_page * 100
    beyond = parse(world.search_xml("клининг Казань", 43, page=last_page + 1, now=NOW))
    assert beyond.find("response/error").get("code") == "15"
    small = parse(world.search_xml("клининг Казань", 43, page=2, groups_on_page=10, now=NOW))
    assert len(small.findall(".//group")) == 10
    assert small.find("response/results/grouping/page").get("first") == "21"


def test_site_lookup(world: World) -> None:
    c = next(c for c in world.companies() if c.subdomains and c.kind == "normal")
    assert world.site(c.domain).company is c
    assert world.site("www." + c.domain).company is c
    assert world.site(c.subdomains[0].upper()).company is c
    assert world.site("avito.ru") is None
    assert world.site("nothing-here.ru") is None
    idn = next(c for c in world.companies() if c.domain.endswith("xn--p1ai"))
    assert world.site(idn.display_domain).company is idn


def _extract(body: str) -> set[str]:
    """A reference extractor covering every planting method (keeps ground truth honest)."""
    found = set()
    for m in re.finditer(r'data-cfemail="([0-9a-f]+)"|email-protection#([0-9a-f]+)', body):
        code = m.group(1) or m.group(2)
        key = int(code[:2], 16)
        found.add("".join(chr(int(code[i:i + 2], 16) ^ key) for i in range(2, len(code), 2)))
    text = unquote(html.unescape(body))
    text = re.sub(r"\s*\[at\]\s*|\(at\)|\s+собака\s+", "@", text)
    text = re.sub(r"\s*\[dot\]\s*", ".", text)
    found |= set(re.findall(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", text))
    return found


def test_planted_emails_are_really_on_the_pages(world: World) -> None:
    checked = 0
    for c in list(world.companies())[::12]:
        if c.kind in ("binary", "reset", "http_404", "http_500", "redirect_loop", "redirect_private"):
            continue
        site = world.site(c.domain)
        found: set[str] = set()
        raw = ""
        for path, resp in site.pages().items():
            if path.startswith(("/uslugi", "/ceny")):
                continue
            if resp.status != 200 or not resp.headers[0][1].startswith("text/html"):
                continue
            charset = "cp1251" if c.kind.startswith("cp1251") else "utf-8"
            body = resp.body.decode(charset, errors="replace")
            raw += body
            found |= _extract(body)
        for email in c.emails:
            assert email in found, (c.domain, c.kind, email, c.placements)
        for trap in c.traps:
            assert trap in raw, (c.domain, trap)
        if c.kind != "huge":
            home = site.pages()["/"]
            assert 10_000 <= len(home.body) <= 150_000
        checked += 1
    assert checked > 100


def test_site_responses_by_kind(world: World) -> None:
    by_kind = {}
    for c in world.companies():
        by_kind.setdefault(c.kind, c)
    c = by_kind["normal"]
    site = world.site(c.domain)
    r = site.respond("http", c.domain, "/")
    assert r.status == 301 and dict(r.headers)["Location"] == f"https://{c.canonical_host}/"
    r = site.respond("https", c.canonical_host, "/?utm_source=yandex")
    assert r.status == 200 and b"<html" in r.body
    assert site.respond("https", c.canonical_host, "/no/such/page").status == 404
    c = by_kind["redirect_www"]
    r = world.site(c.domain).respond("https", c.domain, "/contacts")
    assert r.status == 301 and dict(r.headers)["Location"] == f"https://www.{c.domain}/contacts"
    c = by_kind["robots"]
    r = world.site(c.domain).respond("https", c.canonical_host, "/robots.txt")
    assert b"Disallow: /\n" in r.body
    c = by_kind["redirect_private"]
    loc = dict(world.site(c.domain).respond("https", c.canonical_host, "/").headers)["Location"]
    host = urlsplit(loc).hostname
    assert host.startswith(("127.", "10.", "169.254.")) or world.dns_a(host)[0].startswith("10.")
    c = by_kind["cp1251"]
    r = world.site(c.domain).respond("https", c.canonical_host, "/")
    assert dict(r.headers)["Content-Type"] == "text/html; charset=windows-1251"
    assert "charset=windows-1251" in r.body.decode("cp1251")
    with pytest.raises(UnicodeDecodeError):
        r.body.decode("utf-8")
    c = by_kind["cp1251_meta"]
    r = world.site(c.domain).respond("https", c.canonical_host, "/")
    assert dict(r.headers)["Content-Type"] == "text/html"
    c = by_kind["huge"]
    r = world.site(c.domain).respond("https", c.canonical_host, "/")
    assert r.stream_total >= 10 * 1024 * 1024 and b"<nav" in r.body
    c = by_kind["binary"]
    r = world.site(c.domain).respond("https", c.canonical_host, "/")
    assert dict(r.headers)["Content-Type"] == "application/octet-stream"
    assert world.site(by_kind["reset"].domain).respond("https", by_kind["reset"].canonical_host, "/").reset
    c = by_kind["redirect_loop"]
    site = world.site(c.domain)
    first = dict(site.respond("https", c.canonical_host, "/").headers)["Location"]
    assert dict(site.respond("https", c.canonical_host, first).headers)["Location"] == "/"
    c = by_kind["slow"]
    assert world.site(c.domain).respond("https", c.canonical_host, "/").delay >= 2


def test_dns_data(world: World) -> None:
    c = next(c for c in world.companies() if c.kind == "normal")
    assert world.dns_a(c.domain)[0].startswith("127.77.")
    assert world.dns_a(c.domain) == World(seed=7).dns_a(c.domain)
    assert world.dns_a("nonexistent-domain.ru") == []
    assert world.dns_mx("mail.ru") and world.dns_mx("gmail.com")
    mx_kinds = Counter(c.mx for c in world.companies())
    assert set(mx_kinds) == {"yandex", "mailru", "google", "own", "none"}
    private = next(c for c in world.companies() if c.kind == "dns_private")
    assert not world.dns_a(private.domain)[0].startswith("127.77.")
    v6 = next(c for c in world.companies() if c.kind == "dns_ipv6_loopback")
    assert world.dns_aaaa(v6.domain) == ["::1"]
    nx = next(c for c in world.companies() if c.kind == "nxdomain")
    assert world.dns_a(nx.domain) == [] and world.dns_mx(nx.domain) == []
