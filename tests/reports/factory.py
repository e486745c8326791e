"""Synthetic hour and day windows for report tests: each day window is the exact sum of its
hour windows, as the stream would store them."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from models.metrics import WindowAggregate
from reports.model import ReportData
from reports.parameters import parse_parameters

PRICE = Decimal("0.3")
GENERATED_AT = datetime(2026, 4, 1, 6, 30, tzinfo=UTC)


def window(
    device_id: str,
    period: str,
    start: datetime,
    end: datetime,
    energy_kwh: float,
    *,
    cost: Decimal | None = None,
    currency: str = "EUR",
    covered_seconds: float | None = None,
    power_max_w: float | None = None,
    anomaly_score: float | None = None,
    is_anomaly: bool | None = None,
) -> WindowAggregate:
    seconds = (end - start).total_seconds()
    covered = seconds if covered_seconds is None else covered_seconds
    mean_w = energy_kwh * 3_600_000 / seconds
    return WindowAggregate(
        device_id=device_id,
        period=period,  # type: ignore[arg-type]
        window_start=start,
        window_end=end,
        reading_count=max(1, int(covered // 60)),
        power_reading_count=max(1, int(covered // 60)),
        power_mean_w=mean_w,
        power_min_w=mean_w * 0.5,
        power_max_w=power_max_w if power_max_w is not None else mean_w * 2,
        energy_kwh=energy_kwh,
        cost=cost if cost is not None else Decimal(repr(energy_kwh)) * PRICE,
        currency=currency,
        coverage=covered / seconds,
        covered_seconds=covered,
        first_ts=start,
        last_ts=end - timedelta(seconds=1),
        anomaly_score=anomaly_score,
        is_anomaly=is_anomaly,
        revision=0,
    )


def device_windows(
    device_id: str,
    first_day: date,
    days: int,
    timezone: str = "UTC",
    *,
    scale: float = 1.0,
    flag_hour: tuple[int, int] | None = None,
    flag_day: int | None = None,
) -> list[WindowAggregate]:
    """Hour windows with a daily shape and matching day windows; ``flag_hour=(day, hour)``
    flags one hour window, ``flag_day`` one day window."""
    zone = ZoneInfo(timezone)
    windows: list[WindowAggregate] = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        start = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        following = day + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=zone).astimezone(UTC)
        hours = []
        moment = start
        while moment < end:
            local_hour = moment.astimezone(zone).hour
            energy = round(
                scale * (0.2 + 0.3 * (1 + math.sin((local_hour - 6) / 24 * 2 * math.pi))), 6
            )
            flagged = flag_hour == (offset, local_hour)
            hours.append(
                window(
                    device_id,
                    "hour",
                    moment,
                    moment + timedelta(hours=1),
                    energy * (4 if flagged else 1),
                    anomaly_score=0.97 if flagged else 0.1,
                    is_anomaly=flagged,
                )
            )
            moment += timedelta(hours=1)
        windows.extend(hours)
        windows.append(
            window(
                device_id,
                "day",
                start,
                end,
                math.fsum(h.energy_kwh for h in hours),
                cost=sum((h.cost for h in hours), Decimal(0)),
                power_max_w=max(h.power_max_w or 0 for h in hours),
                anomaly_score=0.9 if flag_day == offset else 0.2,
                is_anomaly=flag_day == offset,
            )
        )
    return windows


def report_data(
    windows: list[WindowAggregate],
    start: str,
    end: str,
    timezone: str = "UTC",
    *,
    device_ids: list[str] | None = None,
) -> ReportData:
    return ReportData(
        parameters=parse_parameters(
            {"start": start, "end": end, "device_ids": device_ids}, timezone
        ),
        timezone=timezone,
        currency="EUR",
        generated_at=GENERATED_AT,
        windows=tuple(windows),
    )
