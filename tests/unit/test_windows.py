from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

from leadgen.windows import Window

MSK = ZoneInfo("Europe/Moscow")


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


def test_night_window_contains_and_next():
    night = Window(time(0, 0), time(7, 59), MSK)
    assert night.contains(utc(2026, 11, 25, 3, 0))  # 06:00 MSK
    assert not night.contains(utc(2026, 11, 25, 5, 0))  # 08:00 MSK
    assert night.next_open(utc(2026, 11, 25, 12, 0)) == utc(2026, 11, 25, 21, 0)


def test_window_across_midnight():
    late = Window(time(22, 0), time(5, 59), MSK)
    assert late.contains(utc(2026, 11, 25, 20, 30))  # 23:30 MSK
    assert late.contains(utc(2026, 11, 26, 1, 0))  # 04:00 MSK next day
    assert not late.contains(utc(2026, 11, 26, 12, 0))


def test_working_days_skip_weekend():
    work = Window(time(9, 10), time(19, 45), MSK, frozenset({1, 2, 3, 4, 5}))
    friday_evening = utc(2026, 11, 27, 17, 0)  # 20:00 MSK Friday
    opens, closes = work.current_or_next(friday_evening)
    assert opens == utc(2026, 11, 30, 6, 10)  # Monday 09:10 MSK
    assert closes == utc(2026, 11, 30, 16, 46)
    assert not work.contains(utc(2026, 11, 28, 10, 0))  # Saturday
