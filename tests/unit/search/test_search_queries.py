from datetime import datetime, timedelta, timezone

import pytest

from leadgen.config import load_settings
from leadgen.search.queries import (
    InputRow, RowError, _van_der_corput, generate_queries, normalise_query, query_hash, schedule,
)
from leadgen.windows import night_window

MSK = timezone(timedelta(hours=3))


def settings(**overrides):
    return load_settings(**overrides)


def test_hash_ignores_case_whitespace_and_yo() -> None:
    a = query_hash("Стоматология  Москва", 213, 0)
    assert a == query_hash(" стоматология москва ", 213, 0)
    assert a == query_hash("СТОМАТОЛОГИЯ\tМОСКВА", 213, 0)
    assert query_hash("Ёлки Москва", 213, 0) == query_hash("елки москва", 213, 0)
    assert a != query_hash("стоматология москва", 2, 0)
    assert a != query_hash("стоматология москва", 213, 1)
    assert normalise_query("  A\u00a0 B ") == "a b"
    assert len(a) == 64


def test_templates_and_pages() -> None:
    s = settings(query_templates=["{niche} {place}", "{niche} в {place}"], query_pages=2)
    planned = generate_queries(InputRow(niche="Окна ПВХ", city="г. Казань"), s)
    assert [(q.query_text, q.page) for q in planned] == [
        ("Окна ПВХ Казань", 0), ("Окна ПВХ Казань", 1), ("Окна ПВХ в Казань", 0),
        ("Окна ПВХ в Казань", 1)]
    assert {q.region_id for q in planned} == {43}
    assert len({q.query_hash for q in planned}) == 4


def test_country_is_the_place_without_city_and_niche_alone_without_both() -> None:
    s = settings(query_templates=["{niche} в {place}"])
    assert generate_queries(InputRow(niche="CRM", country="Беларусь"), s)[0].query_text == "CRM в Беларусь"
    only = generate_queries(InputRow(niche="CRM"), s)
    assert [q.query_text for q in only] == ["CRM"]
    assert only[0].region_id == 225 and only[0].region_warning


@pytest.mark.parametrize("niche, message", [
    ("", "empty"), ("   ", "empty"), ("x" * 500, "500 characters"),
    ("=IMPORTXML(A1)", "formula"), ("+7 999", "formula"), ("#REF!", "error value"),
    ("12345", "no letters"),
])
def test_malformed_rows(niche: str, message: str) -> None:
    with pytest.raises(RowError, match=message):
        generate_queries(InputRow(niche=niche, city="Москва"), settings())


def test_control_characters_are_cleaned() -> None:
    planned = generate_queries(InputRow(niche="Окна\x00\u200b ПВХ\n", city="Москва"), settings())
    assert planned[0].query_text == "Окна ПВХ Москва"


def test_van_der_corput_prefix_is_spread() -> None:
    points = sorted(_van_der_corput(i) for i in range(16))
    assert points == [i / 16 for i in range(16)]


def _planned(n: int):
    s = settings()
    return [generate_queries(InputRow(niche=f"ниша {i}", city="Москва"), s)[0] for i in range(n)]


def test_schedule_spreads_over_the_next_night() -> None:
    s = settings(yandex_daily_quota=1000)
    now = datetime(2026, 3, 2, 12, 0, tzinfo=MSK)  # afternoon: next window is 00:00–07:59
    planned = schedule(_planned(40), s, now)
    times = sorted(q.scheduled_for for q in planned)
    opens, closes = night_window(s).current_or_next(now)
    assert opens == datetime(2026, 3, 3, 0, 0, tzinfo=MSK)
    assert all(opens <= t < closes for t in times)
    assert len(set(times)) == 40
    gaps = [(b - a).total_seconds() for a, b in zip(times, times[1:])]
    assert max(gaps) <= 2 * (closes - opens).total_seconds() / 40
    assert times[-1] - times[0] > timedelta(hours=7)


def test_schedule_inside_window_uses_the_rest_of_it() -> None:
    s = settings()
    now = datetime(2026, 3, 3, 5, 0, tzinfo=MSK)
    planned = schedule(_planned(5), s, now)
    assert all(now <= q.scheduled_for < datetime(2026, 3, 3, 8, 0, tzinfo=MSK) for q in planned)


def test_schedule_spills_beyond_the_daily_quota() -> None:
    s = settings(yandex_daily_quota=10)
    now = datetime(2026, 3, 2, 12, 0, tzinfo=MSK)
    booked = {datetime(2026, 3, 3, 0, 0, tzinfo=MSK): 7}

    def count(start, _end):
        return booked.get(start, 0)

    planned = schedule(_planned(15), s, now, count)
    by_night = {}
    for q in planned:
        day = q.scheduled_for.astimezone(MSK).date()
        by_night[day] = by_night.get(day, 0) + 1
    assert by_night == {datetime(2026, 3, 3).date(): 3, datetime(2026, 3, 4).date(): 10,
                        datetime(2026, 3, 5).date(): 2}


def test_schedule_respects_window_settings_and_timezone() -> None:
    s = settings(night_window_start="22:00", night_window_end="05:59", app_timezone="Asia/Almaty")
    now = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    for q in schedule(_planned(10), s, now):
        local = q.scheduled_for.astimezone(s.tz)
        assert local.hour >= 22 or local.hour < 6
