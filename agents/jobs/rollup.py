"""``rollup``: fleet figures of one closed UTC hour (the hourly timer creates it for the
last hour closed more than GRACE ago): devices reporting, devices seen in the day before
but silent in the hour, energy, cost per currency, flagged windows."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from agents.jobs.context import JobContext
from streams.timeparse import datetime_to_us, format_us, us_to_datetime

SILENT_LISTED = 50


def default_hour(now_s: float, grace_s: float) -> datetime:
    """The last UTC hour that closed more than ``grace_s`` ago."""
    closed = int((now_s - grace_s) // 3600) * 3600 - 3600
    return us_to_datetime(closed * 1_000_000)


async def run_rollup(ctx: JobContext) -> dict[str, Any]:
    hour: datetime | None = ctx.parameters.get("hour")
    if hour is None:
        hour = default_hour(time.time(), ctx.settings.grace)
    await ctx.progress(10)
    async with ctx.pool.acquire() as connection:
        totals = await connection.fetchrow(
            "SELECT count(*) AS devices, coalesce(sum(energy_kwh), 0) AS energy_kwh,"
            " coalesce(sum(reading_count), 0) AS readings,"
            " count(*) FILTER (WHERE is_anomaly) AS flagged,"
            " coalesce(avg(coverage), 0) AS mean_coverage"
            " FROM metrics WHERE period = 'hour' AND window_start = $1",
            hour,
        )
        costs = await connection.fetch(
            "SELECT currency, sum(cost)::text AS cost FROM metrics"
            " WHERE period = 'hour' AND window_start = $1 GROUP BY currency ORDER BY currency",
            hour,
        )
        await ctx.progress(60)
        silent = await connection.fetch(
            "SELECT d.device_id FROM devices d WHERE d.last_seen >= $1 AND d.first_seen < $2"
            " AND NOT EXISTS (SELECT 1 FROM metrics m WHERE m.device_id = d.device_id"
            " AND m.period = 'hour' AND m.window_start = $2)"
            " ORDER BY d.device_id",
            hour - timedelta(hours=24),
            hour,
        )
    return {
        "hour": format_us(datetime_to_us(hour)),
        "devices_reporting": int(totals["devices"]),
        "readings": int(totals["readings"]),
        "energy_kwh": float(totals["energy_kwh"]),
        "cost": {row["currency"]: row["cost"] for row in costs},
        "windows_flagged": int(totals["flagged"]),
        "mean_coverage": round(float(totals["mean_coverage"]), 6),
        "devices_silent": len(silent),
        "silent_devices": [row["device_id"] for row in silent[:SILENT_LISTED]],
    }
