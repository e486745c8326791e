"""``report``: delegates to ``reports.build_report(ctx)`` (the report package), imported
when a report job runs so a worker without it still runs every other kind."""

from __future__ import annotations

import importlib
from typing import Any

from agents.jobs.context import JobContext


class ReportsUnavailable(RuntimeError):
    """The ``reports`` package (report rendering) is not installed in this worker."""


async def run_report(ctx: JobContext) -> dict[str, Any]:
    try:
        reports = importlib.import_module("reports")
    except ModuleNotFoundError as exc:
        if exc.name != "reports":
            raise
        raise ReportsUnavailable(
            "report jobs need the reports package (reports.build_report), which this "
            "worker does not have"
        ) from exc
    build_report = getattr(reports, "build_report", None)
    if build_report is None:
        raise ReportsUnavailable("the reports package has no build_report(ctx)")
    result = await build_report(ctx)
    if not isinstance(result, dict):
        raise TypeError(f"reports.build_report returned {type(result).__name__}, not a dict")
    return result
