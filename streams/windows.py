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
_MEMO_LIMIT: Final = 100_000


class Calendar:
    """Local-time window arithmetic for one IANA zone."""

    def __init__(self, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone
        # hour bucket -> (start, end) of the local day holding the bucket's first instant
        self._day_by_hour: dict[int, tuple[int, int]] = {}
        self._midnight: dict[date, int] = {}
        # first instant of a day window -> the week and the month holding that day
        self._week_of_day: dict[int, tuple[int, int]] = {}
        self._month_of_day: dict[int, tuple[int, int]] = {}
        # per period: instant -> window(period, instant), for instants that recur (window
        # bounds: the walk of windows_overlapping, the keys of frozen and emitted windows)
        self._at: tuple[dict[int, tuple[int, int]], ...] = ({}, {}, {}, {})

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
        while ts >= window[1]:  # a local midnight inside this UTC hour (half-hour zones)
            window = self._following(DAY, window)
        return window

    def week(self, ts: int) -> tuple[int, int]:
        # Weeks and months are whole day windows: the one holding ts is the one holding
        # the first instant of ts's day window (memoised per day).
        start = self.day(ts)[0]
        window = self._week_of_day.get(start)
        if window is None:
            window = self._week_of_day[start] = self._local_window(WEEK, start)
        return window

    def month(self, ts: int) -> tuple[int, int]:
        start = self.day(ts)[0]
        window = self._month_of_day.get(start)
        if window is None:
            window = self._month_of_day[start] = self._local_window(MONTH, start)
        return window

    def _local_window(self, period: int, ts: int) -> tuple[int, int]:
        """The week or month holding ``ts``, from its local date."""
        first, following = _local_span(period, self.local_date(ts))
        window = (self.midnight(first), self.midnight(following))
        while ts >= window[1]:
            window = self._following(period, window)
        return window

    def _following(self, period: int, window: tuple[int, int]) -> tuple[int, int]:
        """The window after ``window``: the one of the local date at its end.

        Windows partition time at the first instants of local dates. Where clocks go back
        across midnight shortly after it (America/St_Johns until 2011 went from 00:01 back
        to 23:01), the repeated minutes carry the earlier date but come after the next
        date's first instant: they belong to the next date's window, so that every
        instant lies in exactly one window."""
        local = self.local_date(window[1])
        if period == DAY:
            return window[1], self.midnight(local + timedelta(days=1))
        return window[1], self.midnight(_local_span(period, local)[1])

    def window(self, period: int, ts: int) -> tuple[int, int]:
        if period == HOUR:
            return self.hour(ts)
        if period == DAY:
            return self.day(ts)
        if period == WEEK:
            return self.week(ts)
        return self.month(ts)

    def window_at(self, period: int, ts: int) -> tuple[int, int]:
        """``window(period, ts)``, memoised: for instants that recur, such as window bounds."""
        memo = self._at[period]
        window = memo.get(ts)
        if window is None:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            window = memo[ts] = self.window(period, ts)
        return window

    def windows_overlapping(self, period: int, lo: int, hi: int) -> list[tuple[int, int]]:
        """Windows of ``period`` that hold any instant of ``[lo, hi]`` (both inclusive)."""
        if period == HOUR:
            start = lo - lo % US_PER_HOUR
            end = start + US_PER_HOUR
            result = [(start, end)]
            while end <= hi:
                result.append((end, end + US_PER_HOUR))
                end += US_PER_HOUR
            return result
        window = (self.day if period == DAY else self.week if period == WEEK else self.month)(lo)
        result = [window]
        end = window[1]
        if end <= hi:
            memo = self._at[period]
            while end <= hi:
                cached = memo.get(end)
                window = cached if cached is not None else self.window_at(period, end)
                result.append(window)
                end = window[1]
        return result


def _local_span(period: int, local: date) -> tuple[date, date]:
    """(first date, first date after) of the ISO week or the month holding ``local``."""
    if period == WEEK:
        monday = local - timedelta(days=local.weekday())
        return monday, monday + timedelta(days=7)
    first = local.replace(day=1)
    return first, date(first.year + (first.month == 12), first.month % 12 + 1, 1)
