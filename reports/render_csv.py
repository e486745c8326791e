"""The report as CSV: one row per stored hour and day window, for spreadsheets and scripts."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

from reports.formatting import local_iso, rfc3339
from reports.model import ReportData

CSV_COLUMNS = (
    "device_id",
    "period",
    "window_start",
    "window_end",
    "window_start_local",
    "energy_kwh",
    "cost",
    "currency",
    "coverage",
    "reading_count",
    "power_mean_w",
    "power_max_w",
    "anomaly_score",
    "is_anomaly",
)
"""``window_start``/``window_end`` are UTC (``Z``); ``window_start_local`` is in TIMEZONE.
``cost`` is the stored exact decimal; ``coverage`` a fraction 0..1; empty means null."""

_PERIOD_ORDER = {"day": 0, "hour": 1}


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back as the same float
    return str(value)


def render_csv(data: ReportData) -> bytes:
    """UTF-8 CSV with a header row; rows by device, then day windows before hour windows,
    then time. Device ids are written as they are (the csv module quotes as needed)."""
    zone = ZoneInfo(data.timezone)
    # Devices share window boundaries: format each instant once (most of the cost otherwise).
    utc_text: dict[datetime, str] = {}
    local_text: dict[datetime, str] = {}

    def utc(moment: datetime) -> str:
        text = utc_text.get(moment)
        if text is None:
            text = utc_text[moment] = rfc3339(moment)
        return text

    def local(moment: datetime) -> str:
        text = local_text.get(moment)
        if text is None:
            text = local_text[moment] = local_iso(moment, zone)
        return text

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    ordered = sorted(
        data.windows,
        key=lambda w: (w.device_id, _PERIOD_ORDER.get(w.period, 9), w.window_start),
    )
    for window in ordered:
        writer.writerow(
            [
                window.device_id,
                window.period,
                utc(window.window_start),
                utc(window.window_end),
                local(window.window_start),
                _cell(float(window.energy_kwh)),
                _cell(window.cost),
                window.currency,
                _cell(float(window.coverage)),
                _cell(window.reading_count),
                _cell(window.power_mean_w),
                _cell(window.power_max_w),
                _cell(window.anomaly_score),
                _cell(window.is_anomaly),
            ]
        )
    return out.getvalue().encode("utf-8")
