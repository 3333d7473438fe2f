"""Domains that are never turned into companies: aggregators, marketplaces, social networks,
directories, job sites, maps, review sites, search engines, video hosts, state services.

A host is blocked when it or any parent domain is listed (`support.avito.ru` is blocked by
`avito.ru`). An entry ending in `.*` blocks a brand under every suffix (`yandex.*` blocks
`yandex.ru`, `yandex.com.tr`, `market.yandex.ru`).
"""

from __future__ import annotations

from collections.abc import Iterable

from leadgen.serp.domains import registrable_domain, to_ascii_host

DEFAULT_BLOCKED_DOMAINS: frozenset[str] = frozenset(
    {
        # classifieds, marketplaces, B2B catalogues
        "avito.ru", "youla.ru", "ozon.ru", "wildberries.ru", "wb.ru", "aliexpress.ru",
        "aliexpress.com", "megamarket.ru", "sbermegamarket.ru", "lamoda.ru", "kazanexpress.ru",
        "tiu.ru", "pulscen.ru", "satom.ru", "blizko.ru", "regmarkets.ru", "deal.by",
        "prom.ua", "olx.ua", "farpost.ru", "drom.ru", "auto.ru", "cian.ru", "domclick.ru",
        "irr.ru", "price.ru", "e-katalog.ru", "dns-shop.ru", "mvideo.ru",
        "eldorado.ru", "citilink.ru", "leroymerlin.ru", "petrovich.ru",
        # directories, maps, company registries
        "2gis.ru", "2gis.com", "yell.ru", "zoon.ru", "flamp.ru", "orgpage.ru", "spravker.ru",
        "rusprofile.ru", "list-org.com", "spark-interfax.ru", "checko.ru", "sbis.ru",
        "zachestnyibiznes.ru", "audit-it.ru", "companies.rbc.ru", "kartoteka.ru",
        "vbankcenter.ru", "bizly.ru", "spravka.ru", "yp.ru", "cataloxy.ru", "jsprav.ru",
        "moskva.bizly.ru", "firmika.ru", "mapcard.pro", "tupwidget.com", "nalog.ru",
        "nalog.gov.ru", "gosuslugi.ru", "mos.ru", "gov.ru",
        # services marketplaces and ratings
        "profi.ru", "workspace.ru", "youdo.com", "fl.ru", "kwork.ru", "freelance.ru",
        "weblancer.net", "vuzopedia.ru", "rating-gamedev.ru", "wadline.com", "tagline.ru",
        "ratingruneta.ru", "cmsmagazine.ru",
        # reviews, medicine and beauty aggregators
        "otzovik.com", "irecommend.ru", "otzyvru.com", "prodoctorov.ru", "napopravku.ru",
        "docdoc.ru", "sberhealth.ru", "zoon.com", "yell.com", "tripadvisor.ru",
        "tripadvisor.com", "restoclub.ru", "afisha.ru", "booking.com", "ostrovok.ru",
        "tutu.ru", "kudago.com", "vsezuby.ru",
        # job sites
        "hh.ru", "superjob.ru", "rabota.ru", "zarplata.ru", "trudvsem.ru", "rabota.yandex.ru",
        "careerist.ru", "gorodrabot.ru", "avito.st",
        # social networks, messengers, blogs, Q&A
        "vk.com", "vk.ru", "ok.ru", "t.me", "telegram.me", "telegram.org", "facebook.com",
        "instagram.com", "twitter.com", "x.com", "linkedin.com", "tiktok.com",
        "pinterest.com", "reddit.com", "pikabu.ru", "livejournal.com", "habr.com",
        "vc.ru", "spark.ru", "dzen.ru", "zen.yandex.ru", "mail.ru", "otvet.mail.ru",
        "whatsapp.com", "wa.me", "viber.com", "tenchat.ru", "teletype.in",
        # video hosts
        "youtube.com", "youtu.be", "rutube.ru", "vkvideo.ru", "vimeo.com", "platformcraft.ru",
        # search engines, portals, encyclopedias, media
        "ya.ru", "yandex.net", "google.com", "bing.com", "rambler.ru", "wikipedia.org",
        "wikiwand.com", "ruwiki.ru", "rbc.ru", "kp.ru", "ria.ru", "banki.ru", "sravni.ru",
        "sberbank.ru", "sberbank.com", "tbank.ru", "tinkoff.ru", "vtb.ru", "alfabank.ru",
    }
)

# A brand blocked under every public suffix and every subdomain.
DEFAULT_BLOCKED_BRANDS: frozenset[str] = frozenset({"yandex", "google"})


def _entry(raw: str) -> tuple[str, bool] | None:
    """(domain, is_brand) from a configured entry; None when it is not a usable domain."""
    value = raw.strip().lower().lstrip("*.").rstrip(".")
    if "://" in value:
        value = value.split("://", 1)[1]
    value = value.split("/", 1)[0]
    if value.startswith("www."):
        value = value[4:]
    if value.endswith(".*"):
        return value[:-2], True
    try:
        return to_ascii_host(value), False
    except ValueError:
        return None


class Blocklist:
    """A set of blocked domains and brands; `is_blocked(host)` matches parent domains."""

    def __init__(self, extra: Iterable[str] = (), *, defaults: bool = True) -> None:
        self.domains: set[str] = set(DEFAULT_BLOCKED_DOMAINS) if defaults else set()
        self.brands: set[str] = set(DEFAULT_BLOCKED_BRANDS) if defaults else set()
        for raw in extra:
            parsed = _entry(raw)
            if parsed is None:
                continue
            value, is_brand = parsed
            (self.brands if is_brand else self.domains).add(value)

    def __len__(self) -> int:
        return len(self.domains) + len(self.brands)

    def is_blocked(self, host: str, domain: str | None = None) -> bool:
        """True when the host, a parent domain of it, or its brand is listed (`domain`: the
        host's registrable domain when the caller already knows it)."""
        try:
            ascii_host = to_ascii_host(host.rsplit("@", 1)[-1].split(":", 1)[0])
        except ValueError:
            return False
        labels = ascii_host.split(".")
        for start in range(len(labels)):
            if ".".join(labels[start:]) in self.domains:
                return True
        if self.brands:
            domain = domain or registrable_domain(ascii_host)
            if domain and domain.split(".", 1)[0] in self.brands:
                return True
        return False


def blocklist_from_settings(settings) -> Blocklist:  # noqa: ANN001 - leadgen.config.Settings
    return Blocklist(settings.search_blocked_domains)
