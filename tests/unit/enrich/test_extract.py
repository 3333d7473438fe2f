"""Email extraction: every form a site uses, every trap, the ranking and hostile input."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from leadgen.enrich.extract import (
    Candidate,
    choose_primary,
    clean_text,
    decode_cfemail,
    excerpt,
    extract_emails,
    mailto_addresses,
    merge_candidates,
)

URL = "https://www.stroy-master.ru/contacts/"
DOMAIN = "stroy-master.ru"


def page(body: str, head: str = "") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>"


def emails(html: str, url: str = URL, domain: str | None = DOMAIN) -> list[str]:
    return [c.email for c in extract_emails(html, url, domain)]


def methods(html: str) -> dict[str, str]:
    return {c.email: c.method for c in extract_emails(html, URL, DOMAIN)}


def cf(email: str, key: int = 0x5A) -> str:
    return f"{key:02x}" + "".join(f"{ord(ch) ^ key:02x}" for ch in email)


# --- forms -------------------------------------------------------------------------------------


def test_mailto_plain_and_case() -> None:
    assert methods(page('<a href="MAILTO:Info@Stroy-Master.RU">пишите</a>')) == {
        "info@stroy-master.ru": "mailto"}


def test_mailto_several_per_link_query_stripped_percent_decoded() -> None:
    html = page('<a href="mailto:%69nfo%40stroy-master.ru,%20sales@stroy-master.ru;'
                'buh@stroy-master.ru?subject=%D0%97%D0%B0%D1%8F%D0%B2%D0%BA%D0%B0&cc=x@y.ru">'
                "Написать</a>")
    assert sorted(emails(html)) == ["buh@stroy-master.ru", "info@stroy-master.ru",
                                    "sales@stroy-master.ru"]
    assert mailto_addresses("mailto:") == []
    assert mailto_addresses("mailto:?subject=hi") == []


def test_empty_mailto_gives_nothing() -> None:
    assert emails(page('<a href="mailto:">почта</a><a href="mailto:  ">x</a>')) == []


def test_entity_encoded_mailto_and_text() -> None:
    encoded = "".join(f"&#{ord(ch)};" for ch in "office@stroy-master.ru")
    html = page(f'<a href="&#109;&#97;&#105;&#108;&#116;&#111;&#58;{encoded}">{encoded}</a>'
                "<p>zakaz&#64;stroy-master&#46;ru</p><p>sales&#x40;stroy-master.ru</p>")
    assert set(emails(html)) == {"office@stroy-master.ru", "zakaz@stroy-master.ru",
                                 "sales@stroy-master.ru"}


def test_visible_text_split_by_inline_tags_and_next_to_cyrillic() -> None:
    html = page("<p>E-mail: <b>info</b>@stroy-master.ru</p><p>Почта:sales@stroy-master.ruТелефон</p>")
    assert set(emails(html)) == {"info@stroy-master.ru", "sales@stroy-master.ru"}


def test_block_elements_do_not_glue_addresses_to_the_next_word() -> None:
    html = page("<div>info@stroy-master.ru</div><div>about us</div>")
    assert emails(html) == ["info@stroy-master.ru"]


@pytest.mark.parametrize("text", [
    "info [at] stroy-master [dot] ru",
    "info(at)stroy-master.ru",
    "info (at) stroy-master (dot) ru",
    "info{at}stroy-master{dot}ru",
    "info [@] stroy-master [.] ru",
    "info собака stroy-master.ru",
    "info (собака) stroy-master точка ru",
    "info @ stroy-master . ru",
    "info at stroy-master dot ru",
    "INFO [AT] STROY-MASTER [DOT] RU",
])
def test_obfuscations(text: str) -> None:
    found = extract_emails(page(f"<p>Пишите: {text}</p>"), URL, DOMAIN)
    assert [c.email for c in found] == ["info@stroy-master.ru"]
    assert found[0].method == "obfuscated"


def test_plain_english_at_is_not_an_address() -> None:
    assert emails(page("<p>Meet us at the office at Lenina street.</p>")) == []


def test_cloudflare_attribute_and_href() -> None:
    html = page(f'<span class="__cf_email__" data-cfemail="{cf("info@stroy-master.ru")}">'
                "[email&#160;protected]</span>"
                f'<a href="/cdn-cgi/l/email-protection#{cf("sales@stroy-master.ru", 0x13)}">'
                "[email&#160;protected]</a>")
    assert methods(html) == {"info@stroy-master.ru": "cfemail", "sales@stroy-master.ru": "cfemail"}


def test_cfemail_decoder_rejects_garbage() -> None:
    assert decode_cfemail(cf("a@b.ru", 0xFF)) == "a@b.ru"
    for bad in ("", "zz", "abc", "0", "x" * 10):
        assert decode_cfemail(bad) is None
    assert emails(page('<span data-cfemail="zzzz">x</span><span data-cfemail="">y</span>')) == []


def test_json_ld_nested_list_and_mailto_prefix() -> None:
    data = {"@context": "https://schema.org", "@graph": [
        {"@type": "Organization", "email": "mailto:info@stroy-master.ru",
         "contactPoint": [{"@type": "ContactPoint", "email": ["sales@stroy-master.ru"]}]}]}
    head = f'<script type="application/ld+json">{json.dumps(data)}</script>'
    assert methods(page("", head)) == {"info@stroy-master.ru": "jsonld",
                                       "sales@stroy-master.ru": "jsonld"}


def test_broken_json_ld_is_ignored() -> None:
    head = '<script type="application/ld+json">{"email": "info@stroy-master.ru",,,</script>'
    assert emails(page("<p>ok</p>", head)) == []


def test_microdata_content_href_and_text() -> None:
    html = page('<div itemscope itemtype="https://schema.org/Organization">'
                '<span itemprop="email">info@stroy-master.ru</span>'
                '<meta itemprop="email" content="sales@stroy-master.ru">'
                '<a itemprop="email" href="mailto:zakaz@stroy-master.ru">почта</a></div>')
    found = methods(html)
    assert found["info@stroy-master.ru"] == "microdata"
    assert found["sales@stroy-master.ru"] == "microdata"
    assert found["zakaz@stroy-master.ru"] in {"microdata", "mailto"}


def test_script_and_style_text_ignored_except_json_ld() -> None:
    html = page('<script>var e = "js@stroy-master.ru";</script><style>/* css@stroy-master.ru */'
                "</style><noscript>ns@stroy-master.ru</noscript><p>info@stroy-master.ru</p>")
    assert emails(html) == ["info@stroy-master.ru"]


# --- traps -------------------------------------------------------------------------------------


@pytest.mark.parametrize("trap", [
    "logo@2x.png", "hero-bg@2x.jpg", "icon-phone@2x.svg", "banner_main@2x.webp", "sprite@3x.png",
    "example@example.com", "email@domain.ru", "your@email.ru", "name@example.ru",
    "user@domain.com", "noreply@stroy-master.ru", "no-reply@stroy-master.ru",
    "do-not-reply@stroy-master.ru", "mailer-daemon@stroy-master.ru",
    "8f14e45fceea167a5a36dedd4bea2543@o123456.ingest.sentry.io",
    "605a7baede844d278b89dc95ae0a9123@sentry-next.wixpress.com",
    "info..x@stroy-master.ru", "info@stroy-master", "a@b.c1",
])
def test_traps_rejected(trap: str) -> None:
    html = page(f"<p>Например: {trap}</p><a href='mailto:{trap}'>x</a>")
    assert emails(html) == []


def test_image_names_in_attributes_and_text() -> None:
    html = page('<img src="/images/logo@2x.png" srcset="/i/logo@2x.png 2x"><p>logo@2x.png</p>'
                "<p>info@stroy-master.ru</p>")
    assert emails(html) == ["info@stroy-master.ru"]


def test_sentry_dsn_in_script_ignored() -> None:
    head = ('<script>Sentry.init({dsn: "https://8f14e45fceea167a5a36dedd4bea2543@o1.ingest.'
            'sentry.io/42"});</script>')
    assert emails(page("<p>нет адреса</p>", head)) == []


def test_tracking_address_in_visible_text_rejected() -> None:
    html = page("<p>8f14e45fceea167a5a36dedd4bea2543@mail.stroy-master.ru</p>"
                "<p>bounce@sendgrid.net</p><p>info@stroy-master.ru</p>")
    assert emails(html) == ["info@stroy-master.ru"]


@pytest.mark.parametrize("footer", [
    "Сайт разработан: <a href='https://pixel-studio.ru/'>Веб-студия «Пиксель»</a>, hello@pixel-studio.ru",
    "Разработка сайта — <a href='mailto:info@saitmaster.ru'>Сайтмастер</a>",
    "Создание сайтов: zakaz@kreativ-web.ru",
    "Сделано в <a href='mailto:hello@webformat.pro'>Вебформат</a>",
    "Developed by <a href='mailto:team@lidersite.com'>Lidersite</a>",
])
def test_web_studio_footer_rejected(footer: str) -> None:
    html = page(f"<p>Почта: info@stroy-master.ru</p><footer><div class='dev'>{footer}</div></footer>")
    assert emails(html) == ["info@stroy-master.ru"]


def test_studio_marker_does_not_reject_the_company_own_address() -> None:
    html = page("<p>Разработка сайтов под ключ: info@stroy-master.ru</p>")
    assert emails(html) == ["info@stroy-master.ru"]


def test_placeholder_words_do_not_reject_real_role_inboxes() -> None:
    html = page("<p>mail@stroy-master.ru</p><p>email@stroy-master.ru</p>")
    assert set(emails(html)) == {"mail@stroy-master.ru", "email@stroy-master.ru"}


# --- ranking -----------------------------------------------------------------------------------


def test_own_domain_general_inbox_first() -> None:
    html = page("<p>Директор: i.petrov@stroy-master.ru</p><p>Резюме: hr@stroy-master.ru</p>"
                "<p>Наш ящик: stroymaster@mail.ru</p><p>Партнёр: info@partner-bank.ru</p>"
                "<p>Отдел продаж: sales@stroy-master.ru</p>")
    ranked = extract_emails(html, URL, DOMAIN)
    assert ranked[0].email == "sales@stroy-master.ru"
    assert ranked[1].email == "i.petrov@stroy-master.ru"
    conf = [c.confidence for c in ranked]
    assert conf == sorted(conf, reverse=True)
    assert all(0 < c <= 1 for c in conf)
    order = [c.email for c in ranked]
    assert order.index("i.petrov@stroy-master.ru") < order.index("hr@stroy-master.ru")
    # another company's general inbox may be a group address; a free-mail box comes last
    assert set(order[3:]) == {"stroymaster@mail.ru", "info@partner-bank.ru"}


def test_free_mail_is_fine_when_nothing_else() -> None:
    html = page("<p>Пишите: stroymaster77@mail.ru</p>")
    ranked = extract_emails(html, URL, DOMAIN)
    assert [c.email for c in ranked] == ["stroymaster77@mail.ru"]
    assert choose_primary(ranked, DOMAIN).email == "stroymaster77@mail.ru"


def test_company_domain_defaults_to_page_host_and_subdomains_count_as_own() -> None:
    html = page("<p>a.ivanov@gmail.com</p><p>office@msk.stroy-master.ru</p>")
    assert emails(html, URL, None)[0] == "office@msk.stroy-master.ru"


def test_idn_site_mailing_from_transliterated_domain_counts_as_own() -> None:
    url = "https://xn--80ajbkeqfgbk.xn--p1ai/"  # строймастер.рф
    html = page("<p>ivanov.stroy@mail.ru</p><p>info@stroymaster.ru</p>")
    ranked = extract_emails(html, url, "xn--80ajbkeqfgbk.xn--p1ai")
    assert ranked[0].email == "info@stroymaster.ru"


def test_cyrillic_domain_address_is_read() -> None:
    assert emails(page("<p>info@строймастер.рф</p>"), "https://строймастер.рф/", None) == [
        "info@строймастер.рф"]


def test_choose_primary_and_merge_across_pages() -> None:
    home = extract_emails(page("<p>boss@stroy-master.ru</p>"), "https://stroy-master.ru/", DOMAIN)
    contacts = extract_emails(page("<a href='mailto:zakaz@stroy-master.ru'>x</a>"
                                   "<p>boss@stroy-master.ru</p>"), URL, DOMAIN)
    merged = merge_candidates([home, contacts], DOMAIN)
    assert merged[0].email == "zakaz@stroy-master.ru"
    assert merged[0].source_url == URL
    boss = next(c for c in merged if c.email == "boss@stroy-master.ru")
    assert boss.occurrences == 2
    assert choose_primary(merged, DOMAIN).email == "zakaz@stroy-master.ru"
    assert choose_primary([], DOMAIN) is None
    loose = [Candidate("x@gmail.com", "text", 0.9), Candidate("ceo@stroy-master.ru", "text", 0.5)]
    assert choose_primary(loose, DOMAIN).email == "ceo@stroy-master.ru"


def test_links_are_collected_for_the_crawler() -> None:
    from leadgen.enrich.extract import analyse_page

    result = analyse_page(page('<a href="/kontakty/">Контакты</a><a href="tel:+7">t</a>'
                               '<a href="javascript:void(0)">j</a>'), "https://stroy-master.ru/")
    assert [(link.url, link.text) for link in result.links] == [
        ("https://stroy-master.ru/kontakty/", "Контакты")]


# --- hostile input -----------------------------------------------------------------------------


def test_nul_bytes_and_control_characters() -> None:
    html = page("<p>info@stroy-\x00master.ru</p><p>\x00\x01\x1f sales@stroy-master.ru \x7f</p>")
    assert "sales@stroy-master.ru" in emails(html)
    text = clean_text("a\x00b\x01c\u200b\td\x9f\ud800e\n\nf")
    assert "\x00" not in text and "\x01" not in text and "\x9f" not in text
    assert "\ud800" not in text and "\t" not in text and "\n" not in text
    assert text.startswith("ab")


def test_excerpt_is_bounded_and_clean() -> None:
    text = ("слово\x00 " * 2000) + "\x07"
    short = excerpt(text, 300)
    assert len(short) <= 300 and "\x00" not in short and "\x07" not in short


def test_deeply_nested_huge_and_binary_input() -> None:
    nested = "<div>" * 20_000 + "info@stroy-master.ru" + "</div>" * 20_000
    assert emails(page(nested)) == ["info@stroy-master.ru"]
    big = page("<p>текст без адреса</p>" * 50_000 + "<p>sales@stroy-master.ru</p>")
    assert emails(big) == ["sales@stroy-master.ru"]
    noise = random.Random(1).randbytes(200_000).decode("latin-1")
    assert isinstance(extract_emails(noise, URL, DOMAIN), list)
    assert extract_emails("", URL, DOMAIN) == []
    assert extract_emails("<<<>>>&&&#;;;", URL, DOMAIN) == []
    many = page("".join(f"<p>user{i}@stroy-master.ru</p>" for i in range(3000)))
    assert len(extract_emails(many, URL, DOMAIN)) == 3000


def test_deep_json_ld_does_not_blow_the_stack() -> None:
    deep = '{"a":' * 5000 + '"x"' + "}" * 5000
    head = f'<script type="application/ld+json">{deep}</script>'
    assert emails(page("<p>info@stroy-master.ru</p>", head)) == ["info@stroy-master.ru"]


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_extract_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from leadgen.cli import main

    path = tmp_path / "page.html"
    html = page("<p>Резюме: hr@stroy-master.ru</p><a href='mailto:info@stroy-master.ru'>x</a>"
                "<p>Пример: email@domain.ru</p>")
    path.write_bytes(html.encode("cp1251"))
    result = CliRunner().invoke(main, ["extract", str(path), "--url", URL, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [item["email"] for item in data] == ["info@stroy-master.ru", "hr@stroy-master.ru"]
    assert {"email", "method", "confidence"} <= set(data[0])
    assert data[0]["method"] == "mailto"
    assert data[0]["confidence"] >= data[1]["confidence"]


def test_hostile_deep_nesting_still_yields_the_emails():
    depth = 200_000
    html = ("<html><body>" + "<div><span>" * depth
            + '<a href="mailto:info@deep.ru">mail</a> sales@deep.ru' + "</span></div>" * depth)
    emails = [c.email for c in extract_emails(html, "https://deep.ru/")]
    assert emails[:2] == ["info@deep.ru", "sales@deep.ru"]


def test_obfuscation_after_a_huge_whitespace_run():
    html = "<p>" + " " * 1_000_000 + "info собака spaces.ru</p>"
    assert [c.email for c in extract_emails(html, "https://spaces.ru/")] == ["info@spaces.ru"]
