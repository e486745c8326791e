"""Consumption reports (the ``report`` job kind): CSV, JSON and a self-contained HTML page.

``build_report(ctx)`` is the job; ``reports.data`` is its only I/O; the renderers are pure
functions of ``ReportData``.
"""

from __future__ import annotations

from reports.context import ReportContext
from reports.job import ARTIFACTS, build_report, report_result
from reports.model import ReportData
from reports.parameters import ReportParameterError, ReportParameters, parse_parameters
from reports.render_csv import render_csv
from reports.render_html import render_html
from reports.render_json import render_json
from reports.summary import ReportSummary, summarise

__all__ = [
    "ARTIFACTS",
    "ReportContext",
    "ReportData",
    "ReportParameterError",
    "ReportParameters",
    "ReportSummary",
    "build_report",
    "parse_parameters",
    "render_csv",
    "render_html",
    "render_json",
    "report_result",
    "summarise",
]
