"""The exact fold of SEMANTICS.md sections 2, 3, 4 and 6, acting on each device's state
(streams/device_state.py) and emitting window values (streams/emission.py).

State per device: the largest accepted timestamp, the accepted readings from the *anchor*
(the last reading at or before the watermark) onwards, partial sums ("frozen") of windows
that still have open neighbours, and the revision and fingerprint of windows already
emitted but not yet closed. An interval between two retained readings can still be split
by a reading that arrives within grace, so its energy is computed when a window's value is
needed; once the second reading of an interval falls at or below the watermark the interval
can never change and its contributions are added to the frozen sums, in timestamp order.
Every sum is therefore a left fold in timestamp order: the result is bit-for-bit the same
for any arrival order within grace and any split into batches.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.accumulator import Acc
from streams.config import ProcessingConfig
from streams.decode import Reading
from streams.device_state import DeviceState, Fingerprint, Key, digest_fingerprint
from streams.emission import Emission
from streams.tariff import PriceTable
from streams.timeparse import US_PER_HOUR, US_PER_S
from streams.windows import DAY, HOUR, MONTH, PERIOD_NAMES, WEEK, Calendar

_COMBINED = (WEEK, MONTH)
_ALL = (HOUR, DAY, WEEK, MONTH)
_LOCAL = (DAY, WEEK, MONTH)  # periods whose windows follow the local calendar


@dataclass(slots=True)
class BatchOutcome:
    accepted: int = 0
    duplicates: int = 0
    spikes: int = 0
    late: list[Reading] = field(default_factory=list)
    emissions: list[Emission] = field(default_factory=list)
    accepted_readings: list[Reading] = field(default_factory=list)


class Engine:
    """The fold for one configuration; stateless itself, it acts on DeviceState objects."""

    def __init__(self, config: ProcessingConfig) -> None:
        self.config = config
        self.grace = config.grace_us
        self.max_gap = config.max_gap_us
        self.max_power = config.max_power_w
        self.calendar = Calendar(config.timezone)
        self.prices = PriceTable(config.tariff, self.calendar)
        self.n_prices = len(self.prices.prices)

    # -- acceptance (section 2) --------------------------------------------------------
    def process(
        self, device_id: str, state: DeviceState, readings: Iterable[Reading], wall: float
    ) -> BatchOutcome:
        """Judge ``readings`` (one device, arrival order), fold them, return what to emit."""
        out = BatchOutcome()
        rows = state.readings
        grace = self.grace
        max_ts = state.max_ts
        old_wm = None if max_ts is None else max_ts - grace
        old_floor = rows[0][0] if rows else None
        lo: int | None = None
        hi: int | None = None
        accepted = out.accepted_readings
        for reading in readings:
            ts = reading.ts
            if max_ts is not None and ts < max_ts - grace:
                out.late.append(reading)
                continue
            n = len(rows)
            if n == 0 or ts > rows[-1][0]:  # the common case: a new latest reading
                rows.append([ts, reading.power_w, reading.energy_kwh])
                left = rows[-2][0] if n else ts
                right = ts
            else:
                pos = bisect_left(rows, ts, key=_ts)
                if rows[pos][0] == ts:
                    out.duplicates += 1
                    continue
                rows.insert(pos, [ts, reading.power_w, reading.energy_kwh])
                left = rows[pos - 1][0] if pos > 0 else ts
                right = rows[pos + 1][0]
            if lo is None or left < lo:
                lo = left
            if hi is None or right > hi:
                hi = right
            if max_ts is None or ts > max_ts:
                max_ts = ts
            accepted.append(reading)
        state.max_ts = max_ts
        state.last_wall = wall
        out.accepted = len(accepted)
        if not accepted:
            return out
        assert max_ts is not None and lo is not None and hi is not None
        state.pending = True
        out.spikes += self._freeze(state)
        new_wm = max_ts - grace
        candidates: set[tuple[int, int, int]] = set()
        # windows holding any instant of [lo, hi] that the watermark has passed
        self._passed(candidates, lo, hi, new_wm)
        floor = old_wm if old_wm is not None else lo
        if old_floor is not None and old_floor > floor:
            floor = old_floor
        if floor < new_wm:
            self._passed(candidates, floor, new_wm - 1, new_wm)
        if candidates:
            emissions = out.emissions
            # hour and day windows ending at or before the anchor: _close below drops them
            closing = rows[0][0]
            for period, start, end in sorted(candidates):
                self._maybe_emit(device_id, state, period, start, end, emissions, closing)
        self._close(state)
        return out

    def _passed(
        self, candidates: set[tuple[int, int, int]], lo: int, hi: int, watermark: int
    ) -> None:
        """Add (period, start, end) of every window holding an instant of ``[lo, hi]`` that
        ends at or before ``watermark``."""
        start = lo - lo % US_PER_HOUR
        while True:
            end = start + US_PER_HOUR
            if end <= watermark:
                candidates.add((HOUR, start, end))
            if end > hi:
                break
            start = end
        calendar = self.calendar
        if calendar.day(lo)[1] > watermark:
            # Usually so: then no day, week or month holding an instant of [lo, hi] has
            # ended (they end no earlier than the day holding lo; weeks and months are
            # whole days).
            return
        for period in _LOCAL:
            for start, end in calendar.windows_overlapping(period, lo, hi):
                if end <= watermark:
                    candidates.add((period, start, end))

    def flush(self, device_id: str, state: DeviceState) -> list[Emission]:
        """Idle flush (section 6): emit every window up to the one holding the last reading."""
        emissions: list[Emission] = []
        if state.max_ts is None or not state.readings:
            state.pending = False
            return emissions
        keys: set[tuple[int, int, int]] = set()
        for period, start in state.frozen:
            keys.add((period, start, self.calendar.window_at(period, start)[1]))
        for period in _ALL:
            for start, end in self.calendar.windows_overlapping(
                period, state.readings[0][0], state.max_ts
            ):
                keys.add((period, start, end))
        for period, start, end in sorted(keys):
            if start <= state.max_ts:
                self._maybe_emit(device_id, state, period, start, end, emissions)
        state.pending = False
        return emissions

    # -- intervals (section 3) ---------------------------------------------------------
    def interval(self, a: list[Any], b: list[Any]) -> tuple[float, bool, bool]:
        """(energy kWh, covered, spike) of the interval between consecutive readings."""
        dt = b[0] - a[0]
        if a[2] is not None and b[2] is not None:
            delta = b[2] - a[2]
            if delta < 0:
                delta = b[2]
            if delta * 3.6e6 / (dt / US_PER_S) > self.max_power:
                return 0.0, False, True
            return delta, True, False
        if a[1] is not None and dt <= self.max_gap:
            return a[1] * (dt / US_PER_S) / 3.6e6, True, False
        return 0.0, False, False

    def _spread(
        self,
        a: int,
        b: int,
        energy: float,
        lo: int,
        hi: int,
        target: dict[Key, Acc],
    ) -> None:
        """Add ``energy`` spread uniformly over ``[a, b)``, restricted to ``[lo, hi)``, to
        the hour and day windows in ``target`` (pieces split at hour, day and price
        changes; each piece adds to its hour, then its day)."""
        length = b - a
        day = self.calendar.day
        n_prices = self.n_prices
        for x, y, price in self.prices.segments(a if a > lo else lo, b if b < hi else hi):
            while x < y:
                h_start = x - x % US_PER_HOUR
                d_start, d_end = day(x)
                z = h_start + US_PER_HOUR
                if y < z:
                    z = y
                if d_end < z:
                    z = d_end
                overlap = z - x
                share = energy * overlap / length
                key = (HOUR, h_start)
                acc = target.get(key)
                if acc is None:
                    acc = target[key] = Acc(n_prices)
                acc.energy += share  # Acc.add_energy, inlined
                acc.covered += overlap
                acc.by_price[price] += share
                key = (DAY, d_start)
                acc = target.get(key)
                if acc is None:
                    acc = target[key] = Acc(n_prices)
                acc.energy += share
                acc.covered += overlap
                acc.by_price[price] += share
                x = z

    def _spread_one(
        self, a: int, b: int, energy: float, period: int, start: int, end: int, acc: Acc
    ) -> None:
        """``_spread`` into the one window ``(period, start)`` (``acc``), restricted to it:
        the same pieces, so the same sums; pieces of other windows are dropped."""
        length = b - a
        day = self.calendar.day
        for x, y, price in self.prices.segments(a if a > start else start, b if b < end else end):
            while x < y:
                h_start = x - x % US_PER_HOUR
                d_start, d_end = day(x)
                z = h_start + US_PER_HOUR
                if y < z:
                    z = y
                if d_end < z:
                    z = d_end
                overlap = z - x
                if (h_start if period == HOUR else d_start) == start:
                    acc.add_energy(energy * overlap / length, overlap, price)
                x = z

    def _freeze(self, state: DeviceState) -> int:
        """Move intervals that can no longer change into the frozen sums; count spikes."""
        rows = state.readings
        assert state.max_ts is not None
        watermark = state.max_ts - self.grace
        if len(rows) < 2 or rows[1][0] > watermark:
            return 0
        spikes = 0
        frozen = state.frozen
        day = self.calendar.day
        n_prices = self.n_prices
        done = 0
        last = len(rows) - 1
        while done < last and rows[done + 1][0] <= watermark:
            a, b = rows[done], rows[done + 1]
            t = a[0]
            key = (HOUR, t - t % US_PER_HOUR)
            acc = frozen.get(key)
            if acc is None:
                acc = frozen[key] = Acc(n_prices)
            acc.add_reading(t, a[1])
            key = (DAY, day(t)[0])
            acc = frozen.get(key)
            if acc is None:
                acc = frozen[key] = Acc(n_prices)
            acc.add_reading(t, a[1])
            energy, covered, spike = self.interval(a, b)
            spikes += spike
            if covered:
                self._spread(t, b[0], energy, t, b[0], frozen)
            done += 1
        del rows[:done]
        return spikes

    # -- window values (section 4) -----------------------------------------------------
    def value(self, state: DeviceState, period: int, start: int, end: int) -> Acc:
        """The window's current value: frozen sums plus what the retained readings add."""
        if period in _COMBINED:
            return self._combined_value(state, period, start, end)
        base = state.frozen.get((period, start))
        rows = state.readings
        if rows and end <= rows[0][0]:
            # Before the anchor: no retained reading or interval reaches it, and no later
            # one can (they start at or after the anchor), so its frozen sums are final
            # and never change again: no copy.
            return base if base is not None else Acc(self.n_prices)
        acc = base.copy() if base is not None else Acc(self.n_prices)
        for row in rows:
            if start <= row[0] < end:
                acc.add_reading(row[0], row[1])
        previous = None
        for row in rows:
            a, previous = previous, row
            if a is None or row[0] <= start or a[0] >= end:
                continue
            energy, covered, _ = self.interval(a, row)
            if covered:
                self._spread_one(a[0], row[0], energy, period, start, end, acc)
        return acc

    def _combined_value(self, state: DeviceState, period: int, start: int, end: int) -> Acc:
        base = state.frozen.get((period, start))
        acc = base.copy() if base is not None else Acc(self.n_prices)
        days: set[tuple[int, int]] = set()
        window_at = self.calendar.window_at
        for p, s in state.frozen:
            if p == DAY and start <= s < end:
                days.add((s, window_at(DAY, s)[1]))
        if state.readings and state.max_ts is not None:
            lo, hi = max(start, state.readings[0][0]), min(end - 1, state.max_ts)
            if lo <= hi:
                days.update(self.calendar.windows_overlapping(DAY, lo, hi))
        closed = state.closed_until
        prices = self.prices.prices
        for day_start, day_end in sorted(days):
            if closed is not None and day_end <= closed:
                continue
            acc.merge_window(self.value(state, DAY, day_start, day_end), prices)
        return acc

    # -- emission (section 6) ----------------------------------------------------------
    def _maybe_emit(
        self,
        device_id: str,
        state: DeviceState,
        period: int,
        start: int,
        end: int,
        emissions: list[Emission],
        closing: int | None = None,
    ) -> None:
        """Emit the window if it has something and changed since its last emission.
        ``closing``: the anchor the fold's ``_close`` will drop hour and day windows up to
        (their emitted entries then serve nothing: not stored)."""
        acc = self.value(state, period, start, end)
        key = (period, start)
        previous = state.emitted.get(key)
        if previous is None and acc.is_empty():
            return
        cost = acc.priced(self.prices.prices)
        revision = 0 if previous is None else previous[0] + 1
        if previous is not None:
            fingerprint: Fingerprint = digest_fingerprint((acc.fingerprint(), cost))
            if digest_fingerprint(previous[1]) == fingerprint:
                return
            state.emitted[key] = (revision, fingerprint)
        elif closing is None or period > DAY or end > closing:
            state.emitted[key] = (revision, (acc.fingerprint(), cost))
        emissions.append(Emission(device_id, PERIOD_NAMES[period], start, end, acc, cost, revision))

    def _close(self, state: DeviceState) -> None:
        """Drop windows that can never change again; fold closed days into weeks/months."""
        rows = state.readings
        if not rows:
            return
        anchor = rows[0][0]
        frozen = state.frozen
        emitted = state.emitted
        window_at = self.calendar.window_at
        # Days tile time: a day window ends at or before the anchor exactly when it starts
        # before the local midnight that begins the anchor's day.
        anchor_day = self.calendar.day(anchor)[0]
        closing_days = [s for p, s in frozen if p == DAY and s < anchor_day]
        if closing_days:
            closing_days.sort()
            prices = self.prices.prices
            for day_start in closing_days:
                acc = frozen.pop((DAY, day_start))
                emitted.pop((DAY, day_start), None)
                for period in _COMBINED:
                    key = (period, window_at(period, day_start)[0])
                    target = frozen.get(key)
                    if target is None:
                        target = frozen[key] = Acc(self.n_prices)
                    target.merge_window(acc, prices)
        closed = state.closed_until
        if closed is None or anchor_day > closed:
            state.closed_until = closed = anchor_day
        hour_limit = anchor - US_PER_HOUR
        # Every window either still held (frozen) or only remembered as emitted, judged once:
        # the days before anchor_day left frozen above, so no frozen day is gone here.
        for key in [*frozen, *[key for key in emitted if key not in frozen]]:
            period, start = key
            if period == HOUR:
                gone = start <= hour_limit
            elif period == DAY:
                gone = start < anchor_day
            else:
                gone = window_at(period, start)[1] <= closed
            if gone:
                frozen.pop(key, None)
                emitted.pop(key, None)


def _ts(row: list[Any]) -> int:
    return row[0]  # type: ignore[no-any-return]
