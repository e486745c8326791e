"""The jobs repository over asyncpg: records, their life cycle, artifacts and retention.

Every state change is one conditional UPDATE, so concurrent workers and API instances agree
without locks held across calls: only one claim of a pending job succeeds, a worker writes
progress and its result only while it still holds the job (``status = 'running'`` and its
``worker_id``), and a finished job never changes again.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from models.jobs import FINISHED_STATUSES, JOB_STATUSES, ArtifactInfo, Job, JobCounts, JobStatus
from models.metrics import PERIODS, WindowAggregate
from storage.base import InvalidCursor, StorageError
from storage.postgres import mapped_errors

_COLUMNS = (
    "id, kind, status, parameters::text AS parameters, result::text AS result, error, progress,"
    " created_at, started_at, finished_at, duration_s, worker_id, heartbeat_at,"
    " cancel_requested_at"
)
_CURSOR_VERSION = "j1"
_FINISHED = list(FINISHED_STATUSES)
MAX_PAGE_SIZE = 1000


class JobNotFound(StorageError):
    def __init__(self, job_id: UUID) -> None:
        super().__init__(f"no job {job_id}")
        self.job_id = job_id


class JobAlreadyFinished(StorageError):
    """The job cannot be cancelled: it has already finished."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} already finished with status {job.status}")
        self.job = job


@dataclass(frozen=True)
class JobsQuery:
    """Filters of ``GET /api/v1/jobs``; pages are newest first."""

    status: JobStatus | None = None
    kind: str | None = None
    limit: int = 100
    cursor: str | None = None


@dataclass(frozen=True)
class JobsPage:
    items: list[Job]
    next_cursor: str | None


@dataclass(frozen=True)
class Artifact:
    info: ArtifactInfo
    data: bytes


@dataclass(frozen=True)
class StaleJob:
    """A running job whose worker stopped sending heartbeats; now failed."""

    job_id: UUID
    worker_id: str | None


def encode_job_cursor(created_at: datetime, job_id: UUID) -> str:
    text = json.dumps([_CURSOR_VERSION, created_at.isoformat(), str(job_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_job_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (created_at, id) after which the next page starts; ``InvalidCursor`` otherwise."""
    if not cursor or len(cursor) > 2048:
        raise InvalidCursor("cursor is empty or too long")
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (isinstance(value, list) and len(value) == 3 and value[0] == _CURSOR_VERSION):
            raise ValueError("not a jobs cursor")
        created_at = datetime.fromisoformat(value[1])
        job_id = UUID(value[2])
    except (binascii.Error, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if created_at.tzinfo is None:
        raise InvalidCursor("cursor is not valid")
    return created_at, job_id


def _job(row: Any) -> Job:
    values = dict(row)
    values["parameters"] = json.loads(values["parameters"])
    values["result"] = None if values["result"] is None else json.loads(values["result"])
    return Job.model_validate(values)


def _json(value: Any) -> str:
    return json.dumps(value, default=str, allow_nan=False)


class PostgresJobStore:
    """Jobs and their artifacts in PostgreSQL. Takes a built pool and never closes it."""

    def __init__(self, pool: Any, *, timeout: float = 30.0) -> None:
        self._pool = pool
        self._timeout = timeout

    # -- requests (API) ------------------------------------------------------------------
    async def create(
        self, kind: str, parameters: dict[str, Any], job_id: UUID | None = None
    ) -> Job:
        with mapped_errors():
            row = await self._pool.fetchrow(
                f"INSERT INTO jobs (id, kind, status, parameters)"
                f" VALUES ($1, $2, 'pending', $3::text::jsonb) RETURNING {_COLUMNS}",
                job_id or uuid4(),
                kind,
                _json(parameters),
                timeout=self._timeout,
            )
        return _job(row)

    async def create_if_absent(
        self, kind: str, parameters: dict[str, Any], job_id: UUID
    ) -> Job | None:
        """Create a job with this id unless one exists (timers: safe to fire twice)."""
        with mapped_errors():
            row = await self._pool.fetchrow(
                f"INSERT INTO jobs (id, kind, status, parameters)"
                f" VALUES ($1, $2, 'pending', $3::text::jsonb)"
                f" ON CONFLICT (id) DO NOTHING RETURNING {_COLUMNS}",
                job_id,
                kind,
                _json(parameters),
                timeout=self._timeout,
            )
        return None if row is None else _job(row)

    async def get(self, job_id: UUID) -> Job | None:
        with mapped_errors():
            row = await self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM jobs WHERE id = $1", job_id, timeout=self._timeout
            )
        return None if row is None else _job(row)

    async def list_jobs(self, query: JobsQuery) -> JobsPage:
        after = decode_job_cursor(query.cursor) if query.cursor is not None else None
        limit = max(1, min(query.limit, MAX_PAGE_SIZE))
        args: list[object] = []

        def param(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        where = ["TRUE"]
        if query.status is not None:
            where.append(f"status = {param(query.status)}")
        if query.kind is not None:
            where.append(f"kind = {param(query.kind)}")
        if after is not None:
            where.append(f"(created_at, id) < ({param(after[0])}, {param(after[1])})")
        sql = (
            f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(where)}"
            f" ORDER BY created_at DESC, id DESC LIMIT {param(limit + 1)}"
        )
        with mapped_errors():
            rows = await self._pool.fetch(sql, *args, timeout=self._timeout)
        items = [_job(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            next_cursor = encode_job_cursor(items[-1].created_at, items[-1].id)
        return JobsPage(items, next_cursor)

    async def cancel(self, job_id: UUID) -> Job:
        """A pending job becomes ``cancelled`` at once; a running one gets
        ``cancel_requested_at`` and stops at its next progress call. ``JobNotFound``,
        ``JobAlreadyFinished`` otherwise."""
        with mapped_errors():
            row = await self._pool.fetchrow(
                f"""
                UPDATE jobs SET
                    status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END,
                    finished_at = CASE WHEN status = 'pending' THEN now() ELSE finished_at END,
                    cancel_requested_at = COALESCE(cancel_requested_at, now())
                WHERE id = $1 AND status IN ('pending', 'running')
                RETURNING {_COLUMNS}""",
                job_id,
                timeout=self._timeout,
            )
        if row is not None:
            return _job(row)
        job = await self.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        raise JobAlreadyFinished(job)

    async def counts(self) -> JobCounts:
        with mapped_errors():
            rows = await self._pool.fetch(
                "SELECT kind, status, count(*) AS n FROM jobs GROUP BY kind, status",
                timeout=self._timeout,
            )
        by_status: dict[str, int] = dict.fromkeys(JOB_STATUSES, 0)
        by_kind: dict[str, int] = {}
        both: dict[str, dict[str, int]] = {}
        for row in rows:
            n = int(row["n"])
            by_status[row["status"]] = by_status.get(row["status"], 0) + n
            by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + n
            both.setdefault(row["kind"], {})[row["status"]] = n
        return JobCounts(
            total=sum(by_kind.values()),
            by_status=by_status,
            by_kind=dict(sorted(by_kind.items())),
            by_kind_and_status=dict(sorted(both.items())),
        )

    # -- life cycle (worker) -------------------------------------------------------------
    async def claim(self, job_id: UUID, worker_id: str) -> Job | None:
        """pending -> running for ``worker_id``; None if the job is not pending (another
        worker has it, it was cancelled or it is finished)."""
        with mapped_errors():
            row = await self._pool.fetchrow(
                f"UPDATE jobs SET status = 'running', worker_id = $2, started_at = now(),"
                f" heartbeat_at = now(), progress = 0"
                f" WHERE id = $1 AND status = 'pending' RETURNING {_COLUMNS}",
                job_id,
                worker_id,
                timeout=self._timeout,
            )
        return None if row is None else _job(row)

    async def claim_oldest_pending(self, worker_id: str, older_than_s: float) -> Job | None:
        """Claim the oldest job pending for more than ``older_than_s`` seconds (its
        ``energy.jobs`` message was lost, or the worker that had it queued died)."""
        with mapped_errors():
            row = await self._pool.fetchrow(
                f"""
                UPDATE jobs SET status = 'running', worker_id = $1, started_at = now(),
                    heartbeat_at = now(), progress = 0
                WHERE id = (
                    SELECT id FROM jobs
                    WHERE status = 'pending'
                      AND created_at < now() - make_interval(secs => $2)
                    ORDER BY created_at, id LIMIT 1
                    FOR UPDATE SKIP LOCKED)
                  AND status = 'pending'
                RETURNING {_COLUMNS}""",
                worker_id,
                float(older_than_s),
                timeout=self._timeout,
            )
        return None if row is None else _job(row)

    async def heartbeat(self, job_id: UUID, worker_id: str, progress: int | None = None) -> bool:
        """Record a sign of life (and progress). False when the job is no longer this
        worker's to run: cancellation requested, or it was failed as stale meanwhile."""
        with mapped_errors():
            row = await self._pool.fetchrow(
                "UPDATE jobs SET heartbeat_at = now(), progress = COALESCE($3, progress)"
                " WHERE id = $1 AND worker_id = $2 AND status = 'running'"
                " RETURNING cancel_requested_at IS NULL AS go_on",
                job_id,
                worker_id,
                progress,
                timeout=self._timeout,
            )
        return bool(row is not None and row["go_on"])

    async def finish(
        self,
        job_id: UUID,
        worker_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Job | None:
        """running -> ``status`` (succeeded, failed or cancelled), with result or error and
        the duration; None when the job is not running for this worker any more."""
        if status not in FINISHED_STATUSES:
            raise ValueError(f"{status} is not a finished status")
        with mapped_errors():
            row = await self._pool.fetchrow(
                f"""
                UPDATE jobs SET status = $3, result = $4::text::jsonb, error = $5,
                    progress = CASE WHEN $3 = 'succeeded' THEN 100 ELSE progress END,
                    finished_at = now(), heartbeat_at = now(),
                    duration_s = EXTRACT(EPOCH FROM now() - started_at)::double precision
                WHERE id = $1 AND worker_id = $2 AND status = 'running'
                RETURNING {_COLUMNS}""",
                job_id,
                worker_id,
                status,
                None if result is None else _json(result),
                error,
                timeout=self._timeout,
            )
        return None if row is None else _job(row)

    async def fail_stale(self, timeout_s: float) -> list[StaleJob]:
        """Fail every running job whose heartbeat is older than ``timeout_s``: its worker
        died (or hangs). Returns the jobs failed by this call."""
        with mapped_errors():
            rows = await self._pool.fetch(
                """
                UPDATE jobs SET status = 'failed', finished_at = now(),
                    error = 'worker ' || COALESCE(worker_id, '?') || ' stopped responding'
                        || ' (no heartbeat for ' || round(EXTRACT(EPOCH FROM now() - heartbeat_at))
                        || ' s)',
                    duration_s = EXTRACT(EPOCH FROM now() - started_at)::double precision
                WHERE status = 'running'
                  AND COALESCE(heartbeat_at, started_at, created_at)
                      < now() - make_interval(secs => $1)
                RETURNING id, worker_id""",
                float(timeout_s),
                timeout=self._timeout,
            )
        return [StaleJob(row["id"], row["worker_id"]) for row in rows]

    # -- artifacts -----------------------------------------------------------------------
    async def save_artifact(self, job_id: UUID, name: str, content_type: str, data: bytes) -> None:
        """Store (or replace) the artifact ``name`` of a job."""
        with mapped_errors():
            await self._pool.execute(
                "INSERT INTO job_artifacts (job_id, name, content_type, bytes, size)"
                " VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (job_id, name) DO UPDATE SET content_type = EXCLUDED.content_type,"
                " bytes = EXCLUDED.bytes, size = EXCLUDED.size, created_at = now()",
                job_id,
                name,
                content_type,
                data,
                len(data),
                timeout=self._timeout,
            )

    async def list_artifacts(self, job_id: UUID) -> list[ArtifactInfo]:
        with mapped_errors():
            rows = await self._pool.fetch(
                "SELECT name, content_type, size, created_at FROM job_artifacts"
                " WHERE job_id = $1 ORDER BY name",
                job_id,
                timeout=self._timeout,
            )
        return [ArtifactInfo.model_validate(dict(row)) for row in rows]

    async def get_artifact(self, job_id: UUID, name: str) -> Artifact | None:
        with mapped_errors():
            row = await self._pool.fetchrow(
                "SELECT name, content_type, size, created_at, bytes FROM job_artifacts"
                " WHERE job_id = $1 AND name = $2",
                job_id,
                name,
                timeout=self._timeout,
            )
        if row is None:
            return None
        values = dict(row)
        data = bytes(values.pop("bytes"))
        return Artifact(ArtifactInfo.model_validate(values), data)

    # -- windows written by jobs ---------------------------------------------------------
    async def stored_revisions(
        self, windows: Sequence[WindowAggregate]
    ) -> dict[tuple[str, str, datetime], int]:
        """The stored revision of each window's key, where a row exists."""
        return {key: row[0] for key, row in (await self.stored_rows(windows)).items()}

    async def stored_rows(
        self, windows: Sequence[WindowAggregate]
    ) -> dict[tuple[str, str, datetime], tuple[int, float | None, bool | None]]:
        """(revision, anomaly_score, is_anomaly) stored for each window's key, where a row
        exists."""
        if not windows:
            return {}
        with mapped_errors():
            rows = await self._pool.fetch(
                "SELECT m.device_id, m.period, m.window_start, m.revision, m.anomaly_score,"
                " m.is_anomaly FROM metrics m"
                " JOIN unnest($1::text[], $2::text[], $3::timestamptz[]) AS k(d, p, s)"
                " ON m.device_id = k.d AND m.period = k.p AND m.window_start = k.s",
                [w.device_id for w in windows],
                [w.period for w in windows],
                [w.window_start for w in windows],
                timeout=self._timeout,
            )
        return {
            (r["device_id"], r["period"], r["window_start"]): (
                r["revision"],
                r["anomaly_score"],
                r["is_anomaly"],
            )
            for r in rows
        }

    # -- retention -----------------------------------------------------------------------
    async def delete_metrics_before(self, period: str, days: float) -> int:
        """Delete windows of ``period`` that ended more than ``days`` days ago."""
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}")
        with mapped_errors():
            status = await self._pool.execute(
                "DELETE FROM metrics WHERE period = $1"
                " AND window_end < now() - make_interval(secs => $2)",
                period,
                float(days) * 86400.0,
                timeout=self._timeout,
            )
        return int(str(status).rsplit(" ", 1)[-1])

    async def delete_finished_jobs_before(self, days: float) -> tuple[int, int]:
        """Delete finished jobs (and their artifacts) that finished more than ``days`` days
        ago; returns (jobs, artifacts) deleted."""
        with mapped_errors():
            async with self._pool.acquire() as connection, connection.transaction():
                old = await connection.fetch(
                    "SELECT id FROM jobs WHERE status = ANY($1::text[])"
                    " AND finished_at < now() - make_interval(secs => $2) FOR UPDATE",
                    _FINISHED,
                    float(days) * 86400.0,
                    timeout=self._timeout,
                )
                ids = [row["id"] for row in old]
                if not ids:
                    return 0, 0
                artifacts = await connection.execute(
                    "DELETE FROM job_artifacts WHERE job_id = ANY($1::uuid[])",
                    ids,
                    timeout=self._timeout,
                )
                jobs = await connection.execute(
                    "DELETE FROM jobs WHERE id = ANY($1::uuid[])", ids, timeout=self._timeout
                )
        return int(str(jobs).rsplit(" ", 1)[-1]), int(str(artifacts).rsplit(" ", 1)[-1])
