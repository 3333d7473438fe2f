"""Company names from SERP titles and snippets, and the fuzzy-dedupe name key."""

from __future__ import annotations

import random
import re

import pytest

from leadgen.serp import names
from leadgen.serp.names import NameChoice, better, choose_name, legal_name, name_key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('«ООО "Ромашка"» — цветы оптом', "ООО «Ромашка»"),
        ("Купить цветы | ООО «Торговый дом «Ромашка»»", "ООО «Торговый дом «Ромашка»»"),
        ("Общество с ограниченной ответственностью «Вектор» - главная", "ООО «Вектор»"),
        ("Контакты АО “Северсталь-Мет” в Москве", "АО «Северсталь-Мет»"),
        ("ПАО «Банк» и АО «Другое»", "ПАО «Банк»"),
        ("ИП Иванов Иван Иванович — ремонт квартир", "ИП Иванов Иван Иванович"),
        ("ремонт от ИП Петров П.П. недорого", "ИП Петров П.П."),
        ("Romashka LLC \"Romashka\" flowers", "LLC «Romashka»"),
        ("Стоматология в Москве недорого", None),
        ("Ромашка — стоматология", None),
        ("ООО «123»", None),
        (None, None),
    ],
)
def test_legal_name(text: str | None, expected: str | None) -> None:
    assert legal_name(text) == expected


@pytest.mark.parametrize(
    ("title", "domain", "city", "expected"),
    [
        ("Стоматология в Москве недорого — цены", "smile.ru", "Москва", ("smile.ru", "domain")),
        ("Стоматология в Москве недорого — цены | Клиника «Улыбка»", "ulibka-dent.ru", "Москва",
         ("Клиника «Улыбка»", "title")),
        ("Ромашка — стоматология в Москве", "romashka.ru", "Москва", ("Ромашка", "title")),
        ("Смайл Клиник: стоматология", "smileclinic.ru", None, ("Смайл Клиник", "title")),
        ("Техносила — магазин электроники", "tehnosila.ru", None, ("Техносила", "title")),
        ("Официальный сайт компании Техносила", "technosila.ru", None, ("Техносила", "title")),
        ('"Ромашка" — доставка цветов', "abc.ru", None, ("Ромашка", "title")),
        ("PHP.SU - Функция mysql_query()", "php.su", None, ("PHP.SU", "title")),
        ("План раскрутки: С чего начать продвижение сайта?", "devaka.ru", None,
         ("devaka.ru", "domain")),
        ("Главная", "romashka.ru", None, ("romashka.ru", "domain")),
        ("Стоматология", "dent.ru", None, ("dent.ru", "domain")),
        ("Ремонт квартир Казань — от 1500 руб/м²", "remont.ru", "Казань", ("remont.ru", "domain")),
        (None, "xn--e1aybc.xn--p1ai", None, ("тест.рф", "domain")),
        ("Вектор-М | Грузоперевозки по Санкт-Петербургу", "vector-m.ru", "Санкт-Петербург",
         ("Вектор-М", "title")),
    ],
)
def test_choose_name_from_title(title: str | None, domain: str, city: str | None,
                                expected: tuple[str, str]) -> None:
    choice = choose_name(title, None, domain, city)
    assert (choice.name, choice.source) == expected


def test_legal_name_in_snippet_beats_title() -> None:
    choice = choose_name("Клиника «Улыбка» — стоматология", "© 2024 ООО «Улыбка Плюс». Все права",
                         "ulybka.ru")
    assert choice == NameChoice("ООО «Улыбка Плюс»", "legal")


def test_title_legal_name_beats_snippet_legal_name() -> None:
    choice = choose_name("ООО «Альфа» — главная", "ООО «Бета»", "alfa.ru")
    assert choice.name == "ООО «Альфа»"


def test_better_only_when_strictly_better() -> None:
    assert better(NameChoice("ООО «А»", "legal"), "title")
    assert better(NameChoice("А", "title"), "domain")
    assert not better(NameChoice("Б", "title"), "title")
    assert not better(NameChoice("a.ru", "domain"), "legal")
    assert not better(NameChoice("Б", "title"), "legal")


@pytest.mark.parametrize(
    ("name", "source", "key"),
    [
        ("ООО «Ромашка»", "legal", "ромашка"),
        ('ЗАО "Ромашка"', "legal", "ромашка"),
        ("Ромашка, LLC", "title", "ромашка"),
        ("Ёлка Ltd.", "title", "елка"),
        ("ИП Иванов И.И.", "legal", "ивановии"),
        ("Смайл-Клиник Inc", "title", "смайлклиник"),
        ("ПАО «Банк»", "legal", "банк"),
        ("ООО «АО»", "legal", None),
        ("romashka.ru", "domain", None),
        ("«12»", "title", None),
    ],
)
def test_name_key(name: str, source: str, key: str | None) -> None:
    assert name_key(name, source) == key


def test_name_key_does_not_strip_inside_words() -> None:
    assert name_key("Аорта", "title") == "аорта"
    assert name_key("Ипотека Центр", "title") == "ипотекацентр"


# legal_name() skips its regexes when cheap substring checks rule a match out; this is the
# plain version it must agree with.
_PLAIN_LEGAL = re.compile(r"(?<![\w])" + names._FORM + names._QUOTED, re.IGNORECASE)
_HINT = re.compile(r"ООО|ОАО|ЗАО|ПАО|НАО|АО|ТОО|АНО|ОДО|ЧУП|ИП|LLC|Ltd|LTD|бществ|ество|"
                   r"рганизац|редпринимател", re.IGNORECASE)


def _reference_legal_name(text: str | None) -> str | None:
    if not text or not _HINT.search(text):
        return None
    found: list[tuple[int, str]] = []
    for match in _PLAIN_LEGAL.finditer(text):
        inner = names._clean(next(g for g in (match["g"], match["q"], match["c"], match["l"]) if g))
        if len(inner) >= 2 and re.search(r"[^\W\d_]", inner):
            found.append((match.start(), f"{names._short_form(match['form'])} «{inner}»"))
            break
    match = names._IP.search(text)
    if match:
        found.append((match.start(), f"ИП {names._clean(match['fio'])}"))
    return min(found)[1] if found else None


_TOKENS = [
    "ООО", "ооо", "ОАО", "зао", "ПАО", "НАО", "АО", "ао", "ТОО", "АНО", "ОДО", "ЧУП", "LLC",
    "Ltd.", "LTD", "ИП", "ип", "Индивидуальный предприниматель", "Общество с ограниченной  "
    "ответственностью", "АКЦИОНЕРНОЕ ОБЩЕСТВО", "автономная некоммерческая организация",
    "товарищество с ограниченной ответственностью", "ᲂᲂᲂ", "ЗᲀО", "ᲄᲂᲂ", "«", "»", '"', "“", "”",
    "„", "«Ромашка»", '"Вектор"', "“Альфа”", "„Бета“", "«Дом «Сад»»", "Иванов И.И.",
    "Петров Пётр Петрович", "Анна-Мария", "—", "|", ":", "…", ",", "123", "©", "в Москве",
    "качество", "хаос", "Ипотека", "цены", "\u00a0", "\n", "x",
]


def test_legal_name_agrees_with_the_plain_regex_version() -> None:
    rng = random.Random(5)
    texts = [" ".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 9)))
             for _ in range(4000)]
    found = 0
    for text in texts:
        expected = _reference_legal_name(text)
        assert legal_name(text) == expected, text
        found += expected is not None
    assert found > 500  # the sample does exercise the regexes


def test_legal_form_in_case_variant_letters() -> None:
    # re.IGNORECASE equates "ᲂ" (narrow o) with "О" although str.lower() does not
    assert legal_name("ᲂᲂᲂ «Ромашка»") == "ООО «Ромашка»"


def test_case_odd_covers_every_ignorecase_variant() -> None:
    letters = sorted(set("".join(names._FORM_FRAGMENTS)))
    variant = re.compile("[" + "".join(letters) + "]", re.IGNORECASE)
    odd = [c for c in map(chr, range(0x110000))
           if variant.match(c) and c.lower() not in letters]
    assert odd and all(names._CASE_ODD.match(c) for c in odd)


def test_form_starts_cover_every_ignorecase_variant() -> None:
    firsts = {form[0].lower() for form, _short in names._FULL_FORMS}
    firsts |= {form[0].lower() for form in names._SHORT_FORMS.split("|")}
    variant = re.compile("[" + "".join(sorted(firsts)) + "]", re.IGNORECASE)
    starts = [c for c in map(chr, range(0x110000)) if variant.match(c)]
    assert set(starts) <= set(names._FORM_STARTS)
