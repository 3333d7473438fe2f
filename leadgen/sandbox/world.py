"""A deterministic synthetic web of Russian companies: SERP XML, sites, DNS data, ground truth.

`World(seed, scale)` builds ~1,500 companies per unit of scale across the niches and cities of
`world_vocab`. `search_xml()` answers a query in the real Yandex Search API v2 XML shape (the
2025 deferred sample: `saved-copy-url` before `url`, grouping counters after the groups,
`resource-usage` after `</response>`); unknown niches and pages past the end give
`<error code="15">`. `site(host)` returns the pages of a company, `ground_truth()` the planted
addresses, `dns_a()` / `dns_mx()` the records served by the sandbox DNS.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import quote, quote_plus
from xml.sax.saxutils import escape, quoteattr

from leadgen.sandbox.world_sites import (
    KIND_WEIGHTS,
    PRIVATE_TARGETS,
    Company,
    Site,
    plan_emails,
    stable_int,
)
from leadgen.sandbox.world_vocab import (
    AGGREGATORS,
    BRAND_SUFFIXES,
    CITIES,
    CITY_BY_REGION,
    FIRST_NAMES,
    FREEMAIL_MX,
    MX_PROVIDERS,
    NICHE_BY_KEY,
    NICHES,
    PATRONYMICS,
    SURNAMES,
    City,
    Niche,
    translit,
)

__all__ = ["World", "Company", "Site", "normalize_query"]

BASE_PER_WEIGHT = 4.05  # companies per niche per unit of city weight at scale 1 (~1,500 total)
NOT_FOUND_TEXT = "Искомая комбинация слов нигде не встречается"
# Known infrastructure names the DNS answers for (MX targets and the free-mail domains).
INFRA_HOSTS = ("mx.yandex.net", "mx.yandex.ru", "mxs.mail.ru", "aspmx.l.google.com",
               "alt1.aspmx.l.google.com", "alt2.aspmx.l.google.com", "alt3.aspmx.l.google.com",
               "alt4.aspmx.l.google.com", "gmail-smtp-in.l.google.com",
               "alt1.gmail-smtp-in.l.google.com", "alt2.gmail-smtp-in.l.google.com")
CITY_STEMS = {213: ("москв", "moskv", "moscow"), 2: ("петербург", "спб", "питер", "санкт"),
              43: ("казан",), 65: ("новосибирск",), 54: ("екатеринбург", "екб"),
              47: ("новгород", "нижн"), 56: ("челябинск",), 35: ("краснодар",), 51: ("самар",),
              39: ("ростов",), 172: ("уфа", "уфе", "уфы"), 62: ("красноярск",), 193: ("воронеж",),
              50: ("перм",), 38: ("волгоград",), 239: ("сочи",)}


def normalize_query(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower().replace("ё", "е"))


def _stem_match(word: str, qword: str) -> bool:
    w, q = word.lower().replace("ё", "е"), qword
    if len(q) < 3 or len(w) < 3:
        return w == q
    k = 0
    for a, b in zip(w, q):
        if a != b:
            break
        k += 1
    return k >= max(3, min(len(w), len(q)) - 2)


def highlight(text: str, qwords: list[str]) -> str:
    """Escape `text` and wrap words that match the query in <hlword>."""
    out: list[str] = []
    pos = 0
    for m in re.finditer(r"\w+", text):
        out.append(escape(text[pos:m.start()]))
        word = m.group(0)
        if any(_stem_match(word, q) for q in qwords):
            out.append(f"<hlword>{escape(word)}</hlword>")
        else:
            out.append(escape(word))
        pos = m.end()
    out.append(escape(text[pos:]))
    return "".join(out)


def detect_niche(qwords: list[str]) -> Niche | None:
    best, best_score = None, 0
    joined = " ".join(qwords)
    for niche in NICHES:
        score = 0
        for stem, weight in niche.stems:
            if " " in stem:
                pat = r"\b" + r"\w*\s+".join(map(re.escape, stem.split())) + r"\w*"
                if re.search(pat, joined):
                    score += weight
            elif len(stem) <= 3:
                if stem in qwords:
                    score += weight
            elif any(w.startswith(stem) for w in qwords):
                score += weight
        if score > best_score:
            best, best_score = niche, score
    return best


def detect_city(qwords: list[str]) -> City | None:
    for region, stems in CITY_STEMS.items():
        for stem in stems:
            if any((w == stem) if len(stem) <= 3 else w.startswith(stem) for w in qwords):
                return CITY_BY_REGION[region]
    return None


class World:
    """The synthetic web. Deterministic for a given (seed, scale)."""

    def __init__(self, seed: int = 7, scale: int = 1) -> None:
        self.seed = seed
        self.scale = scale
        self._companies: list[Company] = []
        self._by_domain: dict[str, Company] = {}
        self._by_pair: dict[tuple[str, int], list[Company]] = {}
        self._by_niche: dict[str, list[Company]] = {}
        self._mail_domains: dict[str, Company] = {}
        self._build()

    # -- construction -------------------------------------------------------------------------
    def _rng(self, *parts: object) -> random.Random:
        return random.Random("|".join(map(str, (self.seed,) + parts)))

    def _build(self) -> None:
        rng = self._rng("build")
        kinds = [k for k, _ in KIND_WEIGHTS]
        weights = [w for _, w in KIND_WEIGHTS]
        for niche in NICHES:
            for city in CITIES:
                n = max(2, round(BASE_PER_WEIGHT * city.weight * self.scale))
                for _ in range(n):
                    self._new_company(rng, niche, city, rng.choices(kinds, weights)[0])
        for c in self._companies:
            for niche_key in c.niches:
                for region in c.regions:
                    self._by_pair.setdefault((niche_key, region), []).append(c)
                self._by_niche.setdefault(niche_key, []).append(c)

    def _new_company(self, rng: random.Random, niche: Niche, city: City, kind: str) -> Company:
        cid = len(self._companies) + 1
        root = rng.choice(niche.roots)
        style = rng.random()
        if style < 0.5:
            brand = f"{root} {rng.choice(BRAND_SUFFIXES)}"
        elif style < 0.7:
            brand = f"{root}-{rng.choice(BRAND_SUFFIXES)}"
        elif style < 0.85:
            brand = root
        else:
            brand = f"{rng.choice(BRAND_SUFFIXES)} {root}"
        surname = rng.choice(SURNAMES)
        first = rng.choice(FIRST_NAMES)[0]
        patronymic = rng.choice(PATRONYMICS)
        if surname.endswith("ов") or surname.endswith("ев") or surname.endswith("ёв"):
            if first in ("Ольга", "Елена", "Наталья", "Ирина", "Анна", "Татьяна", "Марина"):
                surname += "а"
                patronymic = patronymic[:-2] + "на"
        form = rng.random()
        if form < 0.62:
            name = f"ООО «{brand}»"
        elif form < 0.82:
            name = f"ИП {surname} {first[0]}. {patronymic[0]}."
        elif form < 0.9:
            name = f"АО «{brand}»"
        else:
            name = f"ООО «{niche.kinds[0]} {brand}»"
        domain, display = self._make_domain(rng, brand, niche, city)
        mail_domain = domain
        if domain.startswith("xn--") or ".xn--" in domain:
            mail_domain = self._unique(translit(brand).replace("-", "") + ".ru")
        regions = [city.region]
        if rng.random() < 0.06:  # a chain present in several cities
            others = [c.region for c in CITIES if c.region != city.region]
            regions += rng.sample(others, rng.randint(1, 3))
        niches = [niche.key]
        if niche.related and rng.random() < 0.3:
            niches.append(niche.related)
        subdomains: list[str] = []
        if len(regions) > 1 or rng.random() < 0.08:
            subdomains += [f"{CITY_BY_REGION[r].short}.{domain}" for r in regions]
        if rng.random() < 0.05:
            subdomains.append(f"shop.{domain}")
        canonical = f"www.{domain}" if (kind == "redirect_www" or rng.random() < 0.3) else domain
        mx = rng.choices(("yandex", "mailru", "google", "own", "none"), (40, 20, 15, 10, 15))[0]
        street = rng.choice(city.street)
        phone = f"8 ({city.phone_code}) {rng.randint(200, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"
        c = Company(
            id=cid, brand=brand, name=name, domain=domain, display_domain=display,
            mail_domain=mail_domain, niches=tuple(niches), regions=tuple(regions), kind=kind,
            canonical_host=canonical, subdomains=tuple(dict.fromkeys(subdomains)), mx=mx,
            seed=f"{self.seed}|c{cid}|{domain}", director=(surname, first, patronymic),
            phone=phone, street=street, house=rng.randint(1, 150),
            inn=str(7700000000 + stable_int(self.seed, cid) % 99999999),
            private_target=rng.choice(PRIVATE_TARGETS) if kind == "redirect_private" else "",
        )
        plan_emails(random.Random(c.seed + "|emails"), c)
        self._companies.append(c)
        self._by_domain[domain] = c
        if mail_domain != domain:
            self._mail_domains[mail_domain] = c
        return c

    def _unique(self, domain: str) -> str:
        if domain not in self._by_domain and domain not in self._mail_domains:
            return domain
        label, _, tld = domain.partition(".")
        i = 2
        while f"{label}{i}.{tld}" in self._by_domain or f"{label}{i}.{tld}" in self._mail_domains:
            i += 1
        return f"{label}{i}.{tld}"

    def _make_domain(self, rng: random.Random, brand: str, niche: Niche, city: City) -> tuple[str, str]:
        slug = translit(brand)
        roll = rng.random()
        if roll < 0.07:
            cyr = re.sub(r"[^а-яё0-9-]", "", brand.lower().replace(" ", "-"))
            display = f"{cyr}.рф"
            ascii_ = display.encode("idna").decode()
            if ascii_ not in self._by_domain:
                return ascii_, display
        if roll < 0.35:
            cand = f"{slug}.ru"
        elif roll < 0.5:
            cand = f"{slug.replace('-', '')}.ru"
        elif roll < 0.6:
            cand = f"{slug}-{city.short}.ru"
        elif roll < 0.67 and city.region in (213, 2):
            cand = f"{slug}.{'msk' if city.region == 213 else 'spb'}.ru"
        elif roll < 0.75:
            cand = f"{slug.replace('-', '')}.com"
        elif roll < 0.8:
            cand = f"{slug}.su"
        elif roll < 0.86:
            cand = f"{slug}{rng.choice(('24', '-pro', '-online', '-group', '1'))}.ru"
        elif roll < 0.93:
            cand = f"{translit(niche.title).split('-')[0]}-{slug}.ru"
        else:
            cand = f"{slug}.{rng.choice(('pro', 'net', 'org', 'online', 'moscow' if city.region == 213 else 'site'))}"
        cand = cand.replace("--", "-")
        if cand in self._by_domain or cand in self._mail_domains:
            label, _, tld = cand.partition(".")
            cand = self._unique(f"{label}-{city.short}.{tld}")
        return cand, cand

    # -- public lookups -----------------------------------------------------------------------
    def companies(self) -> Iterator[Company]:
        return iter(self._companies)

    def company(self, domain: str) -> Company | None:
        return self._company_for_host(domain)

    def _company_for_host(self, host: str) -> Company | None:
        host = host.strip().lower().rstrip(".")
        if not host:
            return None
        try:
            host = host.encode("idna").decode() if not host.isascii() else host
        except UnicodeError:
            return None
        labels = host.split(".")
        for i in range(len(labels) - 1):
            c = self._by_domain.get(".".join(labels[i:]))
            if c is not None:
                return c
        return None

    def site(self, host: str) -> Site | None:
        c = self._company_for_host(host.split(":")[0])
        if c is None:
            return None
        return self._site(c.id)

    @lru_cache(maxsize=512)  # noqa: B019 - one World per sandbox; bounded
    def _site(self, cid: int) -> Site:
        c = self._companies[cid - 1]
        return Site(c, CITY_BY_REGION[c.region])

    def ground_truth(self) -> dict[str, dict]:
        return {
            c.domain: {"name": c.name, "primary": c.primary if c.reachable else None,
                       "emails": list(c.emails), "traps": list(c.traps), "kind": c.kind,
                       "brand": c.brand, "niches": list(c.niches), "regions": list(c.regions),
                       "reachable": c.reachable}
            for c in self._companies
        }

    # -- DNS ----------------------------------------------------------------------------------
    @staticmethod
    def synthetic_ip(host: str) -> str:
        h = int.from_bytes(hashlib.blake2b(host.encode(), digest_size=4).digest(), "big")
        return f"127.77.{(h >> 8) % 256}.{max(1, h % 255)}"

    def dns_a(self, host: str) -> list[str]:
        host = host.strip().lower().rstrip(".")
        if host in INFRA_HOSTS or host in FREEMAIL_MX:
            return [self.synthetic_ip(host)]
        if host in self._mail_domains or (host.startswith("mail.") and host[5:] in self._mail_domains):
            return [self.synthetic_ip(host)]
        c = self._company_for_host(host)
        if c is None or c.kind == "nxdomain":
            return []
        d = c.domain
        if host == f"intranet.{d}" and c.kind == "redirect_private":
            return [f"10.0.{c.id % 256}.{1 + c.id % 250}"]
        if host == f"mail.{d}" and c.mx == "own":
            return [self.synthetic_ip(host)]
        if host not in (d, f"www.{d}") and host not in c.subdomains:
            return []
        if c.kind == "dns_private":
            return ["127.0.0.1"] if c.id % 2 else [f"10.{c.id % 256}.0.{1 + c.id % 250}"]
        return [self.synthetic_ip(host)]

    def dns_aaaa(self, host: str) -> list[str]:
        c = self._company_for_host(host)
        if c is not None and c.kind == "dns_ipv6_loopback" and self.dns_a(host):
            return ["::1"]
        return []

    def dns_mx(self, domain: str) -> list[tuple[int, str]]:
        domain = domain.strip().lower().rstrip(".")
        if domain in FREEMAIL_MX:
            return list(FREEMAIL_MX[domain])
        c = self._mail_domains.get(domain) or self._by_domain.get(domain)
        if c is None or c.kind == "nxdomain" or c.mx == "none":
            return []
        if c.mx == "own":
            return [(10, f"mail.{domain}")]
        return list(MX_PROVIDERS[c.mx])

    def is_synthetic_address(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in ipaddress.ip_network("127.77.0.0/16")
        except ValueError:
            return False

    # -- search -------------------------------------------------------------------------------
    def results_for(self, query_text: str, region: int) -> list[tuple[str, str, Company | None]]:
        """Ordered result list: (url, host, company or None for aggregators)."""
        qwords = normalize_query(query_text)
        niche = detect_niche(qwords)
        if niche is None:
            return []
        city = detect_city(qwords) or CITY_BY_REGION.get(region)
        key = " ".join(qwords)
        rng = self._rng("serp", key, region)
        if city is not None:
            local = list(self._by_pair.get((niche.key, city.region), []))
        else:
            local = []
        rng.shuffle(local)
        local_ids = {c.id for c in local}
        others = [c for c in self._by_niche.get(niche.key, []) if c.id not in local_ids]
        rng.shuffle(others)
        cap = 110 + stable_int(self.seed, key, region) % 60
        aggs = list(AGGREGATORS)
        rng.shuffle(aggs)
        aggs = aggs[: 8 + rng.randint(0, len(aggs) - 8)]
        out: list[tuple[str, str, Company | None]] = []
        city_ = city or CITY_BY_REGION[213]
        agg_iter = iter(aggs)
        ordered = local + others
        i = 0
        while len(out) < cap and (i < len(ordered)):
            if len(out) % 4 == 1 or (len(out) < 12 and rng.random() < 0.35):
                agg = next(agg_iter, None)
                if agg is not None:
                    out.append(self._agg_result(agg, niche, city_))
                    continue
            c = ordered[i]
            i += 1
            out.extend(self._company_results(c, key, region, rng))
        for agg in agg_iter:
            if len(out) >= cap:
                break
            out.append(self._agg_result(agg, niche, city_))
        return out[:cap]

    def _agg_result(self, agg: tuple[str, str, str], niche: Niche, city: City) -> tuple[str, str, None]:
        host, path, _ = agg
        p = path.format(city=city.slug, short=city.short, q=translit(niche.title), region=city.region)
        return (f"https://{host}{p}", host, None)

    def _company_results(self, c: Company, key: str, region: int,
                         rng: random.Random) -> list[tuple[str, str, Company]]:
        roll = stable_int(self.seed, c.id, key, region) % 100
        host = c.canonical_host if roll < 70 else (f"www.{c.domain}" if roll < 80 else c.domain)
        scheme = "http" if roll % 7 == 0 else "https"
        local_sub = [s for s in c.subdomains if s.split(".")[0] == getattr(CITY_BY_REGION.get(region), "short", "")]
        if local_sub and roll < 60:
            host = local_sub[0]
        path = "/"
        if 35 <= roll < 55:
            path = f"/uslugi/{translit(NICHE_BY_KEY[c.niche].services[roll % 3])}/"
        elif 55 <= roll < 60:
            path = "/ceny/"
        if roll % 11 == 0:
            path += "?utm_source=yandex&utm_medium=organic&utm_campaign=seo"
        out = [(f"{scheme}://{host}{path}", host, c)]
        extra = [s for s in c.subdomains if s != host]
        if extra and roll % 3 == 0:
            out.append((f"https://{extra[0]}/", extra[0], c))
        return out

    def search_xml(self, query_text: str, region: int, page: int = 0, groups_on_page: int = 100,
                   max_passages: int = 3, now: datetime | None = None) -> str:
        now = now or datetime.now(UTC)
        groups_on_page = max(1, min(int(groups_on_page), 100))
        max_passages = max(1, min(int(max_passages), 5))
        qwords = [w for w in normalize_query(query_text)]
        request = (
            "<request>\n"
            f"<query>{escape(query_text)}</query>\n<page>{page}</page>\n"
            '<sortby order="descending" priority="no">rlv</sortby>\n'
            f"<maxpassages>{max_passages}</maxpassages>\n<groupings>\n"
            f'<groupby attr="d" mode="deep" groups-on-page="{groups_on_page}" docs-in-group="1" curcateg="-1"/>\n'
            "</groupings>\n</request>\n"
        )
        date = now.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
        reqid = self._reqid(query_text, region, page, now)
        head = '<?xml version="1.0" encoding="utf-8"?>\n<yandexsearch version="1.0">\n' + request
        if not qwords:
            return (head + f'<response date="{date}">\n<error code="2">Задан пустой поисковый запрос'
                    f"</error>\n<reqid>{reqid}</reqid>\n</response>\n</yandexsearch>\n")
        results = self.results_for(query_text, region)
        chunk = results[page * groups_on_page:(page + 1) * groups_on_page] if page >= 0 else []
        if not chunk:
            return (head + f'<response date="{date}">\n<error code="15">{NOT_FOUND_TEXT}</error>\n'
                    f"<reqid>{reqid}</reqid>\n</response>\n</yandexsearch>\n")
        key = " ".join(qwords)
        total_docs = 2_000 + stable_int(self.seed, key, "docs") % 3_000_000
        human = self._human(total_docs)
        qw = [w for w in qwords if len(w) >= 2]
        parts = [head, f'<response date="{date}">\n<reqid>{reqid}</reqid>\n']
        for prio in ("phrase", "strict", "all"):
            parts.append(f'<found priority="{prio}">{total_docs}</found>\n')
        parts.append(f"<found-human>Нашлось {human} ответов</found-human>\n<is-local>no</is-local>\n")
        parts.append("<results>\n")
        parts.append(f'<grouping attr="d" mode="deep" groups-on-page="{groups_on_page}" '
                     'docs-in-group="1" curcateg="-1">\n')
        first = page * groups_on_page + 1
        parts.append(f'<page first="{first}" last="{first + len(chunk) - 1}">{page}</page>\n')
        for url, host, company in chunk:
            parts.append(self._group(url, host, company, key, qw, region, max_passages, query_text))
        for prio in ("phrase", "strict", "all"):
            parts.append(f'<found priority="{prio}">{len(results)}</found>\n')
        for prio in ("phrase", "strict", "all"):
            parts.append(f'<found-docs priority="{prio}">{total_docs - 11}</found-docs>\n')
        parts.append(f"<found-docs-human>нашёл {human} ответов</found-docs-human>\n</grouping>\n")
        parts.append("</results>\n</response>\n<resource-usage>\n")
        cpu = stable_int(key, region, page)
        parts.append(f"<cpu-time-sum>{1_000_000 + cpu % 3_000_000}</cpu-time-sum>\n"
                     f"<cpu-time-max>{10_000 + cpu % 20_000}</cpu-time-max>\n</resource-usage>\n"
                     "</yandexsearch>\n")
        return "".join(parts)

    @staticmethod
    def _human(n: int) -> str:
        if n >= 1_000_000:
            return f"{round(n / 1_000_000)} млн"
        if n >= 1_000:
            return f"{round(n / 1_000)} тыс."
        return str(n)

    def _reqid(self, query: str, region: int, page: int, now: datetime) -> str:
        ms = int(now.timestamp() * 1_000_000)
        h = stable_int(query, region, page, ms)
        return f"{ms}-{h}-balancer-l7leveler-kubr-yp-sas-{h % 300}-BAL"

    def _group(self, url: str, host: str, c: Company | None, key: str, qw: list[str],
               region: int, max_passages: int, query_text: str) -> str:
        h = stable_int(self.seed, url, key)
        rng = random.Random(h)
        niche = detect_niche(qw) or NICHES[0]
        city = detect_city(qw) or CITY_BY_REGION.get(region) or CITY_BY_REGION[213]
        categ = host[4:] if host.startswith("www.") else host
        doc_id = f"Z{h & 0xFFFFFFFFFFFFFFFF:016X}"
        touchdown = ' touchdown="РКН: сайт нарушает закон РФ"' if h % 41 == 0 else ""
        tm = 1_760_000_000 + h % 5_000_000
        la = tm - h % 900_000
        sign = hashlib.md5(f"{url}|{key}".encode()).hexdigest()
        saved = ("https://yandexwebcache.net/yandbtm?fmode=inject&tm=" f"{tm}&tld=ru&lang=ru&la={la}"
                 f"&text={quote_plus(query_text)}&url={quote(url, safe='/')}&l10n=ru&mime=html"
                 f"&sign={sign}&keyno=0")
        if c is not None:
            title, passages = self._company_texts(c, niche, city, rng)
            charset = "windows-1251" if c.kind in ("cp1251", "cp1251_meta") else "utf-8"
        else:
            agg = next(a for a in AGGREGATORS if a[0] == host)
            title = agg[2].format(Niche=niche.title.capitalize(), niche=niche.title,
                                  city_prep=city.prepositional)
            passages = [f"{niche.title.capitalize()} {city.prepositional}: {rng.randint(20, 900)} "
                        "предложений с ценами, отзывами и фото. Выбирайте лучших исполнителей.",
                        f"Рейтинг: {niche.title} — адреса на карте, телефоны, часы работы."]
            charset = "utf-8"
        lines = [f"<group>\n<categ attr=\"d\" name={quoteattr(categ)}/>\n"
                 f"<doccount>{1 + h % 400}</doccount>\n<relevance priority=\"all\"/>\n"
                 f"<doc{touchdown} id=\"{doc_id}\">\n<relevance priority=\"all\"/>\n"]
        if h % 17:
            lines.append(f"<saved-copy-url>{escape(saved)}</saved-copy-url>\n")
        lines.append(f"<url>{escape(url)}</url>\n<domain>{escape(host)}</domain>\n")
        if h % 13:
            lines.append(f"<title>{highlight(title, qw)}</title>\n")
        no_passages = h % 9 == 0
        if no_passages or h % 7 == 0:
            lines.append(f"<headline>{highlight(passages[0], qw)}</headline>\n")
        if h % 19:
            lines.append(f"<modtime>{datetime.fromtimestamp(la - h % 80_000_000, UTC):%Y%m%dT%H%M%S}</modtime>\n")
        lines.append(f"<size>{h % 90_000}</size>\n<charset>{charset}</charset>\n<mime-type>text/html</mime-type>\n")
        if not no_passages:
            n = 1 + h % max_passages
            lines.append("<passages>\n" + "".join(f"<passage>{highlight(p, qw)}</passage>\n"
                                                  for p in passages[:n]) + "</passages>\n")
        lines.append("<properties>\n<_PassagesType>0</_PassagesType>\n")
        if h % 23:
            lines.append("<lang>ru</lang>\n")
        lines.append("</properties>\n</doc>\n</group>\n")
        return "".join(lines)

    def _company_texts(self, c: Company, niche: Niche, city: City, rng: random.Random) -> tuple[str, list[str]]:
        n = NICHE_BY_KEY[c.niche] if c.niche == niche.key else niche
        service = rng.choice(n.services)
        title = rng.choice((
            f"{n.kinds[0]} «{c.brand}» {city.prepositional}",
            f"{service} {city.prepositional} — {c.brand}",
            f"{c.brand} — {n.title} {city.prepositional}: цены, отзывы",
            f"{n.title.capitalize()} {city.prepositional} недорого | {service} — {c.brand}",
            f"{c.brand}: {service.lower()} {city.prepositional} под ключ...",
        ))
        passages = [
            f"{n.kinds[0]} «{c.brand}» {city.prepositional}. {service} по доступным ценам. "
            f"Работаем с {2000 + c.id % 22} года, гарантия на все работы.",
            f"{n.title.capitalize()}: {', '.join(s.lower() for s in n.services[:3])}. "
            f"Звоните: {c.phone}.",
            f"Бесплатная консультация. {c.name} — более {50 + c.id % 900} довольных клиентов "
            f"{city.prepositional}.",
            f"{service} — от {rng.randint(5, 90) * 100} руб. Выезд специалиста в день обращения.",
            f"Адрес: {city.name}, {c.street}, д. {c.house}. Режим работы без выходных.",
        ]
        return title, passages

    # convenience for tests and benchmarks
    def sample_queries(self) -> Iterable[tuple[str, int]]:
        for niche in NICHES:
            for city in CITIES:
                yield f"{niche.title} {city.name}", city.region
