"""URL normalisation and registrable domains (bundled public suffix list)."""

from __future__ import annotations

import pytest

from leadgen.serp.domains import (
    display_domain,
    homepage_url,
    normalize_url,
    normalize_url_host,
    registrable_domain,
    url_host,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example.com", "https://example.com/"),
        ("example.com:8080/x", "https://example.com:8080/x"),
        ("//example.com/a", "https://example.com/a"),
        ("HTTP://WWW.Test.RU/Path/Page", "http://test.ru/Path/Page"),
        ("https://www.test.ru:443/a?b=1#frag", "https://test.ru/a?b=1"),
        ("http://test.ru:80/", "http://test.ru/"),
        ("https://test.ru:80/", "https://test.ru:80/"),
        ("http://test.ru:8080/x", "http://test.ru:8080/x"),
        ("https://user:pw@host.ru/p", "https://host.ru/p"),
        ("https://user@evil.ru:pw@good.ru/", "https://good.ru/"),
        ("https://a.ru/?utm_source=ya&utm_medium=cpc&id=5&yclid=1&gclid=2&fbclid=3"
         "&_openstat=x&from=serp&UTM_Campaign=z", "https://a.ru/?id=5"),
        ("https://a.ru/p?q=%D1%82%D0%B5%D1%81%D1%82&utm_term=x", "https://a.ru/p?q=%D1%82%D0%B5%D1%81%D1%82"),
        ("https://a.ru/p?utm_source=x", "https://a.ru/p"),
        ("https://тест.рф/контакты", "https://xn--e1aybc.xn--p1ai/контакты"),
        ("https://WWW.ТЕСТ.РФ", "https://xn--e1aybc.xn--p1ai/"),
        ("https://shop.example.com./x", "https://shop.example.com/x"),
        ("http://127.0.0.1:8000/a", "http://127.0.0.1:8000/a"),
        ("http://[::1]:80/", "http://[::1]/"),
        ("https://www.ru/", "https://www.ru/"),
        ("https://a.ru//x//y/", "https://a.ru//x//y/"),
    ],
)
def test_normalize_url(raw: str, expected: str) -> None:
    assert normalize_url(raw) == expected


@pytest.mark.parametrize(
    "raw", ["ftp://a.ru/", "mailto:a@b.ru", "https:///path", "https://a.ru:99999/",
            "https://bad host.ru/", "https://a..ru/", "https://[::1/"],
)
def test_normalize_url_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_url(raw)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("msk.brand.ru", "brand.ru"),
        ("brand.msk.ru", "brand.msk.ru"),  # msk.ru is a public suffix
        ("www.brand.msk.ru", "brand.msk.ru"),
        ("www.Example.COM", "example.com"),
        ("shop.example.co.uk", "example.co.uk"),
        ("example.com.", "example.com"),
        ("example.com:8443", "example.com"),
        ("user:pw@sub.example.com:8443", "example.com"),
        ("тест.рф", "xn--e1aybc.xn--p1ai"),
        ("www.магазин.тест.рф", "xn--e1aybc.xn--p1ai"),
        ("xn--e1aybc.xn--p1ai", "xn--e1aybc.xn--p1ai"),
        ("moscow.seoonlin.ru", "seoonlin.ru"),
        ("ru", None),
        ("msk.ru", None),
        ("co.uk", None),
        ("localhost", None),
        ("127.0.0.1", None),
        ("127.0.0.1:8080", None),
        ("[::1]", None),
        ("[::1]:443", None),
        ("2001:db8::1", None),
        ("", None),
        ("bad host.ru", None),
    ],
)
def test_registrable_domain(host: str, expected: str | None) -> None:
    assert registrable_domain(host) == expected


def test_homepage_url_follows_the_scheme_seen() -> None:
    assert homepage_url("brand.ru", "http://shop.brand.ru/x") == "http://brand.ru/"
    assert homepage_url("brand.ru", "https://brand.ru/x") == "https://brand.ru/"
    assert homepage_url("brand.ru") == "https://brand.ru/"


def test_url_host_and_display() -> None:
    assert url_host(normalize_url("https://WWW.Shop.Brand.ru:8443/x")) == "shop.brand.ru"
    assert display_domain("xn--e1aybc.xn--p1ai") == "тест.рф"
    assert display_domain("brand.ru") == "brand.ru"


@pytest.mark.parametrize(
    "raw", ["example.com", "https://www.Test.RU/a?utm_source=x&b=1#f", "http://shop.brand.ru:8080/",
            "https://brand.ru/?yclid=5", "https://brand.ru?x=1", "https://brand.ru#top",
            "https://user@brand.ru/", "http://127.0.0.1/a", "http://[::1]:80/", "https://тест.рф/",
            "https://www.ru/", "https://sub.brand.msk.ru/a/b?c=d&utm_term=e"],
)
def test_normalize_url_host_matches_normalize_url(raw: str) -> None:
    normalized = normalize_url(raw)
    assert normalize_url_host(raw) == (normalized, url_host(normalized))


@pytest.mark.parametrize("raw", ["https://a..ru/", "https://-a.ru/x", "ftp://a.ru/",
                                 "https://" + "a" * 64 + ".ru/"])
def test_normalize_url_host_rejects_like_normalize_url(raw: str) -> None:
    with pytest.raises(ValueError):
        normalize_url(raw)
    with pytest.raises(ValueError):
        normalize_url_host(raw)
