"""Window boundaries (SEMANTICS.md section 4): UTC hours, local days, ISO weeks and months.

All instants are integer microseconds since the epoch. Day, week and month windows start at
local midnight in the configured zone (the first instant of the local date: on a day whose
midnight is skipped by DST, the transition itself), so a day is 23, 24 or 25 hours long.
Lookups are memoised per local date, which keeps the per-reading cost to a dict hit.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from streams.timeparse import US_PER_HOUR, US_PER_S

HOUR: Final = 0
DAY: Final = 1
WEEK: Final = 2
MONTH: Final = 3
PERIOD_NAMES: Final = ("hour", "day", "week", "month")
PERIOD_CODES: Final = {name: code for code, name in enumerate(PERIOD_NAMES)}


class Calendar:
    """Local-time window arithmetic for one IANA zone."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone
        # hour bucket -> (start, end) of the local day holding the bucket's first instant
        self._day_by_hour: dict[int, tuple[int, int]] = {}
        self._midnight: dict[date, int] = {}

    # -- local dates -----------------------------------------------------------------
    def local_date(self, ts: int) -> date:
        return datetime.fromtimestamp(ts // US_PER_S, self.zone).date()

    def midnight(self, day: date) -> int:
        """First instant (us) of a local date."""
        cached = self._midnight.get(day)
        if cached is None:
            local = datetime(day.year, day.month, day.day, tzinfo=self.zone)
            cached = int(local.timestamp()) * US_PER_S
            self._midnight[day] = cached
        return cached

    # -- windows ---------------------------------------------------------------------
    @staticmethod
    def hour(ts: int) -> tuple[int, int]:
        start = ts - ts % US_PER_HOUR
        return start, start + US_PER_HOUR

    def day(self, ts: int) -> tuple[int, int]:
        bucket = ts // US_PER_HOUR
        window = self._day_by_hour.get(bucket)
        if window is None:
            first = bucket * US_PER_HOUR
            local = self.local_date(first)
            window = (self.midnight(local), self.midnight(local + timedelta(days=1)))
            self._day_by_hour[bucket] = window
        if ts >= window[1]:  # a local midnight inside this UTC hour (half-hour zones)
            local = self.local_date(ts)
            return self.midnight(local), self.midnight(local + timedelta(days=1))
        return window

    def week(self, ts: int) -> tuple[int, int]:
        local = self.local_date(ts)
        monday = local - timedelta(days=local.weekday())
        return self.midnight(monday), self.midnight(monday + timedelta(days=7))

    def month(self, ts: int) -> tuple[int, int]:
        local = self.local_date(ts)
        first = local.replace(day=1)
        following = date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        return self.midnight(first), self.midnight(following)

    def window(self, period: int, ts: int) -> tuple[int, int]:
        if period == HOUR:
            return self.hour(ts)
        if period == DAY:
            return self.day(ts)
        if period == WEEK:
            return self.week(ts)
        return self.month(ts)

    def windows_overlapping(self, period: int, lo: int, hi: int) -> list[tuple[int, int]]:
        """Windows of ``period`` that hold any instant of ``[lo, hi]`` (both inclusive)."""
        result = []
        start, end = self.window(period, lo)
        result.append((start, end))
        while end <= hi:
            start, end = self.window(period, end)
            result.append((start, end))
        return result
