"""An independent implementation of SEMANTICS.md for tests: slow, literal, written apart
from ``streams/`` (datetime arithmetic, per-minute tariff evaluation, direct attribution
to every period including week and month)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from models.tariff import WEEKDAYS, Tariff

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_dt(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def to_us(dt: datetime) -> int:
    d = dt - EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


@dataclass
class OracleReading:
    device_id: str
    ts: int  # microseconds
    power_w: float | None
    energy_kwh: float | None


@dataclass
class OracleWindow:
    reading_count: int = 0
    powers: list[float] = field(default_factory=list)
    energy_kwh: float = 0.0
    cost: float = 0.0
    covered_us: int = 0
    first_ts: int | None = None
    last_ts: int | None = None


@dataclass
class OracleResult:
    windows: dict[tuple[str, str, int], dict[str, Any]]
    accepted: int
    late: int
    duplicates: int


def local_midnight(d: date, tz: ZoneInfo) -> int:
    return to_us(datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(UTC))


def window_of(period: str, us: int, tz: ZoneInfo) -> tuple[int, int]:
    if period == "hour":
        dt = to_dt(us).replace(minute=0, second=0, microsecond=0)
        return to_us(dt), to_us(dt + timedelta(hours=1))
    local = to_dt(us).astimezone(tz).date()
    while True:
        if period == "day":
            first, nxt = local, local + timedelta(days=1)
        elif period == "week":
            first = local - timedelta(days=local.weekday())
            nxt = first + timedelta(days=7)
        else:
            first = local.replace(day=1)
            nxt = (first + timedelta(days=32)).replace(day=1)
        if us < local_midnight(nxt, tz):
            return local_midnight(first, tz), local_midnight(nxt, tz)
        # clocks went back across midnight just after it (America/St_Johns before 2011):
        # the repeated minutes belong to the window of the date that already began
        local = nxt


def price_at(us: int, tariff: Tariff, tz: ZoneInfo) -> Decimal:
    local = to_dt(us).astimezone(tz)
    minute = local.hour * 60 + local.minute
    today = WEEKDAYS[local.weekday()]
    yesterday = WEEKDAYS[(local.weekday() - 1) % 7]
    for period in tariff.periods:
        days = WEEKDAYS if period.days == "all" else period.days
        start = int(period.start[:2]) * 60 + int(period.start[3:])
        end = int(period.end[:2]) * 60 + int(period.end[3:])
        if start < end:
            if today in days and start <= minute < end:
                return period.price_per_kwh
        elif (today in days and minute >= start) or (yesterday in days and minute < end):
            return period.price_per_kwh
    return tariff.price_per_kwh


def compute(
    arrivals: list[OracleReading],
    *,
    grace_s: float = 300,
    max_gap_s: float = 3600,
    max_power_w: float = 1e6,
    timezone: str = "UTC",
    tariff: Tariff | None = None,
) -> OracleResult:
    tz = ZoneInfo(timezone)
    tariff = tariff or Tariff()
    grace = round(grace_s * 1e6)
    accepted: dict[str, dict[int, OracleReading]] = {}
    max_ts: dict[str, int] = {}
    late = dups = 0
    for r in arrivals:
        if r.device_id in max_ts and r.ts < max_ts[r.device_id] - grace:
            late += 1
            continue
        seen = accepted.setdefault(r.device_id, {})
        if r.ts in seen:
            dups += 1
            continue
        seen[r.ts] = r
        max_ts[r.device_id] = max(max_ts.get(r.device_id, r.ts), r.ts)

    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for device, by_ts in accepted.items():
        rows = [by_ts[t] for t in sorted(by_ts)]
        windows: dict[tuple[str, int], tuple[int, OracleWindow]] = {}

        def win(
            period: str,
            us: int,
            windows: dict[tuple[str, int], tuple[int, OracleWindow]] = windows,
        ) -> OracleWindow:
            start, end = window_of(period, us, tz)
            if (period, start) not in windows:
                windows[(period, start)] = (end, OracleWindow())
            return windows[(period, start)][1]

        for r in rows:
            for period in ("hour", "day", "week", "month"):
                w = win(period, r.ts)
                w.reading_count += 1
                if r.power_w is not None:
                    w.powers.append(r.power_w)
                w.first_ts = r.ts if w.first_ts is None else min(w.first_ts, r.ts)
                w.last_ts = r.ts if w.last_ts is None else max(w.last_ts, r.ts)
        for a, b in itertools.pairwise(rows):
            dt_s = (b.ts - a.ts) / 1e6
            if a.energy_kwh is not None and b.energy_kwh is not None:
                delta = b.energy_kwh - a.energy_kwh
                if delta < 0:
                    delta = b.energy_kwh
                if delta * 3.6e6 / dt_s > max_power_w:
                    continue
                energy = delta
            elif a.power_w is not None and dt_s <= max_gap_s:
                energy = a.power_w * dt_s / 3.6e6
            else:
                continue
            length = b.ts - a.ts
            for period in ("hour", "day", "week", "month"):
                cursor = a.ts
                while cursor < b.ts:
                    start, end = window_of(period, cursor, tz)
                    stop = min(end, b.ts)
                    w = win(period, cursor)
                    w.energy_kwh += energy * (stop - cursor) / length
                    w.covered_us += stop - cursor
                    cursor = stop
            # cost: price is constant within a UTC minute (local boundaries are whole minutes)
            cursor = a.ts
            while cursor < b.ts:
                stop = min(b.ts, (cursor // 60_000_000 + 1) * 60_000_000)
                price = float(price_at(cursor, tariff, tz))
                piece = energy * (stop - cursor) / length * price
                for period in ("hour", "day", "week", "month"):
                    win(period, cursor).cost += piece
                cursor = stop
        for (period, start), (end, w) in windows.items():
            if w.reading_count == 0 and not w.energy_kwh > 0:
                continue
            out[(device, period, start)] = {
                "window_end": end,
                "reading_count": w.reading_count,
                "power_mean_w": sum(w.powers) / len(w.powers) if w.powers else None,
                "power_min_w": min(w.powers) if w.powers else None,
                "power_max_w": max(w.powers) if w.powers else None,
                "energy_kwh": w.energy_kwh,
                "cost": w.cost,
                "coverage": w.covered_us / (end - start),
                "first_ts": w.first_ts,
                "last_ts": w.last_ts,
            }
    return OracleResult(out, sum(len(v) for v in accepted.values()), late, dups)
