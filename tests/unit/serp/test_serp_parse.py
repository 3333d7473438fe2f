"""parse_serp on every real sample, and on broken and hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadgen.serp.parse import SerpParseError, parse_serp


def sample(samples_dir: Path, name: str) -> bytes:
    return (samples_dir / name).read_bytes()


def test_every_sample_parses(samples_dir: Path) -> None:
    files = sorted(samples_dir.glob("*.xml"))
    assert len(files) >= 6
    for path in files:
        page = parse_serp(path.read_bytes())
        assert page.docs or page.error_code is not None, path.name


def test_v2_deferred_sample(samples_dir: Path) -> None:
    page = parse_serp(sample(samples_dir, "v2-deferred-2025-10-20-yandex-cloud.trimmed.xml"))
    assert page.error_code is None
    assert page.found == 117564  # response-level counter, not the grouping's 807
    assert page.reqid.startswith("1760985395103910-")
    assert [d.position for d in page.docs] == [1, 2, 3, 4]
    first, wiki, en_wiki, ya = page.docs
    assert first.url == "https://yandex.cloud/"
    assert first.title == "Yandex Cloud — надёжное облако для вашего бизнеса"
    assert first.saved_copy_url.startswith("https://yandexwebcache.net/yandbtm?fmode=inject&tm=")
    assert first.lang == "ru" and first.modtime == "20140422T184117"
    assert first.snippet.startswith("В Yandex Cloud каждый может создавать")
    assert "ISO, PCI DSS, GDPR и 152-ФЗ РФ. Yandex Cloud предлагает" in first.snippet
    assert first.touchdown is None
    assert wiki.touchdown == "РКН: сайт нарушает закон РФ"
    assert "(ранее «Яндекс.Облако» — публичная" in wiki.snippet
    # a headline and no passages
    assert en_wiki.passages == ()
    assert en_wiki.headline.startswith("Yandex Cloud is a public cloud platform")
    assert en_wiki.snippet == en_wiki.headline and en_wiki.lang == "en"
    assert ya.title == "Что такое Yandex Cloud и для чего оно нужно? - Вопросы к Поиску..."


def test_legacy_flat_sample_counters_before_groups(samples_dir: Path) -> None:
    page = parse_serp(sample(samples_dir, "legacy-2015-10-21-flat-sort-by-time.trimmed.xml"))
    assert page.found == 102217932
    assert [d.url for d in page.docs] == [
        "http://www.php.su/mysql_query",
        "http://developer.alexanderklimov.ru/android/library/android-query.php",
        "http://delphi-box.ru/query-delphi.html",
    ]
    # hlword in the middle, at the end, and at the very start of a title
    assert page.docs[0].title == "PHP.SU - Функция mysql_query()"
    assert page.docs[2].title == "Query в Delphi"
    assert page.docs[2].snippet == (
        "Компонент Query может во многих случаях включаться в приложения вместо Table. "
        "Преимущества Query по сравнению с Table")
    assert page.docs[0].domain == "www.php.su"
    assert all(d.lang == "ru" for d in page.docs)


def test_legacy_deep_sample_missing_fields(samples_dir: Path) -> None:
    page = parse_serp(sample(samples_dir, "legacy-2017-11-29-deep-missing-fields.trimmed.xml"))
    devaka, hozyin, amalbakov, seoonlin = page.docs
    assert devaka.title == "План раскрутки: С чего начать продвижение сайта?"
    assert len(devaka.passages) == 2
    assert devaka.snippet.startswith("Надеюсь, теперь вы знаете с чего начать продвижение")
    assert devaka.saved_copy_url.startswith("https://hghltd.yandex.net/")
    assert hozyin.lang is None  # <properties> without <lang>
    assert amalbakov.title is None  # no <title>
    assert amalbakov.snippet.startswith("Что такое SEO и оптимизация сайта?")
    assert seoonlin.modtime is None  # no <modtime>
    assert seoonlin.passages[0].startswith("СЕО-оптимизация и продвижение сайта для начинающих: с")


@pytest.mark.parametrize(
    ("name", "code", "text_start"),
    [
        ("error-15-not-found.xml", 15, "Искомая комбинация слов"),
        ("error-32-daily-limit.xml", 32, "Лимит запросов исчерпан у пользователя aerodar-ru"),
        ("error-55-rps-exceeded.xml", 55, "Количество запросов, отправленных"),
    ],
)
def test_error_samples(samples_dir: Path, name: str, code: int, text_start: str) -> None:
    page = parse_serp(sample(samples_dir, name))
    assert page.error_code == code
    assert page.error_text.startswith(text_start)
    assert page.error_text == page.error_text.strip()
    assert page.docs == []
    assert page.is_empty_result is (code == 15)
    assert page.is_quota_error is (code in (32, 55))


def test_str_input_with_declaration(samples_dir: Path) -> None:
    text = sample(samples_dir, "legacy-2015-10-21-flat-sort-by-time.trimmed.xml").decode("utf-8")
    assert len(parse_serp(text).docs) == 3


def test_child_order_and_positions_across_groups() -> None:
    xml = """<yandexsearch version="1.0"><response>
      <results><grouping>
        <group><doc id="a"><properties><lang>en</lang></properties>
          <title>A <hlword>one</hlword></title><url> https://a.ru/x </url></doc>
          <doc id="b"><url>https://b.ru/</url></doc></group>
        <group><doc id="c"><passages><passage>p1</passage><passage/></passages>
          <url>https://c.ru/</url><headline>h <hlword>x</hlword>  y</headline></doc></group>
        <group><doc id="nourl"><title>no url</title></doc></group>
        <group><doc id="d"><url>https://d.ru/</url></doc></group>
        <found priority="all">42</found>
      </grouping></results>
      <found priority="phrase">7</found><found priority="all">9</found>
    </response><resource-usage><cpu-time-sum>1</cpu-time-sum></resource-usage></yandexsearch>"""
    page = parse_serp(xml.encode())
    assert [(d.position, d.url) for d in page.docs] == [
        (1, "https://a.ru/x"), (2, "https://b.ru/"), (3, "https://c.ru/"), (5, "https://d.ru/")]
    assert page.docs[0].title == "A one" and page.docs[0].lang == "en"
    assert page.docs[2].snippet == "h x y p1"
    assert page.docs[1].snippet is None and page.docs[1].title is None
    assert page.found == 9


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"PD94bWwgdmVyc2lvbj0iMS4wIiBlbmNvZGluZz0idXRmLTgiPz4=", "base64"),
        (b"<yandexsearch><response><results>", "malformed"),
        (b"<yandexsearch><response></yandexsearch>", "malformed"),
        (b"<html><body>502 Bad Gateway</body></html>", "unexpected root"),
        (b"<yandexsearch version='1.0'/>", "without a <response>"),
        (b"<yandexsearch><response><error code='x'>?</error></response></yandexsearch>",
         "non-numeric"),
        ('{"done": true}'.encode(), "not XML"),
    ],
)
def test_bad_payloads(payload: bytes, message: str) -> None:
    with pytest.raises(SerpParseError, match=message):
        parse_serp(payload)


def test_billion_laughs_is_refused() -> None:
    lol = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<yandexsearch><response><results><grouping><group><doc><url>https://a.ru/</url>
<title>&lol9;</title></doc></group></grouping></results></response></yandexsearch>"""
    with pytest.raises(SerpParseError, match="DOCTYPE|malformed"):
        parse_serp(lol)


def test_external_entity_is_not_resolved(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{secret}">]>
<yandexsearch><response><results><grouping><group><doc><url>https://a.ru/</url>
<title>&xxe;</title></doc></group></grouping></results></response></yandexsearch>""".encode()
    with pytest.raises(SerpParseError) as info:
        parse_serp(xxe)
    assert "TOPSECRET" not in str(info.value)


def test_no_dtd_means_plain_entities_still_work() -> None:
    page = parse_serp(b"<yandexsearch><response><results><grouping><group><doc>"
                      b"<url>https://a.ru/?a=1&amp;b=2</url><title>A &amp; B &#171;C&#187;</title>"
                      b"</doc></group></grouping></results></response></yandexsearch>")
    assert page.docs[0].url == "https://a.ru/?a=1&b=2"
    assert page.docs[0].title == "A & B «C»"
