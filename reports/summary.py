"""The numbers a report shows, computed once from ``ReportData`` (pure; no I/O).

Rules, stated in the report itself:

- Daily figures come from the stored ``day`` window; a local day without one (typically
  today, whose day window closes at midnight) is summed from that day's ``hour`` windows.
- Totals are the sums of the daily figures, so the daily chart adds up to the total.
- Coverage is covered seconds over the seconds of the period's local days (a day without
  data counts as 0).
- The hourly profile is the mean energy of a device's ``hour`` windows per local hour of
  day (kWh in that hour, i.e. mean kW); the fleet's profile is the sum of its devices'.
- Costs add up windows priced in the report's currency; windows in another currency (the
  tariff changed) are counted apart and named.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from models.metrics import WindowAggregate
from reports.model import ReportData

HOURS_OF_DAY = 24


@dataclass(frozen=True)
class DayPoint:
    """One local day of a device, or of all devices together."""

    day: date
    energy_kwh: float | None
    """None when there is no window for the day."""
    cost: Decimal | None
    coverage: float
    from_hours: bool
    """No day window: the figures are sums of the day's hour windows."""
    flagged_days: int
    """Day windows flagged anomalous (0 or 1 for a device)."""
    flagged_hours: int
    anomaly_score: float | None
    """The highest score of the day windows."""


@dataclass(frozen=True)
class AnomalyRow:
    device_id: str
    period: str
    window_start: datetime
    window_end: datetime
    energy_kwh: float
    cost: Decimal
    currency: str
    anomaly_score: float | None


@dataclass(frozen=True)
class DeviceSummary:
    device_id: str
    energy_kwh: float
    cost: Decimal
    coverage: float
    days_with_data: int
    peak_power_w: float | None
    daily: tuple[DayPoint, ...]
    hourly_profile: tuple[float | None, ...]
    """Mean kWh per local hour of day 0..23; None where no hour window exists."""
    anomalies: tuple[AnomalyRow, ...]
    """Flagged windows, highest score first."""


@dataclass(frozen=True)
class ReportSummary:
    timezone: str
    currency: str
    days: tuple[date, ...]
    """Every local day of the period."""
    period_seconds: float
    devices: tuple[DeviceSummary, ...]
    """Highest energy first (ties by device id)."""
    energy_kwh: float
    cost: Decimal
    coverage: float | None
    """Mean of the devices' coverage; None without devices."""
    daily: tuple[DayPoint, ...]
    hourly_profile: tuple[float | None, ...]
    anomalies: tuple[AnomalyRow, ...]
    hour_windows: int
    day_windows: int
    other_currencies: dict[str, int]
    """Windows priced in another currency, by currency; left out of costs."""

    @property
    def is_empty(self) -> bool:
        return not self.devices


class _LocalTime:
    """Local date and hour of window starts; memoised, since devices share window starts."""

    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._cache: dict[datetime, tuple[date, int]] = {}

    def __call__(self, moment: datetime) -> tuple[date, int]:
        found = self._cache.get(moment)
        if found is None:
            local = moment.astimezone(self._zone)
            found = (local.date(), local.hour)
            self._cache[moment] = found
        return found


def local_days(start: datetime, end: datetime, zone: ZoneInfo) -> tuple[date, ...]:
    """The local dates of ``[start, end)``, both local midnights."""
    first = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    return tuple(first + timedelta(days=n) for n in range((last - first).days))


def day_seconds(day: date, zone: ZoneInfo) -> float:
    """Length of a local day in seconds (23, 24 or 25 hours around DST changes)."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(UTC)
    return (end - start).total_seconds()


def summarise(data: ReportData) -> ReportSummary:
    zone = ZoneInfo(data.timezone)
    days = local_days(data.parameters.start, data.parameters.end, zone)
    lengths = {day: day_seconds(day, zone) for day in days}
    local_time = _LocalTime(zone)
    by_device: dict[str, list[WindowAggregate]] = defaultdict(list)
    for window in data.windows:
        by_device[window.device_id].append(window)
    other_currencies: Counter[str] = Counter(
        window.currency for window in data.windows if window.currency != data.currency
    )
    devices = [
        _device_summary(device_id, windows, days, lengths, local_time, data.currency)
        for device_id, windows in by_device.items()
    ]
    devices.sort(key=lambda device: (-device.energy_kwh, device.device_id))
    period_seconds = math.fsum(lengths.values())
    return ReportSummary(
        timezone=data.timezone,
        currency=data.currency,
        days=days,
        period_seconds=period_seconds,
        devices=tuple(devices),
        energy_kwh=math.fsum(device.energy_kwh for device in devices),
        cost=sum((device.cost for device in devices), Decimal(0)),
        coverage=math.fsum(d.coverage for d in devices) / len(devices) if devices else None,
        daily=_fleet_daily(days, devices),
        hourly_profile=_fleet_profile(devices),
        anomalies=tuple(
            sorted(
                (row for device in devices for row in device.anomalies),
                key=_anomaly_order,
            )
        ),
        hour_windows=sum(1 for window in data.windows if window.period == "hour"),
        day_windows=sum(1 for window in data.windows if window.period == "day"),
        other_currencies=dict(sorted(other_currencies.items())),
    )


def _anomaly_order(row: AnomalyRow) -> tuple[float, str, datetime, str]:
    score = row.anomaly_score if row.anomaly_score is not None else -1.0
    return (-score, row.device_id, row.window_start, row.period)


def _device_summary(
    device_id: str,
    windows: Sequence[WindowAggregate],
    days: Sequence[date],
    lengths: dict[date, float],
    local_time: _LocalTime,
    currency: str,
) -> DeviceSummary:
    day_windows: dict[date, WindowAggregate] = {}
    hours_by_day: dict[date, list[WindowAggregate]] = defaultdict(list)
    profile_sum = [0.0] * HOURS_OF_DAY
    profile_count = [0] * HOURS_OF_DAY
    anomalies: list[AnomalyRow] = []
    peak: float | None = None
    for window in windows:
        local_day, local_hour = local_time(window.window_start)
        if window.period == "day":
            day_windows[local_day] = window
        else:
            hours_by_day[local_day].append(window)
            profile_sum[local_hour] += window.energy_kwh
            profile_count[local_hour] += 1
        if window.power_max_w is not None and (peak is None or window.power_max_w > peak):
            peak = window.power_max_w
        if window.is_anomaly:
            anomalies.append(_anomaly_row(window))
    daily = tuple(
        _day_point(day, day_windows.get(day), hours_by_day.get(day, ()), lengths[day], currency)
        for day in days
    )
    covered = math.fsum(point.coverage * lengths[point.day] for point in daily)
    period_seconds = math.fsum(lengths.values())
    anomalies.sort(key=_anomaly_order)
    return DeviceSummary(
        device_id=device_id,
        energy_kwh=math.fsum(p.energy_kwh for p in daily if p.energy_kwh is not None),
        cost=sum((p.cost for p in daily if p.cost is not None), Decimal(0)),
        coverage=covered / period_seconds if period_seconds else 0.0,
        days_with_data=sum(1 for p in daily if p.energy_kwh is not None),
        peak_power_w=peak,
        daily=daily,
        hourly_profile=tuple(
            total / count if count else None
            for total, count in zip(profile_sum, profile_count, strict=True)
        ),
        anomalies=tuple(anomalies),
    )


def _anomaly_row(window: WindowAggregate) -> AnomalyRow:
    return AnomalyRow(
        device_id=window.device_id,
        period=window.period,
        window_start=window.window_start,
        window_end=window.window_end,
        energy_kwh=window.energy_kwh,
        cost=window.cost,
        currency=window.currency,
        anomaly_score=window.anomaly_score,
    )


def _day_point(
    day: date,
    day_window: WindowAggregate | None,
    hours: Iterable[WindowAggregate],
    length: float,
    currency: str,
) -> DayPoint:
    hours = list(hours)
    flagged_hours = sum(1 for hour in hours if hour.is_anomaly)
    if day_window is not None:
        return DayPoint(
            day=day,
            energy_kwh=day_window.energy_kwh,
            cost=day_window.cost if day_window.currency == currency else Decimal(0),
            coverage=min(1.0, day_window.covered_seconds / length),
            from_hours=False,
            flagged_days=1 if day_window.is_anomaly else 0,
            flagged_hours=flagged_hours,
            anomaly_score=day_window.anomaly_score,
        )
    if not hours:
        return DayPoint(day, None, None, 0.0, False, 0, 0, None)
    return DayPoint(
        day=day,
        energy_kwh=math.fsum(hour.energy_kwh for hour in hours),
        cost=sum((hour.cost for hour in hours if hour.currency == currency), Decimal(0)),
        coverage=min(1.0, math.fsum(hour.covered_seconds for hour in hours) / length),
        from_hours=True,
        flagged_days=0,
        flagged_hours=flagged_hours,
        anomaly_score=None,
    )


def _fleet_daily(days: Sequence[date], devices: Sequence[DeviceSummary]) -> tuple[DayPoint, ...]:
    points = []
    for index, day in enumerate(days):
        of_day = [device.daily[index] for device in devices]
        with_data = [point for point in of_day if point.energy_kwh is not None]
        scores = [p.anomaly_score for p in of_day if p.anomaly_score is not None]
        points.append(
            DayPoint(
                day=day,
                energy_kwh=math.fsum(p.energy_kwh or 0.0 for p in with_data) if with_data else None,
                cost=sum((p.cost or Decimal(0) for p in with_data), Decimal(0))
                if with_data
                else None,
                coverage=math.fsum(p.coverage for p in of_day) / len(of_day) if of_day else 0.0,
                from_hours=any(p.from_hours for p in with_data),
                flagged_days=sum(p.flagged_days for p in of_day),
                flagged_hours=sum(p.flagged_hours for p in of_day),
                anomaly_score=max(scores) if scores else None,
            )
        )
    return tuple(points)


def _fleet_profile(devices: Sequence[DeviceSummary]) -> tuple[float | None, ...]:
    profile: list[float | None] = []
    for hour in range(HOURS_OF_DAY):
        values = [d.hourly_profile[hour] for d in devices if d.hourly_profile[hour] is not None]
        profile.append(math.fsum(v for v in values if v is not None) if values else None)
    return tuple(profile)
