"""``anomaly_review``: the daily review of one local day's anomalies (the daily timer
creates it for yesterday): counts per device, the top windows by score, and each flagged
device's day against its usual day (streams/anomaly_review.py)."""

from __future__ import annotations

import time
from typing import Any

from agents.jobs.context import JobContext
from storage.postgres_repository import PostgresRepository
from streams.anomaly_review import previous_day, review_day, summarise
from streams.timeparse import datetime_to_us, us_to_datetime


async def run_anomaly_review(ctx: JobContext) -> dict[str, Any]:
    timezone = ctx.settings.timezone
    date = ctx.parameters.get("date")
    day = (
        review_day(date, timezone)
        if date is not None
        else previous_day(int(time.time() * 1_000_000), timezone)
    )
    await ctx.progress(10)
    rows, scored = await PostgresRepository(ctx.pool).anomaly_review_rows(
        us_to_datetime(day.start_us),
        us_to_datetime(day.end_us),
        us_to_datetime(day.history_start_us),
    )
    await ctx.progress(70)
    for row in rows:
        row["window_start"] = datetime_to_us(row["window_start"])
    return summarise(day, rows, windows_scored=scored)
