import pytest

from leadgen.search.regions import CITIES, DEFAULT_REGION, region_key, resolve_region


@pytest.mark.parametrize("spelling, region_id", [
    ("Москва", 213), ("moscow", 213), ("MOSKVA", 213), ("г. Москва", 213), ("город Москва", 213),
    ("Санкт-Петербург", 2), ("Санкт\u2011Петербург", 2), ("санкт\u2014петербург", 2),
    ("Санкт \u2212 Петербург", 2), ("Saint Petersburg", 2), ("St. Petersburg", 2),
    ("Sankt-Peterburg", 2), ("СПб", 2), ("Питер", 2), ("  санкт   петербург ", 2),
    ("Ростов-на-Дону", 39), ("Ростов\u2010на\u2010Дону", 39), ("Rostov-on-Don", 39),
    ("ростов - на - дону", 39), ("Нижний Новгород", 47), ("Nizhny Novgorod", 47),
    ("Орёл", 10), ("Орел", 10), ("Астана", 163), ("Almaty", 162), ("Минск", 157), ("Kyiv", 143),
    ("Казань, Россия", 43), ("Набережные Челны", 236), ("Йошкар\u2013Ола", 41),
])
def test_city_spellings(spelling: str, region_id: int) -> None:
    region = resolve_region(spelling, "")
    assert (region.id, region.source, region.warning) == (region_id, "city", None)


@pytest.mark.parametrize("country, region_id", [
    ("Россия", 225), ("Украина", 187), ("Беларусь", 149), ("Belarus", 149), ("Казахстан", 159),
    ("kazakhstan", 159), ("Узбекистан", 171), ("Армения", 168), ("РФ", 225),
])
def test_countries(country: str, region_id: int) -> None:
    assert resolve_region("", country).id == region_id
    assert resolve_region("", country).source == "country"


def test_unknown_city_falls_back_to_country_with_warning() -> None:
    region = resolve_region("Усть-Неведомск", "Казахстан")
    assert (region.id, region.source) == (159, "country")
    assert "Усть-Неведомск" in region.warning


def test_unknown_everything_is_russia_with_warning() -> None:
    region = resolve_region("Атлантида", "Нарния")
    assert (region.id, region.source) == (DEFAULT_REGION, "default")
    assert "Атлантида" in region.warning and "225" in region.warning
    assert resolve_region(None, None).warning


def test_every_key_is_normalised() -> None:
    for key in CITIES:
        assert key == region_key(key)
    assert region_key("Г. Ростов\u2011на\u2011Дону") == "ростов на дону"
