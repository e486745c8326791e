"""Runners by job kind: ``async runner(ctx: JobContext) -> dict`` (the job's result).

Adding a kind: one entry here, and its parameters model in models.jobs.JOB_PARAMETERS.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from agents.jobs.aggregate import run_aggregate
from agents.jobs.anomaly_review import run_anomaly_review
from agents.jobs.cleanup import run_cleanup
from agents.jobs.context import JobContext
from agents.jobs.device_batch import run_device_batch
from agents.jobs.report import run_report
from agents.jobs.rollup import run_rollup

Runner = Callable[[JobContext], Awaitable[dict[str, Any]]]

RUNNERS: Mapping[str, Runner] = {
    "aggregate": run_aggregate,
    "device_batch": run_device_batch,
    "cleanup": run_cleanup,
    "report": run_report,
    "anomaly_review": run_anomaly_review,
    "rollup": run_rollup,
}
