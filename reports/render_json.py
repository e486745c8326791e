"""The report as JSON: the summary and its series, for programs (costs as decimal strings)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from reports.formatting import rfc3339
from reports.model import ReportData
from reports.summary import AnomalyRow, DayPoint, ReportSummary, summarise

SCHEMA_VERSION = 1


def _cost(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount)


def _daily(points: tuple[DayPoint, ...]) -> list[dict[str, Any]]:
    return [
        {
            "date": point.day.isoformat(),
            "energy_kwh": point.energy_kwh,
            "cost": _cost(point.cost),
            "coverage": point.coverage,
            "from_hour_windows": point.from_hours,
            "flagged_day_windows": point.flagged_days,
            "flagged_hour_windows": point.flagged_hours,
            "anomaly_score": point.anomaly_score,
        }
        for point in points
    ]


def _anomaly(row: AnomalyRow) -> dict[str, Any]:
    return {
        "device_id": row.device_id,
        "period": row.period,
        "window_start": rfc3339(row.window_start),
        "window_end": rfc3339(row.window_end),
        "energy_kwh": row.energy_kwh,
        "cost": str(row.cost),
        "currency": row.currency,
        "anomaly_score": row.anomaly_score,
    }


def report_document(data: ReportData, summary: ReportSummary) -> dict[str, Any]:
    """The JSON document as a dict (also the base of the job's result summary)."""
    zone = ZoneInfo(data.timezone)
    parameters = data.parameters
    return {
        "schema_version": SCHEMA_VERSION,
        "job_id": None if data.job_id is None else str(data.job_id),
        "generated_at": rfc3339(data.generated_at),
        "parameters": parameters.as_dict(),
        "period": {
            "start": rfc3339(parameters.start),
            "end": rfc3339(parameters.end),
            "start_local": parameters.start.astimezone(zone).isoformat(),
            "end_local": parameters.end.astimezone(zone).isoformat(),
            "days": len(summary.days),
            "timezone": data.timezone,
        },
        "currency": summary.currency,
        "totals": {
            "devices": len(summary.devices),
            "energy_kwh": summary.energy_kwh,
            "cost": str(summary.cost),
            "coverage": summary.coverage,
            "anomalies": len(summary.anomalies),
            "hour_windows": summary.hour_windows,
            "day_windows": summary.day_windows,
        },
        "windows_in_other_currencies": summary.other_currencies,
        "overall": {
            "daily": _daily(summary.daily),
            "hourly_profile_kwh": list(summary.hourly_profile),
        },
        "devices": [
            {
                "device_id": device.device_id,
                "energy_kwh": device.energy_kwh,
                "cost": str(device.cost),
                "coverage": device.coverage,
                "days_with_data": device.days_with_data,
                "peak_power_w": device.peak_power_w,
                "anomalies": len(device.anomalies),
                "daily": _daily(device.daily),
                "hourly_profile_kwh": list(device.hourly_profile),
            }
            for device in summary.devices
        ],
        "anomalies": [_anomaly(row) for row in summary.anomalies],
    }


def render_json(data: ReportData, summary: ReportSummary | None = None) -> bytes:
    summary = summary or summarise(data)
    return orjson.dumps(report_document(data, summary), option=orjson.OPT_INDENT_2) + b"\n"
