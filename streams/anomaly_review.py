"""The daily anomaly review: what was flagged on one local day, per device, its top windows,
and how each flagged device's day compares with its usual day. Pure: the rows come from the
metrics store; the job runner (agents) fetches them and stores the result."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

from streams.timeparse import format_us, us_to_datetime
from streams.windows import Calendar

HISTORY_DAYS = 28  # the "usual day" is learned from this many days before the review day
TOP_WINDOWS = 20


@dataclass(frozen=True)
class ReviewDay:
    """One local calendar day in ``timezone``, as UTC microseconds [start, end)."""

    day: date
    timezone: str
    start_us: int
    end_us: int
    history_start_us: int  # HISTORY_DAYS local days earlier


def review_day(day: date, timezone: str) -> ReviewDay:
    """The local ``day`` as the service's day window (SEMANTICS.md: a day whose midnight
    is skipped starts at the transition)."""
    calendar = Calendar(timezone)
    return ReviewDay(
        day,
        timezone,
        calendar.midnight(day),
        calendar.midnight(day + timedelta(days=1)),
        calendar.midnight(day - timedelta(days=HISTORY_DAYS)),
    )


def previous_day(now_us: int, timezone: str) -> ReviewDay:
    """The local day before the one ``now_us`` falls in."""
    return review_day(Calendar(timezone).local_date(now_us) - timedelta(days=1), timezone)


def summarise(
    day: ReviewDay,
    rows: Iterable[Mapping[str, Any]],
    *,
    windows_scored: int,
    top: int = TOP_WINDOWS,
) -> dict[str, Any]:
    """The review's result.

    ``rows``: hour and day windows (``device_id``, ``period``, ``window_start`` in us,
    ``energy_kwh``, ``coverage``, ``anomaly_score``, ``is_anomaly``) of the devices with a
    flag on ``day``, from ``day.history_start_us`` to ``day.end_us``. ``windows_scored``:
    hour and day windows of all devices scored on the day.
    """
    zone = ZoneInfo(day.timezone)
    hour_of = _local_hour(zone)
    today: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    history_days: dict[str, list[float]] = defaultdict(list)
    history_same_weekday: dict[str, list[float]] = defaultdict(list)
    history_hours: dict[tuple[str, int], list[float]] = defaultdict(list)
    weekday = day.day.weekday()
    for row in rows:
        start = int(row["window_start"])
        device_id = str(row["device_id"])
        energy = float(row["energy_kwh"] or 0.0)
        if day.start_us <= start < day.end_us:
            today[device_id].append(row)
        elif start < day.start_us:
            if row["period"] == "day":
                history_days[device_id].append(energy)
                if us_to_datetime(start).astimezone(zone).weekday() == weekday:
                    history_same_weekday[device_id].append(energy)
            elif row["period"] == "hour":
                history_hours[(device_id, hour_of(start))].append(energy)

    devices: list[dict[str, Any]] = []
    windows: list[dict[str, Any]] = []
    for device_id, device_rows in today.items():
        flagged = [r for r in device_rows if r["is_anomaly"]]
        if not flagged:
            continue
        day_rows = [r for r in device_rows if r["period"] == "day"]
        hours = [r for r in device_rows if r["period"] == "hour"]
        energy = (
            float(day_rows[0]["energy_kwh"])
            if day_rows
            else sum(float(r["energy_kwh"] or 0.0) for r in hours)
        )
        same = history_same_weekday.get(device_id, [])
        usual_source = same if len(same) >= 2 else history_days.get(device_id, [])
        usual = fmean(usual_source) if usual_source else None
        devices.append(
            {
                "device_id": device_id,
                "flagged_windows": len(flagged),
                "flagged_hours": sum(1 for r in flagged if r["period"] == "hour"),
                "day_flagged": any(r["period"] == "day" for r in flagged),
                "max_score": round(max(float(r["anomaly_score"] or 0.0) for r in flagged), 6),
                "energy_kwh": energy,
                "usual_day_kwh": usual,
                "usual_days": len(usual_source),
                "usual_basis": "same weekday" if usual_source is same and same else "all days",
                "ratio_to_usual": _ratio(energy, usual),
            }
        )
        for row in flagged:
            start = int(row["window_start"])
            window_energy = float(row["energy_kwh"] or 0.0)
            if row["period"] == "hour":
                past = history_hours.get((device_id, hour_of(start)), [])
                usual_window = fmean(past) if past else None
            else:
                usual_window = usual
            windows.append(
                {
                    "device_id": device_id,
                    "period": row["period"],
                    "window_start": format_us(start),
                    "local_start": us_to_datetime(start).astimezone(zone).isoformat(),
                    "anomaly_score": round(float(row["anomaly_score"] or 0.0), 6),
                    "energy_kwh": window_energy,
                    "usual_kwh": usual_window,
                    "ratio_to_usual": _ratio(window_energy, usual_window),
                }
            )
    devices.sort(key=lambda d: (-d["flagged_windows"], -d["max_score"], d["device_id"]))
    windows.sort(key=lambda w: (-w["anomaly_score"], w["device_id"], w["window_start"]))
    flagged_total = sum(d["flagged_windows"] for d in devices)
    return {
        "date": day.day.isoformat(),
        "timezone": day.timezone,
        "start": format_us(day.start_us),
        "end": format_us(day.end_us),
        "windows_scored": windows_scored,
        "windows_flagged": flagged_total,
        "devices_flagged": len(devices),
        "flag_rate": round(flagged_total / windows_scored, 6) if windows_scored else 0.0,
        "devices": devices,
        "top_windows": windows[:top],
        "history_days": HISTORY_DAYS,
    }


def _ratio(value: float, usual: float | None) -> float | None:
    if usual is None or usual <= 0:
        return None
    return round(value / usual, 4)


def _local_hour(zone: ZoneInfo) -> Any:
    cache: dict[int, int] = {}

    def hour_of(start_us: int) -> int:
        bucket = start_us // 3_600_000_000
        hour = cache.get(bucket)
        if hour is None:
            hour = us_to_datetime(bucket * 3_600_000_000).astimezone(zone).hour
            cache[bucket] = hour
        return hour

    return hour_of
