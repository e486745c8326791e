"""What a job runner gets: its job, validated parameters, the service's clients, and two
calls back into the job record (progress with cancellation, artifacts)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from models.jobs import ARTIFACT_NAME_PATTERN, JobParameters
from service.settings import Settings
from storage.base import Sink
from storage.jobs import PostgresJobStore


class JobCancelled(Exception):
    """Raised by ``JobContext.progress`` once the job was cancelled (or taken away from this
    worker); the runner lets it propagate and the job ends ``cancelled``."""

    def __init__(self, job_id: UUID) -> None:
        super().__init__(f"job {job_id} was cancelled")
        self.job_id = job_id


class InvalidArtifact(ValueError):
    """An artifact name or content type a job tried to save is not acceptable."""


# Progress writes closer together than this are skipped unless the percentage changes.
PROGRESS_MIN_INTERVAL_S = 0.5


@dataclass
class JobContext:
    """Handed to ``runner(ctx) -> result dict``.

    ``parameters`` is the kind's validated model (models.jobs.JOB_PARAMETERS); its fields
    read as attributes or by name. ``sink`` writes window aggregates where the stream writes
    them (in a worker: the metrics topic, PostgreSQL and InfluxDB, retried through outages).
    """

    job_id: UUID
    kind: str
    parameters: JobParameters
    settings: Settings
    pool: Any
    sink: Sink
    store: PostgresJobStore
    worker_id: str
    _last_progress: tuple[int, float] = field(default=(-1, 0.0), repr=False)

    async def progress(self, percent: float) -> None:
        """Record progress (0-100, clamped) and a heartbeat; raise JobCancelled when the job
        was cancelled meanwhile, so the runner stops at this point."""
        value = max(0, min(100, int(percent)))
        now = time.monotonic()
        last_value, last_time = self._last_progress
        if value == last_value and now - last_time < PROGRESS_MIN_INTERVAL_S:
            return
        self._last_progress = (value, now)
        if not await self.store.heartbeat(self.job_id, self.worker_id, value):
            raise JobCancelled(self.job_id)

    async def save_artifact(self, name: str, content_type: str, data: bytes) -> None:
        """Store a file the job produced, downloadable at
        ``GET /api/v1/jobs/{job_id}/artifacts/{name}``. Saving a name again replaces it."""
        if re.fullmatch(ARTIFACT_NAME_PATTERN, name) is None:
            raise InvalidArtifact(
                f"artifact name {name!r} must be 1-128 characters of A-Z a-z 0-9 . _ - "
                "starting with a letter or digit"
            )
        if not content_type or "\n" in content_type or "\r" in content_type:
            raise InvalidArtifact(f"content type {content_type!r} is not valid")
        await self.store.save_artifact(self.job_id, name, content_type, bytes(data))
