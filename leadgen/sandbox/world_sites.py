"""Synthetic company sites: the email plan (ground truth) and the HTML pages that show it.

A `Company` carries its identity and the planted addresses; a `Site` renders its pages lazily
and answers `respond(scheme, host, target)` with a `Response` (status, headers, body, delay,
streamed size, connection reset) that the web proxy writes out.
"""

from __future__ import annotations

import hashlib
import html
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from leadgen.sandbox.world_vocab import (
    FILLER,
    FIRST_NAMES,
    FREEMAIL,
    NICHE_BY_KEY,
    ROLE_PRIMARY,
    ROLE_SECONDARY,
    STUDIOS,
    City,
    translit,
)

# Site kinds. Those in UNREACHABLE are expected to yield no email for a careful crawler.
KIND_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("normal", 52.0), ("no_email", 8.0), ("freemail_only", 6.0), ("personal_only", 5.0),
    ("cp1251", 4.0), ("cp1251_meta", 2.0), ("redirect_www", 3.0), ("robots", 2.0),
    ("redirect_private", 1.5), ("redirect_loop", 1.0), ("slow", 1.5), ("huge", 1.0),
    ("http_404", 1.5), ("http_500", 1.0), ("binary", 1.0), ("broken_encoding", 1.5),
    ("reset", 1.0), ("dns_private", 1.0), ("dns_ipv6_loopback", 1.0), ("nxdomain", 1.5),
)
UNREACHABLE = frozenset({
    "no_email", "robots", "redirect_private", "redirect_loop", "http_404", "http_500", "binary",
    "reset", "dns_private", "dns_ipv6_loopback", "nxdomain",
})
PRIVATE_TARGETS = ("intranet", "http://127.0.0.1:6379/", "http://169.254.169.254/latest/meta-data/",
                   "http://10.0.0.5/admin/")

CONTACT_PATHS = ("/contacts", "/contacts/", "/kontakty/", "/contact-us", "/kontakty.html",
                 "/contacts.php", "/page/contacts", "/info/contacts/", "/kontakti/", "/svyaz/")
CONTACT_TEXTS = ("Контакты", "Контакты", "Контакты", "Связаться с нами", "Как нас найти",
                 "Контактная информация", "КОНТАКТЫ")
ABOUT_PATHS = ("/about", "/about/", "/o-kompanii/", "/about-us/", "/o-nas/", "/company/")
ABOUT_TEXTS = ("О компании", "О нас", "О компании", "Компания")
PLACEHOLDERS = ("example@example.com", "email@domain.ru", "your@email.ru", "name@example.ru",
                "user@domain.com")
IMAGE_TRAPS = ("logo@2x.png", "logo@3x.png", "hero-bg@2x.jpg", "icon-phone@2x.svg",
               "banner_main@2x.webp", "sprite@2x.png")
SECONDARY_LABELS = {"hr": "Отдел кадров", "buh": "Бухгалтерия", "job": "Вакансии",
                    "pr": "Для СМИ", "reklama": "Реклама", "support": "Служба поддержки",
                    "director": "Руководство"}
SERVERS = ("nginx", "nginx/1.24.0", "Apache/2.4.57 (Ubuntu)", "nginx/1.18.0 (Ubuntu)", "ddos-guard",
           "openresty", "Apache")


def stable_int(*parts: object) -> int:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


@dataclass(frozen=True)
class Placement:
    page: str  # footer | home | contacts | about | rekvizity
    method: str
    addresses: tuple[str, ...]
    label: str = "E-mail"


@dataclass
class Company:
    id: int
    brand: str
    name: str  # legal name: ООО «…», ИП …
    domain: str  # registrable domain, ASCII (punycode for .рф)
    display_domain: str  # as people write it (Cyrillic for .рф)
    mail_domain: str
    niches: tuple[str, ...]
    regions: tuple[int, ...]
    kind: str
    canonical_host: str
    subdomains: tuple[str, ...]
    mx: str  # yandex | mailru | google | own | none
    seed: str
    director: tuple[str, str, str] = ("", "", "")  # surname, first name, patronymic
    primary: str | None = None
    emails: tuple[str, ...] = ()
    traps: tuple[str, ...] = ()
    placements: tuple[Placement, ...] = ()
    phone: str = ""
    street: str = ""
    house: int = 1
    inn: str = ""
    private_target: str = ""

    @property
    def niche(self) -> str:
        return self.niches[0]

    @property
    def region(self) -> int:
        return self.regions[0]

    @property
    def reachable(self) -> bool:
        return self.kind not in UNREACHABLE


def cf_encode(email: str, key: int) -> str:
    return f"{key:02x}" + "".join(f"{ord(c) ^ key:02x}" for c in email)


def plan_emails(rng: random.Random, c: Company) -> None:
    """Choose the planted addresses, traps and where they appear; fill the ground truth."""
    surname, first, _ = c.director
    first_lat = next(lat for cyr, lat in FIRST_NAMES if cyr == first)
    sur_lat = translit(surname)
    personal_local = rng.choice((f"{first_lat[0]}.{sur_lat}", sur_lat, f"{first_lat}.{sur_lat}",
                                 f"{sur_lat}.{first_lat[0]}", f"{first_lat}"))
    free_local = rng.choice((f"{sur_lat}.{translit(c.brand)[:12].strip('-')}",
                             f"{translit(c.brand)[:14].strip('-')}", f"{sur_lat}{rng.randint(70, 99)}",
                             f"{translit(c.brand)[:10].strip('-')}.{rng.choice(('info', 'office'))}"))
    free_local = free_local.replace("-", ".").strip(".")
    freemail = f"{free_local}@{rng.choice(FREEMAIL)}"
    role = f"{rng.choice(ROLE_PRIMARY)}@{c.mail_domain}"
    personal = f"{personal_local}@{c.mail_domain}"
    secondary = f"{rng.choice(ROLE_SECONDARY)}@{c.mail_domain}"

    kind = c.kind
    emails: list[str] = []
    primary: str | None
    if kind == "no_email":
        primary = None
    elif kind == "freemail_only":
        primary = freemail
        emails = [freemail]
    elif kind == "personal_only":
        primary = personal
        emails = [personal] + ([freemail] if rng.random() < 0.3 else [])
    else:
        primary = role
        emails = [role]
        if rng.random() < 0.35:
            emails.append(secondary)
        if rng.random() < 0.3:
            emails.append(personal)
        if rng.random() < 0.12:
            emails.append(freemail)

    methods = ("mailto", "mailto", "mailto", "text", "text", "mailto_subject", "mailto_pct",
               "obf_at", "obf_paren", "obf_sobaka", "entities", "cfemail", "microdata", "jsonld")
    placements: list[Placement] = []
    if primary:
        main_method = rng.choice(methods)
        placements.append(Placement("contacts", main_method, (primary,)))
        if main_method in ("jsonld",) or rng.random() < 0.55:
            placements.append(Placement("footer", rng.choice(("mailto", "text", "cfemail", "entities")),
                                        (primary,)))
        if rng.random() < 0.25:
            placements.append(Placement("home", "jsonld", (primary,)))
    for extra in emails[1:]:
        if extra == secondary and rng.random() < 0.4 and primary:
            placements.append(Placement("contacts", "mailto_multi", (primary, extra)))
            continue
        page = rng.choice(("contacts", "about", "rekvizity"))
        label = {secondary: SECONDARY_LABELS.get(secondary.split("@")[0], "E-mail"),
                 personal: "Директор"}.get(extra, "Для резюме")
        placements.append(Placement(page, rng.choice(("mailto", "text", "obf_at", "entities")),
                                    (extra,), label))

    traps: list[str] = []
    if rng.random() < 0.45:
        traps.append(rng.choice(IMAGE_TRAPS))
    if rng.random() < 0.4 or kind == "no_email":
        traps.append(rng.choice(PLACEHOLDERS))
    if rng.random() < 0.25 or (kind == "no_email" and rng.random() < 0.5):
        studio = rng.choice(STUDIOS)
        traps.append(f"{rng.choice(('hello', 'info', 'zakaz'))}@{studio[1]}")
    if rng.random() < 0.2:
        traps.append(f"{rng.choice(('noreply', 'no-reply', 'do-not-reply'))}@{c.mail_domain}")
    if rng.random() < 0.15:
        traps.append(f"{rng.getrandbits(64):016x}@o{rng.randint(100000, 999999)}.ingest.sentry.io")
    c.primary = primary
    c.emails = tuple(dict.fromkeys(emails))
    c.traps = tuple(traps)
    c.placements = tuple(placements)


# --------------------------------------------------------------------------------------------
# Rendering

def render_email(method: str, addresses: tuple[str, ...], rng: random.Random, label: str) -> str:
    a = addresses[0]
    local, _, dom = a.partition("@")
    esc = html.escape
    if method == "mailto":
        return f'<p>{label}: <a href="mailto:{esc(a)}">{esc(a)}</a></p>'
    if method == "mailto_subject":
        subj = quote(rng.choice(("Заявка с сайта", "Вопрос", "Запрос цены")))
        text = rng.choice(("Написать нам", "Напишите нам", "Отправить письмо"))
        return f'<p><a class="btn" href="mailto:{esc(a)}?subject={subj}&amp;body=">{text}</a></p>'
    if method == "mailto_multi":
        joined = ",".join(addresses)
        return (f'<p>{label}: <a href="mailto:{esc(joined)}">{esc(", ".join(addresses))}</a></p>')
    if method == "mailto_pct":
        enc = "".join(f"%{ord(ch):02X}" if i < 3 else ch for i, ch in enumerate(local))
        return f'<p>Почта: <a href="mailto:{enc}%40{dom}" title="Написать">написать письмо</a></p>'
    if method == "text":
        return f'<div class="contact-row"><span>{label}:</span> {esc(a)}</div>'
    if method == "obf_at":
        return f"<p>{label}: {local} [at] {dom.replace('.', ' [dot] ')}</p>"
    if method == "obf_paren":
        return f"<p>{label}: {local}(at){dom}</p>"
    if method == "obf_sobaka":
        return f"<p>{label}: {local} собака {dom}</p>"
    if method == "entities":
        if rng.random() < 0.5:
            enc = "".join(f"&#{ord(ch)};" for ch in a)
        else:
            enc = f"{local}&#64;{dom.replace('.', '&#46;')}"
        return f"<p>{label}: <span>{enc}</span></p>"
    if method == "cfemail":
        key = rng.randint(1, 255)
        code = cf_encode(a, key)
        if rng.random() < 0.5:
            return (f'<p>{label}: <a href="/cdn-cgi/l/email-protection#{code}">'
                    f'<span class="__cf_email__" data-cfemail="{code}">[email&#160;protected]</span></a></p>')
        return (f'<p>{label}: <span class="__cf_email__" data-cfemail="{code}">'
                f"[email&#160;protected]</span></p>")
    if method == "microdata":
        return (f'<div itemscope itemtype="https://schema.org/Organization"><p>{label}: '
                f'<span itemprop="email">{esc(a)}</span></p></div>')
    if method == "jsonld":
        return ""  # handled by the page head
    raise ValueError(method)


CSS_PROPS = ("margin", "padding", "color", "background", "font-size", "line-height", "border",
             "display", "width", "max-width", "text-align", "border-radius", "box-shadow")


def _make_css(rng: random.Random, rules: int) -> str:
    out = []
    for i in range(rules):
        sel = rng.choice((".header", ".footer", ".card", ".btn", ".nav", ".hero", ".section",
                          ".service", ".price", ".review", ".form", ".contact-row"))
        props = "; ".join(f"{rng.choice(CSS_PROPS)}: {rng.randint(0, 40)}px"
                          for _ in range(rng.randint(2, 6)))
        out.append(f"{sel}-{i} {{ {props}; }}")
    return "\n".join(out)


_POOL_RNG = random.Random("leadgen-sandbox-css")
CSS_POOL = tuple(_make_css(_POOL_RNG, _POOL_RNG.randint(40, 160)) for _ in range(24))
SVG_POOL = tuple("".join(f'<symbol id="i{i}" viewBox="0 0 24 24"><path d="M{_POOL_RNG.randint(0, 24)} '
                         f'{_POOL_RNG.randint(0, 24)}L{_POOL_RNG.randint(0, 24)} {_POOL_RNG.randint(0, 24)}Z"/>'
                         "</symbol>" for i in range(_POOL_RNG.randint(20, 120))) for _ in range(16))


@dataclass(frozen=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    delay: float = 0.0
    stream_total: int = 0  # > 0: body is followed by filler until this many bytes in all
    stream_filler: bytes = b""
    reset: bool = False  # drop the connection without an answer


def _text_response(status: int, text: str, ctype: str = "text/html; charset=utf-8",
                   server: str = "nginx", extra: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, (("Content-Type", ctype), ("Server", server)) + extra, text.encode())


def redirect(status: int, location: str, server: str = "nginx") -> Response:
    body = (f"<html><head><title>{status} Moved</title></head><body><center><h1>{status} "
            f"Moved</h1></center><hr><center>{server}</center></body></html>")
    return _text_response(status, body, server=server, extra=(("Location", location),))


def not_found(server: str = "nginx") -> Response:
    return _text_response(404, "<html><head><title>404 Not Found</title></head><body><h1>Страница "
                          "не найдена</h1><p>Запрошенная страница не существует.</p>"
                          '<a href="/">На главную</a></body></html>', server=server)


@dataclass
class Site:
    """The pages of one company's site (rendered on first use)."""

    company: Company
    city: City
    _pages: dict[str, Response] | None = field(default=None, repr=False)
    _routes: dict[str, Callable[[], Response]] | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return self.company.kind

    @property
    def hosts(self) -> tuple[str, ...]:
        c = self.company
        return (c.domain, f"www.{c.domain}") + c.subdomains

    def _rng(self, *extra: object) -> random.Random:
        return random.Random("|".join(map(str, (self.company.seed, "site") + extra)))

    # -- routing ------------------------------------------------------------------------------
    def respond(self, scheme: str, host: str, target: str) -> Response:
        c = self.company
        host = host.lower().rstrip(".")
        rng = self._rng("layout")
        server = rng.choice(SERVERS)
        path = target.split("?", 1)[0].split("#", 1)[0] or "/"
        if c.kind == "reset":
            return Response(0, (), reset=True)
        is_sub = host in c.subdomains
        if scheme == "http":
            if c.kind == "redirect_loop" and path == "/":
                other = c.domain if host != c.domain else f"www.{c.domain}"
                return redirect(301, f"http://{other}/", server)
            return redirect(301, f"https://{host if is_sub else c.canonical_host}{target}", server)
        if not is_sub and host != c.canonical_host:
            return redirect(301, f"https://{c.canonical_host}{target}", server)
        if path == "/robots.txt":
            return self._robots(server)
        if c.kind == "redirect_private":
            tgt = c.private_target
            loc = f"http://intranet.{c.domain}/" if tgt == "intranet" else tgt
            return redirect(302, loc, server)
        if c.kind == "redirect_loop":
            nxt = "/index.php" if path == "/" else "/"
            return redirect(302, nxt, server)
        if c.kind in ("http_404", "http_500"):
            status = 404 if c.kind == "http_404" else 500
            body = ("<html><head><title>500 Internal Server Error</title></head><body>"
                    "<h1>Internal Server Error</h1></body></html>" if status == 500
                    else "<html><body><h1>404 Not Found</h1></body></html>")
            return _text_response(status, body, server=server)
        if c.kind == "binary" and path in ("/", "/index.html"):
            data = random.Random(c.seed + "bin").randbytes(24_000)
            return Response(200, (("Content-Type", "application/octet-stream"), ("Server", server)),
                            b"PK\x03\x04" + data)
        page = self._get(path.rstrip("/") or "/")
        if page is None:
            return not_found(server)
        return page

    def _robots(self, server: str) -> Response:
        c = self.company
        rng = self._rng("robots")
        if c.kind == "robots":
            text = rng.choice(("User-agent: *\nDisallow: /\n",
                               "User-agent: Yandex\nDisallow: /\n\nUser-agent: *\nDisallow: /\n"))
        else:
            roll = rng.random()
            if roll < 0.2:
                return not_found(server)
            text = ("User-agent: *\nDisallow: /admin/\nDisallow: /bitrix/\nDisallow: /search/\n"
                    f"Disallow: /*?utm_\n\nHost: https://{c.canonical_host}\n"
                    f"Sitemap: https://{c.canonical_host}/sitemap.xml\n")
            if roll > 0.8:
                text = "User-agent: *\nAllow: /\n"
        return Response(200, (("Content-Type", "text/plain"), ("Server", server)), text.encode())

    # -- pages --------------------------------------------------------------------------------
    def pages(self) -> dict[str, Response]:
        """Every page of the site, rendered (tests; the proxy renders one page at a time)."""
        return {path: self._get(path) for path in self._table()}

    def _get(self, key: str) -> Response | None:
        if self._pages is None:
            self._pages = {}
        page = self._pages.get(key)
        if page is None:
            spec = self._table().get(key)
            if spec is None:
                return None
            page = self._finish(spec())
            self._pages[key] = page
        return page

    def _table(self) -> dict[str, Callable[[], Response]]:
        if self._routes is None:
            self._routes = self._build_table()
        return self._routes

    def _build_table(self) -> dict[str, Callable[[], Response]]:
        c = self.company
        rng = self._rng("layout")
        server = rng.choice(SERVERS)
        niche = NICHE_BY_KEY[c.niche]
        contact_path = rng.choice(CONTACT_PATHS)
        contact_text = rng.choice(CONTACT_TEXTS)
        about_path = rng.choice(ABOUT_PATHS)
        about_text = rng.choice(ABOUT_TEXTS)
        rekv = rng.random() < 0.4 or any(p.page == "rekvizity" for p in c.placements)
        services = rng.sample(niche.services, k=min(len(niche.services), rng.randint(4, 7)))
        service_slugs = [(s, translit(s)) for s in services]
        nav_style = rng.random()
        nav = [("/", "Главная"), ("/uslugi/", rng.choice(("Услуги", "Наши услуги", "Услуги и цены"))),
               ("/ceny/", "Цены"), (about_path, about_text)]
        if rekv:
            nav.append(("/rekvizity/", "Реквизиты"))
        footer_only_contacts = nav_style < 0.15
        if nav_style < 0.08:
            # contact link with a non-descriptive URL: only the link text tells
            contact_path = f"/page/{rng.randint(2, 40)}"
        if not footer_only_contacts:
            nav.append((contact_path, contact_text))
        charset = "windows-1251" if c.kind in ("cp1251", "cp1251_meta") else "utf-8"
        ctx = {
            "c": c, "niche": niche, "server": server, "nav": nav,
            "contact_path": contact_path, "contact_text": contact_text, "charset": charset,
            "services": service_slugs, "about_path": about_path,
        }
        page = self._page
        table: dict[str, Callable[[], Response]] = {
            "/": lambda: page(ctx, "home", f"{niche.kinds[0]} «{c.brand}» {self.city.prepositional}"),
            contact_path.rstrip("/"): lambda: page(ctx, "contacts", f"{contact_text} — {c.brand}"),
            about_path.rstrip("/"): lambda: page(ctx, "about", f"{about_text} — {c.brand}"),
            "/uslugi": lambda: page(ctx, "services", f"Услуги — {c.brand}"),
            "/ceny": lambda: page(ctx, "prices", f"Цены на услуги — {c.brand}"),
            "/privacy-policy": lambda: page(ctx, "privacy", "Политика конфиденциальности"),
        }
        if rekv:
            table["/rekvizity"] = lambda: page(ctx, "rekvizity", f"Реквизиты {c.name}")
        for title, slug in service_slugs:
            table[f"/uslugi/{slug}"] = (lambda t=title: page(
                ctx, "service", f"{t} {self.city.prepositional}", service=t))
        table["/index.php"] = lambda: redirect(301, "/", server)
        paths = [p for p in table if p != "/index.php"]
        table["/sitemap.xml"] = lambda: Response(200, (("Content-Type", "application/xml"),), (
            '<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/'
            'sitemap/0.9">' + "".join(f"<url><loc>https://{c.canonical_host}{p}</loc></url>"
                                      for p in paths) + "</urlset>").encode())
        table["/favicon.ico"] = lambda: Response(200, (("Content-Type", "image/x-icon"),),
                                                 b"\x00\x00\x01\x00")
        if c.kind == "huge":
            home = table["/"]

            def huge() -> Response:
                r = home()
                filler = ("<div class=\"spacer\">" + "&nbsp;" * 120 + "</div>\n").encode()
                cut = r.body.index(b"<main")
                return Response(200, r.headers, r.body[:cut], stream_total=10 * 1024 * 1024,
                                stream_filler=filler)
            table["/"] = huge
        return table

    def _finish(self, r: Response) -> Response:
        c = self.company
        if c.kind == "slow":
            delay = 2.0 + (stable_int(c.seed, "slow") % 1500) / 1000
            return Response(r.status, r.headers, r.body, delay, r.stream_total, r.stream_filler)
        return r

    def _page(self, ctx: dict, which: str, title: str, service: str = "") -> Response:
        c: Company = ctx["c"]
        niche = ctx["niche"]
        rng = self._rng("page", which, service)
        city = self.city
        esc = html.escape
        parts: list[str] = []
        charset = ctx["charset"]
        meta_charset = (f'<meta charset="{charset}">' if rng.random() < 0.5 else
                        f'<meta http-equiv="Content-Type" content="text/html; charset={charset}">')
        desc = f"{niche.kinds[0]} «{c.brand}» {city.prepositional}: {', '.join(s for s, _ in ctx['services'][:3]).lower()}."
        parts.append(f'<!DOCTYPE html>\n<html lang="ru">\n<head>\n{meta_charset}\n'
                     f"<title>{esc(title)}</title>\n"
                     f'<meta name="description" content="{esc(desc)}">\n'
                     '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                     f'<link rel="canonical" href="https://{c.canonical_host}/">\n'
                     f"<style>\n{rng.choice(CSS_POOL)}\n</style>\n")
        jsonld_emails = [p.addresses[0] for p in c.placements
                         if p.method == "jsonld" and (p.page == which or (p.page == "contacts" and which == "contacts"))]
        if which in ("home", "contacts") and (jsonld_emails or rng.random() < 0.4):
            data = {"@context": "https://schema.org", "@type": "LocalBusiness", "name": c.name,
                    "url": f"https://{c.canonical_host}/", "telephone": c.phone,
                    "address": {"@type": "PostalAddress", "addressLocality": city.name,
                                "streetAddress": f"{c.street}, д. {c.house}"}}
            if jsonld_emails:
                e = jsonld_emails[0]
                data["email"] = f"mailto:{e}" if stable_int(c.seed, "ld") % 3 == 0 else e
            parts.append('<script type="application/ld+json">'
                         + json.dumps(data, ensure_ascii=False) + "</script>\n")
        if "sentry.io" in " ".join(c.traps):
            dsn = next(t for t in c.traps if "sentry.io" in t)
            local, _, host = dsn.partition("@")
            parts.append(f'<script>Sentry.init({{dsn: "https://{local}@{host}/{stable_int(c.seed) % 9000000}",'
                         " tracesSampleRate: 0.1});</script>\n")
        parts.append("<script>window.dataLayer=window.dataLayer||[];function ym(){}"
                     f"ym({stable_int(c.seed, 'ym') % 90000000 + 10000000},'init',{{webvisor:true}});</script>\n")
        parts.append("</head>\n<body>\n")
        # header + nav
        logo = next((t for t in c.traps if t.endswith((".png", ".jpg", ".svg", ".webp"))), "logo.png")
        parts.append(f'<header class="header"><a href="/" class="logo"><img src="/images/{logo}" '
                     f'srcset="/images/{logo} 2x" alt="{esc(c.brand)}"></a>'
                     f'<div class="phone"><a href="tel:+7{c.phone[1:].replace(" ", "").replace("-", "").replace("(", "").replace(")", "")}">{c.phone}</a></div>\n<nav class="nav"><ul>')
        for href, text in ctx["nav"]:
            parts.append(f'<li><a href="{href}">{esc(text)}</a></li>')
        parts.append("</ul></nav></header>\n<main>\n")
        parts.append(f"<h1>{esc(title)}</h1>\n")
        # body
        fill = dict(brand=c.brand, city_prep=city.prepositional, city=city.name, street=c.street,
                    house=c.house, year=2000 + stable_int(c.seed, "y") % 22, n=100 + stable_int(c.seed) % 9000,
                    staff=5 + stable_int(c.seed, "s") % 120, service=service or ctx["services"][0][0])

        def para(k: int) -> str:
            return "<p>" + " ".join(rng.choice(FILLER).format(**fill) for _ in range(k)) + "</p>\n"

        if which == "home":
            parts.append('<section class="hero">' + para(2) + "</section>\n")
            parts.append('<section class="services"><h2>Наши услуги</h2>\n')
            for stitle, slug in ctx["services"]:
                parts.append(f'<div class="card"><h3><a href="/uslugi/{slug}/">{esc(stitle)}</a></h3>'
                             + para(rng.randint(2, 4)) + f'<span class="price">от {rng.randint(5, 90) * 100} руб.</span></div>\n')
            parts.append("</section>\n")
            parts.append('<section class="reviews"><h2>Отзывы клиентов</h2>')
            for _ in range(rng.randint(3, 8)):
                name = rng.choice(FIRST_NAMES)[0]
                parts.append(f'<div class="review"><b>{name}</b>' + para(2) + "</div>")
            parts.append("</section>\n")
            if rng.random() < 0.35:
                parts.append(f'<p class="cta"><a href="{ctx["contact_path"]}">Связаться с нами</a></p>\n')
        elif which in ("services", "prices", "service", "privacy"):
            for _ in range(rng.randint(6, 16)):
                parts.append(para(rng.randint(2, 5)))
            if which == "prices":
                parts.append("<table class=\"price\">" + "".join(
                    f"<tr><td>{esc(s)}</td><td>от {rng.randint(5, 90) * 100} руб.</td></tr>"
                    for s, _ in ctx["services"]) + "</table>\n")
        elif which == "about":
            for _ in range(rng.randint(4, 10)):
                parts.append(para(rng.randint(2, 4)))
            d = c.director
            parts.append(f"<p>Генеральный директор: {d[0]} {d[1]} {d[2]}</p>\n")
        elif which == "rekvizity":
            parts.append(f"<table><tr><td>Полное наименование</td><td>{esc(c.name)}</td></tr>"
                         f"<tr><td>ИНН</td><td>{c.inn}</td></tr><tr><td>ОГРН</td><td>1{c.inn}77</td></tr>"
                         f"<tr><td>Юридический адрес</td><td>{city.name}, {c.street}, д. {c.house}</td></tr>"
                         "</table>\n")
        elif which == "contacts":
            parts.append(f'<div class="contacts"><p>Адрес: {city.name}, {c.street}, д. {c.house}, офис '
                         f"{rng.randint(1, 400)}</p><p>Телефон: {c.phone}</p>\n"
                         "<p>Режим работы: пн–пт 9:00–20:00, сб 10:00–17:00</p>\n"
                         '<div class="map"><iframe src="https://yandex.ru/map-widget/v1/?um=constructor'
                         f'%3A{stable_int(c.seed, "map"):x}" width="100%" height="400"></iframe></div>\n')
            for _ in range(rng.randint(3, 6)):
                parts.append(para(rng.randint(1, 3)))
        # planted addresses on this page
        for p in c.placements:
            if p.page == which and p.method != "jsonld":
                parts.append(render_email(p.method, p.addresses, rng, p.label) + "\n")
        if which == "contacts":
            parts.append("</div>\n")
        placeholder = next((t for t in c.traps if t in PLACEHOLDERS), None)
        if which in ("contacts", "home") and (placeholder or rng.random() < 0.3):
            ph = placeholder or "Ваш e-mail"
            parts.append('<form class="form" method="post" action="/ajax/feedback.php">'
                         '<input type="text" name="name" placeholder="Ваше имя">'
                         f'<input type="email" name="email" placeholder="{ph}">'
                         '<textarea name="msg"></textarea><button type="submit">Отправить</button></form>\n')
            if placeholder and rng.random() < 0.5:
                parts.append(f"<p class=\"hint\">Укажите e-mail в формате {placeholder}</p>\n")
        noreply = next((t for t in c.traps if t.split("@")[0] in ("noreply", "no-reply", "do-not-reply")), None)
        if noreply and which in ("contacts", "privacy"):
            parts.append(f"<p class=\"small\">Уведомления о заказах приходят с адреса {noreply}, "
                         "отвечать на него не нужно.</p>\n")
        parts.append("</main>\n")
        # footer
        parts.append(f'<footer class="footer"><div class="copy">© {2010 + stable_int(c.seed, "f") % 14}–2025 '
                     f"{esc(c.name)}</div><div>{city.name}, {c.street}, д. {c.house}</div>"
                     f"<div>Тел.: {c.phone}</div>\n")
        for p in c.placements:
            if p.page == "footer":
                parts.append(render_email(p.method, p.addresses, rng, p.label) + "\n")
        parts.append(f'<ul class="footer-nav"><li><a href="{ctx["contact_path"]}">{esc(ctx["contact_text"])}</a></li>'
                     f'<li><a href="{ctx["about_path"]}">О компании</a></li>'
                     '<li><a href="/privacy-policy/">Политика конфиденциальности</a></li></ul>\n')
        studio = next((t for t in c.traps if any(t.endswith("@" + s[1]) for s in STUDIOS)), None)
        if studio:
            sname = next(s[0] for s in STUDIOS if studio.endswith("@" + s[1]))
            parts.append(f'<div class="dev">Сайт разработан: <a href="https://{studio.split("@")[1]}/">'
                         f"{esc(sname)}</a>, {studio}</div>\n")
        parts.append("</footer>\n")
        parts.append(f"<!-- svg sprite -->\n<svg style=\"display:none\">{rng.choice(SVG_POOL)}</svg>\n</body>\n</html>\n")
        text = "".join(parts)
        return self._encode(text, which)

    def _encode(self, text: str, which: str) -> Response:
        c = self.company
        server = self._rng("layout").choice(SERVERS)
        kind = c.kind
        if kind == "cp1251":
            body = text.encode("cp1251", errors="xmlcharrefreplace")
            ctype = "text/html; charset=windows-1251"
        elif kind == "cp1251_meta":
            body = text.encode("cp1251", errors="xmlcharrefreplace")
            ctype = "text/html"
        elif kind == "broken_encoding":
            cut = text.find("<main>")
            body = (text[:cut].encode() + text[cut:].encode("cp1251", errors="xmlcharrefreplace"))
            ctype = "text/html; charset=utf-8"
        else:
            body = text.encode()
            ctype = "text/html; charset=utf-8" if stable_int(c.seed, "ct") % 5 else "text/html; charset=UTF-8"
        return Response(200, (("Content-Type", ctype), ("Server", server)), body)
