"""The blocklist: defaults, subdomains, brands under every suffix, configured extras."""

from __future__ import annotations

import pytest

from leadgen.config import load_settings
from leadgen.serp.blocklist import DEFAULT_BLOCKED_DOMAINS, Blocklist, blocklist_from_settings


@pytest.mark.parametrize(
    "host",
    ["avito.ru", "www.avito.ru", "support.avito.ru", "2gis.ru", "msk.2gis.ru", "yell.ru",
     "zoon.ru", "hh.ru", "spb.hh.ru", "vk.com", "m.vk.com", "t.me", "youtube.com",
     "ru.wikipedia.org", "yandex.ru", "market.yandex.ru", "yandex.com.tr", "yandex.cloud",
     "maps.google.com", "google.co.uk", "ozon.ru", "wildberries.ru", "prodoctorov.ru",
     "gosuslugi.ru", "rusprofile.ru", "list-org.com", "profi.ru", "dzen.ru", "AVITO.RU."],
)
def test_blocked(host: str) -> None:
    assert Blocklist().is_blocked(host)


@pytest.mark.parametrize(
    "host",
    ["romashka.ru", "notavito.ru", "avito.ru.example.com", "myyandex.ru", "yandex-partner.ru",
     "googleplex-fans.ru", "brand.msk.ru", "тест.рф"],
)
def test_not_blocked(host: str) -> None:
    assert not Blocklist().is_blocked(host)


def test_default_list_is_substantial() -> None:
    assert len(DEFAULT_BLOCKED_DOMAINS) >= 80


def test_settings_extend_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEARCH_BLOCKED_DOMAINS",
                       "Competitor.ru, https://www.other.com/path, *.wild.net, brandx.*, тест.рф")
    blocklist = blocklist_from_settings(load_settings())
    assert blocklist.is_blocked("shop.competitor.ru")
    assert blocklist.is_blocked("other.com")
    assert blocklist.is_blocked("a.wild.net")
    assert blocklist.is_blocked("brandx.com.tr")
    assert blocklist.is_blocked("xn--e1aybc.xn--p1ai")
    assert blocklist.is_blocked("avito.ru")  # defaults stay
    assert not Blocklist(defaults=False).is_blocked("avito.ru")
