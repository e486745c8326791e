"""Loading a report's windows from PostgreSQL's ``metrics`` table (the only I/O of a report)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from models.metrics import WindowAggregate
from reports.model import ReportData
from reports.parameters import ReportParameters

LOAD_TIMEOUT_S = 120.0

_COLUMNS = (
    "device_id",
    "period",
    "window_start",
    "window_end",
    "reading_count",
    "power_reading_count",
    "power_mean_w",
    "power_min_w",
    "power_max_w",
    "energy_kwh",
    "cost",
    "currency",
    "coverage",
    "covered_seconds",
    "first_ts",
    "last_ts",
    "anomaly_score",
    "is_anomaly",
    "revision",
)

# Windows without readings or energy are left out, as the metrics API does. The
# (period, window_start) index serves the all-devices case, the primary key the listed one.
LOAD_WINDOWS = f"""
SELECT {", ".join(_COLUMNS)} FROM metrics
WHERE period = ANY($1::text[])
  AND window_start >= $2 AND window_start < $3
  AND ($4::text[] IS NULL OR device_id = ANY($4::text[]))
  AND (reading_count > 0 OR energy_kwh > 0)
ORDER BY device_id, period, window_start
"""


async def load_windows(pool: Any, parameters: ReportParameters) -> tuple[WindowAggregate, ...]:
    """The hour and day windows of the parameters' devices and local days."""
    device_ids = None if parameters.device_ids is None else list(parameters.device_ids)
    rows = await pool.fetch(
        LOAD_WINDOWS,
        ["hour", "day"],
        parameters.start,
        parameters.end,
        device_ids,
        timeout=LOAD_TIMEOUT_S,
    )
    # Rows come from our own schema (constraints hold); skip pydantic validation for speed.
    return tuple(WindowAggregate.model_construct(**dict(row)) for row in rows)


async def load_report_data(
    pool: Any,
    parameters: ReportParameters,
    *,
    timezone: str,
    currency: str,
    generated_at: datetime,
    job_id: uuid.UUID | None = None,
) -> ReportData:
    windows = await load_windows(pool, parameters)
    return ReportData(
        parameters=parameters,
        timezone=timezone,
        currency=currency,
        generated_at=generated_at,
        windows=windows,
        job_id=job_id,
    )
