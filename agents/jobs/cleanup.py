"""``cleanup``: retention. Deletes stored windows older than their period's retention and
finished jobs (with their artifacts) older than ``JOB_RETENTION_DAYS``."""

from __future__ import annotations

from typing import Any

from agents.jobs.context import JobContext
from models.metrics import PERIODS


async def run_cleanup(ctx: JobContext) -> dict[str, Any]:
    settings = ctx.settings
    retention = {
        "hour": settings.retention_hour_days,
        "day": settings.retention_day_days,
        "week": settings.retention_week_days,
        "month": settings.retention_month_days,
    }
    deleted: dict[str, int] = {}
    for step, period in enumerate(PERIODS):
        days = retention[period]
        deleted[period] = await ctx.store.delete_metrics_before(period, days) if days > 0 else 0
        await ctx.progress(20 * (step + 1))
    jobs, artifacts = await ctx.store.delete_finished_jobs_before(settings.job_retention_days)
    return {
        "metrics_deleted": deleted,
        "metrics_retention_days": {p: (d if d > 0 else None) for p, d in retention.items()},
        "jobs_deleted": jobs,
        "artifacts_deleted": artifacts,
        "job_retention_days": settings.job_retention_days,
    }
