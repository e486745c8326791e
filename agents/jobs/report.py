"""``report``: a consumption report (CSV, JSON, self-contained HTML) built by
``reports.build_report``, its files stored as the job's artifacts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.jobs.context import JobContext
from reports import build_report
from service.settings import Settings


@dataclass
class _ReportJob:
    """The job seen as reports.ReportContext: its parameters as a plain mapping."""

    job: JobContext
    parameters: Mapping[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = self.job.parameters.model_dump(mode="json", exclude_none=True)

    @property
    def job_id(self) -> uuid.UUID:
        return self.job.job_id

    @property
    def settings(self) -> Settings:
        return self.job.settings

    @property
    def pool(self) -> Any:
        return self.job.pool

    async def progress(self, percent: int) -> None:
        await self.job.progress(percent)

    async def save_artifact(self, name: str, content_type: str, data: bytes) -> None:
        await self.job.save_artifact(name, content_type, data)


async def run_report(ctx: JobContext) -> dict[str, Any]:
    return await build_report(_ReportJob(ctx))
