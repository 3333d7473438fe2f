"""Local-time windows: the night search window and the working send window.

A window is [start, end] in a time zone on some ISO weekdays; it may cross midnight
(22:00–06:00). `end` is inclusive to the minute: 07:59 means up to 07:59:59.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

ALL_DAYS = frozenset(range(1, 8))


@dataclass(frozen=True)
class Window:
    start: time
    end: time
    tz: ZoneInfo
    weekdays: frozenset[int] = ALL_DAYS  # ISO weekdays of the day the window opens

    def _bounds(self, day: datetime) -> tuple[datetime, datetime]:
        """The window that opens on the local date of `day` (aware local datetimes)."""
        opens = datetime.combine(day.date(), self.start, self.tz)
        closes = datetime.combine(day.date(), self.end, self.tz) + timedelta(minutes=1)
        if closes <= opens:  # crosses midnight
            closes += timedelta(days=1)
        return opens, closes

    def occurrences(self, after: datetime, limit: int = 400):
        """Windows (opens, closes) in UTC that end after `after`, in order."""
        local = after.astimezone(self.tz) - timedelta(days=1)
        found = 0
        for offset in range(limit + 2):
            day = local + timedelta(days=offset)
            if day.isoweekday() not in self.weekdays:
                continue
            opens, closes = self._bounds(day)
            if closes <= after:
                continue
            yield opens.astimezone(timezone.utc), closes.astimezone(timezone.utc)
            found += 1
            if found >= limit:
                return

    def contains(self, moment: datetime) -> bool:
        opens, _closes = next(self.occurrences(moment))
        return opens <= moment

    def current_or_next(self, moment: datetime) -> tuple[datetime, datetime]:
        """The window containing `moment`, else the next one (UTC bounds)."""
        return next(self.occurrences(moment))

    def next_open(self, moment: datetime) -> datetime:
        """`moment` itself if inside a window, else when the next window opens."""
        opens, _closes = self.current_or_next(moment)
        return max(opens, moment)


def night_window(settings) -> Window:  # noqa: ANN001 - Settings, imported lazily
    return Window(settings.night_window_start, settings.night_window_end, settings.tz)


def send_window(settings) -> Window:  # noqa: ANN001
    days = frozenset(int(day) for day in settings.send_working_days)
    return Window(settings.send_window_start, settings.send_window_end, settings.tz, days)
