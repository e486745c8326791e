"""The job loop of a worker: one job at a time, beside the stream agents.

Job ids arrive from the ``energy.jobs`` agent (``submit``) and wait in a local queue; the
loop claims each in PostgreSQL (only one worker's claim of a pending job succeeds), runs
its kind's runner in a task with a heartbeat beside it, and records the outcome. When the
queue is idle it claims the oldest job left pending longer than ``JOB_PENDING_TIMEOUT``
(its message was lost, or the worker that had it queued died). ``mark_stale`` (on start
and on a timer) fails running jobs whose heartbeat is older than ``JOB_HEARTBEAT_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from uuid import UUID

import orjson
from pydantic import ValidationError

from agents.jobs.context import JobCancelled, JobContext
from agents.jobs.registry import RUNNERS, Runner
from models.jobs import JOB_PARAMETERS, Job, JobStatus
from models.metrics import WindowAggregate
from service.endpoints import database_dsn
from service.settings import Settings
from storage.base import Sink, SinkUnavailable, StorageError
from storage.jobs import PostgresJobStore, StaleJob
from storage.migrations import migrate_pool
from storage.postgres import create_pool

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 4000
FINISH_ATTEMPTS = 20


class CallbackSink:
    """A Sink over an async ``publish(windows)`` (in a worker: the pipeline's outputs, i.e.
    the metrics topic, PostgreSQL and InfluxDB with retries)."""

    name = "job-windows"

    def __init__(self, publish: Callable[[Sequence[WindowAggregate]], Awaitable[None]]) -> None:
        self._publish = publish

    async def start(self) -> None:
        return None

    async def write(self, batch: Sequence[WindowAggregate]) -> None:
        await self._publish(batch)

    async def close(self) -> None:
        return None


def parse_job_message(value: bytes | None) -> UUID | None:
    """The job id of an ``energy.jobs`` message: ``{"job_id": "<uuid>", ...}``."""
    try:
        doc = orjson.loads(value or b"")
        return UUID(str(doc["job_id"] if isinstance(doc, dict) else doc))
    except (orjson.JSONDecodeError, KeyError, ValueError, TypeError):
        return None


def describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


class JobWorker:
    def __init__(
        self,
        settings: Settings,
        *,
        worker_id: str,
        sink: Sink,
        pool: Any = None,
        runners: Mapping[str, Runner] = RUNNERS,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.sink = sink
        self.runners = runners
        self.pool = pool
        self._own_pool = pool is None
        self.store: PostgresJobStore | None = None if pool is None else PostgresJobStore(pool)
        self.queue: asyncio.Queue[UUID] = asyncio.Queue()
        self.current: UUID | None = None
        self.jobs_run = 0
        self._task: asyncio.Task[None] | None = None

    # -- wiring ------------------------------------------------------------------------
    def submit(self, value: bytes | None) -> None:
        job_id = parse_job_message(value)
        if job_id is None:
            logger.warning("ignoring a malformed jobs message", extra={"value": repr(value)[:200]})
            return
        self.queue.put_nowait(job_id)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._own_pool and self.pool is not None:
            await self.pool.close()
            self.pool = None
            self.store = None

    async def ensure_store(self) -> PostgresJobStore:
        delay = 0.5
        while self.store is None:
            try:
                self.pool = await create_pool(database_dsn(self.settings), min_size=1, max_size=3)
                await migrate_pool(self.pool)
                self.store = PostgresJobStore(self.pool)
            except (SinkUnavailable, OSError) as exc:
                logger.warning("jobs: database not reachable yet, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        return self.store

    # -- the loop ----------------------------------------------------------------------
    async def run_forever(self) -> None:
        store = await self.ensure_store()
        await self.mark_stale()
        while True:
            try:
                job_id: UUID | None = await asyncio.wait_for(
                    self.queue.get(), self.settings.job_reconcile_interval
                )
            except TimeoutError:
                job_id = None
            try:
                if job_id is not None:
                    job = await store.claim(job_id, self.worker_id)
                else:
                    job = await store.claim_oldest_pending(
                        self.worker_id, self.settings.job_pending_timeout
                    )
                    if job is not None:
                        logger.info(
                            "jobs: running a job left pending", extra={"job_id": str(job.id)}
                        )
                if job is not None:
                    await self.run_job(job)
            except StorageError as exc:
                # The job stays pending (or fails as stale); another pass picks it up.
                logger.warning("jobs: database error, will retry: %s", exc)
                await asyncio.sleep(1.0)

    async def mark_stale(self) -> list[StaleJob]:
        """Fail running jobs whose worker stopped sending heartbeats."""
        if self.store is None:
            return []
        try:
            stale = await self.store.fail_stale(self.settings.job_heartbeat_timeout)
        except StorageError as exc:
            logger.warning("jobs: could not check for stale jobs: %s", exc)
            return []
        for job in stale:
            logger.warning(
                "jobs: failed a job whose worker stopped responding",
                extra={"job_id": str(job.job_id), "worker": job.worker_id},
            )
        return stale

    # -- one job -----------------------------------------------------------------------
    async def run_job(self, job: Job) -> Job | None:
        """Run a job this worker has claimed, and record how it ended."""
        store = await self.ensure_store()
        self.current = job.id
        logger.info("job started", extra={"job_id": str(job.id), "kind": job.kind})
        try:
            status, result, error = await self._execute(store, job)
        finally:
            self.current = None
        finished = await self._finish(store, job.id, status, result, error)
        self.jobs_run += 1
        logger.info(
            "job finished",
            extra={"job_id": str(job.id), "kind": job.kind, "status": status, "error": error},
        )
        return finished

    async def _execute(
        self, store: PostgresJobStore, job: Job
    ) -> tuple[JobStatus, dict[str, Any] | None, str | None]:
        runner = self.runners.get(job.kind)
        model = JOB_PARAMETERS.get(job.kind)
        if runner is None or model is None:
            return "failed", None, f"no runner for job kind {job.kind!r} in this worker"
        try:
            parameters = model.model_validate(job.parameters)
        except ValidationError as exc:
            return "failed", None, f"invalid parameters: {describe(exc)}"
        ctx = JobContext(
            job_id=job.id,
            kind=job.kind,
            parameters=parameters,
            settings=self.settings,
            pool=self.pool,
            sink=self.sink,
            store=store,
            worker_id=self.worker_id,
        )
        work = asyncio.ensure_future(runner(ctx))
        beat = asyncio.ensure_future(self._heartbeats(store, job.id, work))
        try:
            result = await work
        except JobCancelled:
            return "cancelled", None, "cancelled on request"
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                # The worker is shutting down: record it, then let the cancellation go on.
                with contextlib.suppress(Exception):
                    await asyncio.shield(
                        store.finish(
                            job.id,
                            self.worker_id,
                            "failed",
                            error=f"worker {self.worker_id} shut down while running the job",
                        )
                    )
                raise
            return "cancelled", None, "cancelled on request"
        except Exception as exc:
            logger.warning("job failed", extra={"job_id": str(job.id)}, exc_info=True)
            return "failed", None, describe(exc)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await beat
        if not isinstance(result, dict):
            return "failed", None, f"runner returned {type(result).__name__}, not a dict"
        try:  # the result is stored as JSON: make sure it is
            result = orjson.loads(orjson.dumps(result, default=str))
        except TypeError as exc:
            return "failed", None, f"result is not JSON: {exc}"
        return "succeeded", result, None

    async def _heartbeats(
        self, store: PostgresJobStore, job_id: UUID, work: asyncio.Future[Any]
    ) -> None:
        """Keep the job alive while the runner works; stop the runner when the job is
        cancelled or no longer this worker's (failed as stale by another worker)."""
        while True:
            await asyncio.sleep(self.settings.job_heartbeat_interval)
            try:
                alive = await store.heartbeat(job_id, self.worker_id)
            except StorageError as exc:
                logger.warning("jobs: heartbeat failed: %s", exc)
                continue
            if not alive:
                work.cancel()
                return

    async def _finish(
        self,
        store: PostgresJobStore,
        job_id: UUID,
        status: JobStatus,
        result: dict[str, Any] | None,
        error: str | None,
    ) -> Job | None:
        delay = 0.5
        for attempt in range(FINISH_ATTEMPTS):
            try:
                return await store.finish(
                    job_id, self.worker_id, status, result=result, error=error
                )
            except SinkUnavailable as exc:
                if attempt == FINISH_ATTEMPTS - 1:
                    logger.error("jobs: could not record the end of job %s: %s", job_id, exc)
                    return None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        return None
