"""Yandex region ids (`lr`) for Russian cities and CIS countries/capitals.

Names are matched after normalisation (`region_key`): case, `ё`/`е`, any hyphen or dash
(ASCII, U+2010–2015, U+2212 …), dots, extra spaces and a leading "г." / "город" do not matter.
Ids: contracts §4 (verified and third-party), the old system's table, and Yandex's public map.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

DEFAULT_REGION = 225  # Russia

# id, then every spelling (Cyrillic, Latin, short forms).
_CITIES: list[tuple[int, tuple[str, ...]]] = [
    (213, ("Москва", "Moscow", "Moskva", "Мск", "msk")),
    (1, ("Москва и Московская область", "Московская область", "Подмосковье",
         "Moscow region", "Moscow oblast", "Moskovskaya oblast")),
    (2, ("Санкт-Петербург", "Saint Petersburg", "St Petersburg", "St. Petersburg", "Sankt-Peterburg",
         "Sankt Petersburg", "Petersburg", "СПб", "Спб", "Питер", "Петербург", "Ленинград", "spb")),
    (10174, ("Санкт-Петербург и Ленинградская область", "Ленинградская область",
             "Leningrad oblast", "Leningrad region")),
    (65, ("Новосибирск", "Novosibirsk")),
    (54, ("Екатеринбург", "Yekaterinburg", "Ekaterinburg", "Jekaterinburg", "Екб")),
    (43, ("Казань", "Kazan", "Kazan'")),
    (62, ("Красноярск", "Krasnoyarsk")),
    (47, ("Нижний Новгород", "Nizhny Novgorod", "Nizhniy Novgorod", "Nizhnii Novgorod",
          "Nizhni Novgorod", "Н.Новгород", "Нижний")),
    (56, ("Челябинск", "Chelyabinsk")),
    (172, ("Уфа", "Ufa")),
    (35, ("Краснодар", "Krasnodar")),
    (51, ("Самара", "Samara")),
    (39, ("Ростов-на-Дону", "Rostov-on-Don", "Rostov-na-Donu", "Rostov", "Ростов")),
    (66, ("Омск", "Omsk")),
    (193, ("Воронеж", "Voronezh")),
    (50, ("Пермь", "Perm", "Perm'")),
    (38, ("Волгоград", "Volgograd")),
    (194, ("Саратов", "Saratov")),
    (55, ("Тюмень", "Tyumen", "Tjumen")),
    (240, ("Тольятти", "Tolyatti", "Togliatti", "Toljatti")),
    (28, ("Махачкала", "Makhachkala")),
    (197, ("Барнаул", "Barnaul")),
    (44, ("Ижевск", "Izhevsk")),
    (76, ("Хабаровск", "Khabarovsk")),
    (195, ("Ульяновск", "Ulyanovsk")),
    (63, ("Иркутск", "Irkutsk")),
    (75, ("Владивосток", "Vladivostok")),
    (16, ("Ярославль", "Yaroslavl", "Jaroslavl")),
    (36, ("Ставрополь", "Stavropol")),
    (67, ("Томск", "Tomsk")),
    (64, ("Кемерово", "Kemerovo")),
    (236, ("Набережные Челны", "Naberezhnye Chelny", "Naberezhnyye Chelny", "Челны")),
    (48, ("Оренбург", "Orenburg")),
    (237, ("Новокузнецк", "Novokuznetsk")),
    (11, ("Рязань", "Ryazan")),
    (49, ("Пенза", "Penza")),
    (45, ("Чебоксары", "Cheboksary")),
    (9, ("Липецк", "Lipetsk")),
    (22, ("Калининград", "Kaliningrad")),
    (37, ("Астрахань", "Astrakhan")),
    (15, ("Тула", "Tula")),
    (46, ("Киров", "Kirov")),
    (239, ("Сочи", "Sochi")),
    (235, ("Магнитогорск", "Magnitogorsk")),
    (8, ("Курск", "Kursk")),
    (14, ("Тверь", "Tver")),
    (191, ("Брянск", "Bryansk")),
    (5, ("Иваново", "Ivanovo")),
    (4, ("Белгород", "Belgorod")),
    (973, ("Сургут", "Surgut")),
    (20, ("Архангельск", "Arkhangelsk")),
    (23, ("Мурманск", "Murmansk")),
    (192, ("Владимир", "Vladimir")),
    (12, ("Смоленск", "Smolensk")),
    (53, ("Курган", "Kurgan")),
    (6, ("Калуга", "Kaluga")),
    (10, ("Орёл", "Орел", "Oryol", "Orel")),
    (13, ("Тамбов", "Tambov")),
    (7, ("Кострома", "Kostroma")),
    (21, ("Вологда", "Vologda")),
    (18, ("Петрозаводск", "Petrozavodsk")),
    (19, ("Сыктывкар", "Syktyvkar")),
    (24, ("Великий Новгород", "Veliky Novgorod", "Velikiy Novgorod", "Новгород")),
    (25, ("Псков", "Pskov")),
    (74, ("Якутск", "Yakutsk")),
    (77, ("Благовещенск", "Blagoveshchensk")),
    (68, ("Чита", "Chita")),
    (198, ("Улан-Удэ", "Ulan-Ude")),
    (42, ("Саранск", "Saransk")),
    (41, ("Йошкар-Ола", "Yoshkar-Ola")),
    (33, ("Владикавказ", "Vladikavkaz")),
    (30, ("Нальчик", "Nalchik")),
    (78, ("Петропавловск-Камчатский", "Petropavlovsk-Kamchatsky")),
    (80, ("Южно-Сахалинск", "Yuzhno-Sakhalinsk")),
    (79, ("Магадан", "Magadan")),
    (970, ("Новороссийск", "Novorossiysk")),
    (971, ("Таганрог", "Taganrog")),
    (968, ("Череповец", "Cherepovets")),
    (959, ("Севастополь", "Sevastopol")),
    (146, ("Симферополь", "Simferopol")),
    # CIS capitals (contracts §4: 3P / UNV ids).
    (163, ("Астана", "Astana", "Нур-Султан", "Nur-Sultan")),
    (162, ("Алматы", "Almaty", "Алма-Ата", "Alma-Ata")),
    (157, ("Минск", "Minsk")),
    (143, ("Киев", "Київ", "Kyiv", "Kiev")),
    (10335, ("Ташкент", "Tashkent", "Toshkent")),
    (10309, ("Бишкек", "Bishkek")),
    (10253, ("Баку", "Baku")),
    (10262, ("Ереван", "Yerevan")),
    (10277, ("Тбилиси", "Tbilisi")),
    (10313, ("Кишинёв", "Кишинев", "Chișinău", "Chisinau", "Kishinev")),
    (10318, ("Душанбе", "Dushanbe")),
]

_COUNTRIES: list[tuple[int, tuple[str, ...]]] = [
    (225, ("Россия", "Российская Федерация", "РФ", "Russia", "Russian Federation", "Rossiya", "RU")),
    (187, ("Украина", "Україна", "Ukraine", "Ukraina", "UA")),
    (149, ("Беларусь", "Белоруссия", "Республика Беларусь", "Belarus", "Byelorussia", "BY")),
    (159, ("Казахстан", "Республика Казахстан", "Kazakhstan", "Qazaqstan", "KZ")),
    (171, ("Узбекистан", "Uzbekistan", "O'zbekiston", "UZ")),
    (168, ("Армения", "Armenia", "Hayastan", "AM")),
    (167, ("Азербайджан", "Azerbaijan", "AZ")),
    (169, ("Грузия", "Georgia", "Sakartvelo", "GE")),
    (207, ("Киргизия", "Кыргызстан", "Kyrgyzstan", "Kirghizia", "KG")),
    (208, ("Молдова", "Молдавия", "Moldova", "MD")),
    (209, ("Таджикистан", "Tajikistan", "TJ")),
    (170, ("Туркменистан", "Туркмения", "Turkmenistan", "TM")),
]

_HYPHENS = dict.fromkeys(
    map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u00ad\ufe58\ufe63\uff0d\u2043"), "-"
)
_PREFIX = re.compile(r"^(?:г|гор|город|city of|city)\s+")
_JUNK = re.compile(r"[.,;:!?\"'«»“”„()\[\]/\\`’ʼ]")


def region_key(name: str | None) -> str:
    """The lookup key of a place name: 'г. Ростов‑на‑Дону ' → 'ростов на дону'."""
    if not name:
        return ""
    text = unicodedata.normalize("NFKC", name).translate(_HYPHENS)
    text = text.casefold().replace("ё", "е")
    text = _JUNK.sub(" ", text).replace("-", " ")
    text = " ".join(text.split())
    return _PREFIX.sub("", text).strip()


def _index(rows: list[tuple[int, tuple[str, ...]]]) -> dict[str, int]:
    table: dict[str, int] = {}
    for region_id, names in rows:
        for name in names:
            key = region_key(name)
            if key in table and table[key] != region_id:
                raise AssertionError(f"region key {key!r} maps to two ids")
            table[key] = region_id
    return table


CITIES: dict[str, int] = _index(_CITIES)
COUNTRIES: dict[str, int] = _index(_COUNTRIES)
# Id → first (canonical Russian) name, for messages.
NAMES: dict[int, str] = {rid: names[0] for rid, names in _COUNTRIES + _CITIES}


@dataclass(frozen=True)
class Region:
    id: int
    source: Literal["city", "country", "default"]
    warning: str | None = None


def _lookup_city(city: str) -> int | None:
    key = region_key(city)
    if key in CITIES:
        return CITIES[key]
    # "Казань, Россия" / "Москва (центр)": try the part before a comma or bracket.
    head = re.split(r"[,(]", city, maxsplit=1)[0]
    if head != city:
        return CITIES.get(region_key(head))
    return None


def resolve_region(city: str | None, country: str | None) -> Region:
    """City → country → Russia (225); a fallback carries a warning for the batch log."""
    city = (city or "").strip()
    country = (country or "").strip()
    if city:
        found = _lookup_city(city)
        if found is not None:
            return Region(found, "city")
        if region_key(city) in COUNTRIES:  # a country typed into the city column
            return Region(COUNTRIES[region_key(city)], "country")
    country_id = COUNTRIES.get(region_key(country)) if country else None
    if country_id is None and country:
        country_id = CITIES.get(region_key(country))  # a capital typed into the country column
    if country_id is not None:
        warning = (f"unknown city {city!r}: using {NAMES.get(country_id, country)} ({country_id})"
                   if city else None)
        return Region(country_id, "country", warning)
    if city or country:
        what = " / ".join(repr(part) for part in (city, country) if part)
        warning = f"unknown place {what}: using Россия ({DEFAULT_REGION})"
    else:
        warning = f"no city or country: using Россия ({DEFAULT_REGION})"
    return Region(DEFAULT_REGION, "default", warning)
