"""The ``report`` job: load the windows, summarise once, render the requested formats, save
each as an artifact, and return a small result for the job record."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reports.context import ReportContext
from reports.data import load_report_data
from reports.formatting import rfc3339
from reports.model import ReportData
from reports.parameters import Format, parse_parameters
from reports.render_csv import render_csv
from reports.render_html import render_html
from reports.render_json import render_json
from reports.summary import ReportSummary, summarise

log = logging.getLogger("energy_processing.reports")

ARTIFACTS: dict[Format, tuple[str, str]] = {
    "csv": ("report.csv", "text/csv; charset=utf-8"),
    "json": ("report.json", "application/json"),
    "html": ("report.html", "text/html; charset=utf-8"),
}

Renderer = Callable[[ReportData, ReportSummary], bytes]
RENDERERS: dict[Format, Renderer] = {
    "csv": lambda data, _summary: render_csv(data),
    "json": render_json,
    "html": render_html,
}


async def build_report(ctx: ReportContext) -> dict[str, Any]:
    """Run a report job; raises ``ReportParameterError`` (naming the field) for bad
    parameters and lets database errors through for the framework to record."""
    started = time.monotonic()
    settings = ctx.settings
    parameters = parse_parameters(ctx.parameters, settings.timezone)
    await ctx.progress(5)
    data = await load_report_data(
        ctx.pool,
        parameters,
        timezone=settings.timezone,
        currency=settings.effective_tariff.currency,
        generated_at=datetime.now(UTC),
        job_id=ctx.job_id,
    )
    await ctx.progress(40)
    summary = summarise(data)
    await ctx.progress(50)
    artifacts = []
    for done, fmt in enumerate(parameters.formats, 1):
        name, content_type = ARTIFACTS[fmt]
        body = RENDERERS[fmt](data, summary)
        await ctx.save_artifact(name, content_type, body)
        artifacts.append({"name": name, "content_type": content_type, "bytes": len(body)})
        await ctx.progress(50 + 50 * done // len(parameters.formats))
    result = report_result(data, summary, artifacts)
    log.info(
        "report built",
        extra={
            "job_id": str(ctx.job_id),
            "devices": len(summary.devices),
            "windows": len(data.windows),
            "seconds": round(time.monotonic() - started, 3),
        },
    )
    return result


def report_result(
    data: ReportData, summary: ReportSummary, artifacts: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the job record keeps: enough to judge the report without downloading it."""
    device_ids = [device.device_id for device in summary.devices]
    return {
        "period": {
            "start": rfc3339(data.parameters.start),
            "end": rfc3339(data.parameters.end),
            "timezone": data.timezone,
            "days": len(summary.days),
        },
        "devices": len(device_ids),
        "device_ids": device_ids[:20],
        "energy_kwh": summary.energy_kwh,
        "cost": str(summary.cost),
        "currency": summary.currency,
        "anomalies": len(summary.anomalies),
        "windows": len(data.windows),
        "empty": summary.is_empty,
        "artifacts": artifacts,
    }
