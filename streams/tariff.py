"""Time-of-use pricing (SEMANTICS.md section 5), compiled into per-local-day price segments.

Price is a function of local wall-clock time. For each local date we list the instants at
which the price can change (local midnight, every period start and end in both DST folds,
and the DST transitions themselves), evaluate the price rule at each, and merge equal
neighbours. Any interval is then priced by splitting it at those instants.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import date, datetime, timedelta
from decimal import Decimal

from models.tariff import Tariff
from streams.timeparse import US_PER_S
from streams.windows import Calendar


class PriceTable:
    """Prices of one tariff in one zone; ``segments(a, b)`` splits ``[a, b)`` at price changes."""

    def __init__(self, tariff: Tariff, calendar: Calendar) -> None:
        self.tariff = tariff
        self.calendar = calendar
        self.currency = tariff.currency
        prices: list[Decimal] = [tariff.price_per_kwh]
        self._rules: list[tuple[frozenset[int], int, int, int]] = []
        for period in tariff.periods:
            if period.price_per_kwh not in prices:
                prices.append(period.price_per_kwh)
            index = prices.index(period.price_per_kwh)
            self._rules.append(
                (period.weekdays, period.start_minute * 60, period.end_minute * 60, index)
            )
        self.prices: tuple[Decimal, ...] = tuple(prices)
        self.flat = not self._rules
        # local day start -> (change instants, price index from each instant), sorted
        self._days: dict[int, tuple[list[int], list[int]]] = {}

    def price_index_at_local(self, local: datetime) -> int:
        """Index into ``prices`` for a local wall-clock time; first matching period wins."""
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        weekday = local.weekday()
        yesterday = (weekday - 1) % 7
        for days, start, end, index in self._rules:
            if start < end:
                if weekday in days and start <= seconds < end:
                    return index
            elif (weekday in days and seconds >= start) or (yesterday in days and seconds < end):
                return index
        return 0

    def price_index_at(self, ts: int) -> int:
        local = datetime.fromtimestamp(ts / US_PER_S, self.calendar.zone)
        return self.price_index_at_local(local)

    def _day_segments(self, day_start: int, day_end: int) -> tuple[list[int], list[int]]:
        cached = self._days.get(day_start)
        if cached is not None:
            return cached
        zone = self.calendar.zone
        local_day = self.calendar.local_date(day_start)
        candidates = {day_start}
        for local in (local_day, local_day - timedelta(days=1)):
            for _, start, end, _ in self._rules:
                for seconds in (start, end):
                    for fold in (0, 1):
                        candidates.add(_local_to_us(local, seconds, fold, zone))
        candidates.update(_transitions(day_start, day_end, self.calendar))
        points = sorted(c for c in candidates if day_start <= c < day_end)
        starts: list[int] = []
        indexes: list[int] = []
        for point in points:
            index = self.price_index_at(point)
            if not indexes or indexes[-1] != index:
                starts.append(point)
                indexes.append(index)
        self._days[day_start] = (starts, indexes)
        return starts, indexes

    def segments(self, a: int, b: int) -> list[tuple[int, int, int]]:
        """``[(x, y, price_index), ...]`` covering ``[a, b)`` in order."""
        if self.flat:
            return [(a, b, 0)]
        out: list[tuple[int, int, int]] = []
        cursor = a
        while cursor < b:
            day_start, day_end = self.calendar.day(cursor)
            starts, indexes = self._day_segments(day_start, day_end)
            i = bisect_right(starts, cursor) - 1
            while cursor < b and cursor < day_end:
                stop = starts[i + 1] if i + 1 < len(starts) else day_end
                stop = min(stop, b)
                if out and out[-1][2] == indexes[i] and out[-1][1] == cursor:
                    out[-1] = (out[-1][0], stop, indexes[i])
                else:
                    out.append((cursor, stop, indexes[i]))
                cursor = stop
                i += 1
        return out


def _local_to_us(day: date, seconds: int, fold: int, zone: object) -> int:
    base = datetime(day.year, day.month, day.day, fold=fold, tzinfo=zone)  # type: ignore[arg-type]
    local = base + timedelta(seconds=seconds)
    return int(local.replace(fold=fold).timestamp()) * US_PER_S


def _transitions(lo: int, hi: int, calendar: Calendar) -> list[int]:
    """UTC-offset changes of the zone inside ``[lo, hi)``, to the second."""
    zone = calendar.zone

    def offset(ts_s: int) -> object:
        return datetime.fromtimestamp(ts_s, zone).utcoffset()

    found: list[int] = []
    start, end = lo // US_PER_S, hi // US_PER_S
    while start < end and offset(start) != offset(end - 1):
        left, right = start, end - 1  # offset(left) != offset(right): bisect the change
        first = offset(left)
        while right - left > 1:
            mid = (left + right) // 2
            if offset(mid) == first:
                left = mid
            else:
                right = mid
        found.append(right * US_PER_S)
        start = right
    return found
