"""The jobs repository against a real PostgreSQL: life cycle, concurrency of claims,
cancellation, stale detection, keyset pages, artifacts, counts and retention."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from storage.base import InvalidCursor
from storage.jobs import (
    JobAlreadyFinished,
    JobNotFound,
    JobsQuery,
    PostgresJobStore,
    decode_job_cursor,
)
from storage.postgres_sink import PostgresSink
from tests.api.fakes import window

pytestmark = pytest.mark.integration


@pytest.fixture
def store(pg_pool: Any) -> PostgresJobStore:
    return PostgresJobStore(pg_pool)


async def test_create_get_claim_progress_finish(store: PostgresJobStore) -> None:
    job = await store.create("aggregate", {"start": "2024-01-01T00:00:00Z"})
    assert job.status == "pending" and job.progress == 0 and job.result is None
    assert job.parameters == {"start": "2024-01-01T00:00:00Z"}
    assert await store.get(job.id) == job
    assert await store.get(uuid4()) is None

    claimed = await store.claim(job.id, "w-1")
    assert claimed is not None and claimed.status == "running" and claimed.worker_id == "w-1"
    assert claimed.started_at is not None and claimed.heartbeat_at is not None
    assert await store.claim(job.id, "w-2") is None  # already running

    assert await store.heartbeat(job.id, "w-1", 40) is True
    assert await store.heartbeat(job.id, "w-2", 50) is False  # not this worker's job
    assert (await store.get(job.id)).progress == 40  # type: ignore[union-attr]

    done = await store.finish(job.id, "w-1", "succeeded", result={"windows": 3})
    assert done is not None and done.status == "succeeded" and done.progress == 100
    assert done.result == {"windows": 3} and done.duration_s is not None
    assert done.finished_at is not None and done.duration_s >= 0
    # A finished job never changes again.
    assert await store.finish(job.id, "w-1", "failed", error="late") is None
    assert await store.heartbeat(job.id, "w-1", 10) is False


async def test_only_one_of_many_concurrent_claims_wins(store: PostgresJobStore) -> None:
    job = await store.create("cleanup", {})
    claims = await asyncio.gather(*(store.claim(job.id, f"w-{i}") for i in range(8)))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1


async def test_cancel_pending_running_and_finished(store: PostgresJobStore) -> None:
    pending = await store.create("cleanup", {})
    cancelled = await store.cancel(pending.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert await store.claim(pending.id, "w-1") is None

    running = await store.create("cleanup", {})
    await store.claim(running.id, "w-1")
    requested = await store.cancel(running.id)
    assert requested.status == "running" and requested.cancel_requested_at is not None
    # The runner learns it at its next progress call, then records the cancellation.
    assert await store.heartbeat(running.id, "w-1", 20) is False
    ended = await store.finish(running.id, "w-1", "cancelled", error="cancelled on request")
    assert ended is not None and ended.status == "cancelled"

    with pytest.raises(JobAlreadyFinished) as caught:
        await store.cancel(running.id)
    assert caught.value.job.status == "cancelled"
    with pytest.raises(JobNotFound):
        await store.cancel(uuid4())


async def test_stale_running_jobs_are_failed_naming_the_worker(
    store: PostgresJobStore, pg_pool: Any
) -> None:
    stale = await store.create("aggregate", {})
    fresh = await store.create("aggregate", {})
    await store.claim(stale.id, "host-123")
    await store.claim(fresh.id, "host-456")
    await pg_pool.execute(
        "UPDATE jobs SET heartbeat_at = now() - interval '10 minutes' WHERE id = $1", stale.id
    )
    failed = await store.fail_stale(60)
    assert [(j.job_id, j.worker_id) for j in failed] == [(stale.id, "host-123")]
    job = await store.get(stale.id)
    assert job is not None and job.status == "failed"
    assert job.error is not None and job.error.startswith("worker host-123 stopped responding")
    assert (await store.get(fresh.id)).status == "running"  # type: ignore[union-attr]
    # The dead worker's late writes change nothing.
    assert await store.finish(stale.id, "host-123", "succeeded", result={}) is None


async def test_oldest_pending_job_is_claimed_after_the_timeout(
    store: PostgresJobStore, pg_pool: Any
) -> None:
    old = await store.create("cleanup", {})
    new = await store.create("cleanup", {})
    await pg_pool.execute(
        "UPDATE jobs SET created_at = now() - interval '5 minutes' WHERE id = $1", old.id
    )
    claimed = await store.claim_oldest_pending("w-1", older_than_s=60)
    assert claimed is not None and claimed.id == old.id
    assert await store.claim_oldest_pending("w-1", older_than_s=60) is None
    assert (await store.get(new.id)).status == "pending"  # type: ignore[union-attr]


async def test_list_filters_and_keyset_pages_newest_first(
    store: PostgresJobStore, pg_pool: Any
) -> None:
    created = []
    for i in range(7):
        job = await store.create("aggregate" if i % 2 else "cleanup", {"i": i})
        created.append(job)
    # Two jobs with the same created_at: the id breaks the tie, nothing is skipped.
    await pg_pool.execute(
        "UPDATE jobs SET created_at = $1 WHERE id = ANY($2::uuid[])",
        datetime(2025, 1, 1, tzinfo=UTC),
        [created[2].id, created[3].id],
    )
    seen = []
    cursor = None
    while True:
        page = await store.list_jobs(JobsQuery(limit=3, cursor=cursor))
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(j.id for j in seen) == sorted(j.id for j in created)
    keys = [(j.created_at, j.id) for j in seen]
    assert keys == sorted(keys, reverse=True)

    cleanup = await store.list_jobs(JobsQuery(kind="cleanup"))
    assert {j.parameters["i"] for j in cleanup.items} == {0, 2, 4, 6}
    await store.claim(created[1].id, "w")
    running = await store.list_jobs(JobsQuery(status="running"))
    assert [j.id for j in running.items] == [created[1].id]
    with pytest.raises(InvalidCursor):
        await store.list_jobs(JobsQuery(cursor="bm90LWEtY3Vyc29y"))
    with pytest.raises(InvalidCursor):
        decode_job_cursor("%%%")
    with pytest.raises(InvalidCursor):  # deeper than the recursion limit: was a 500
        decode_job_cursor(base64.urlsafe_b64encode(b"[" * 1500).decode())


async def test_artifacts_saved_listed_downloaded_and_replaced(store: PostgresJobStore) -> None:
    job = await store.create("report", {})
    await store.save_artifact(job.id, "report.csv", "text/csv", b"a,b\n1,2\n")
    await store.save_artifact(job.id, "report.json", "application/json", b"{}")
    await store.save_artifact(job.id, "report.json", "application/json", b'{"x":1}')
    infos = await store.list_artifacts(job.id)
    assert [(a.name, a.content_type, a.size) for a in infos] == [
        ("report.csv", "text/csv", 8),
        ("report.json", "application/json", 7),
    ]
    artifact = await store.get_artifact(job.id, "report.json")
    assert artifact is not None and artifact.data == b'{"x":1}'
    assert await store.get_artifact(job.id, "nope.csv") is None
    assert await store.list_artifacts(uuid4()) == []


async def test_counts_by_status_and_kind(store: PostgresJobStore) -> None:
    a = await store.create("aggregate", {})
    await store.create("aggregate", {})
    await store.create("cleanup", {})
    await store.claim(a.id, "w")
    counts = await store.counts()
    assert counts.total == 3
    assert counts.by_status == {
        "pending": 2,
        "running": 1,
        "succeeded": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert counts.by_kind == {"aggregate": 2, "cleanup": 1}
    assert counts.by_kind_and_status == {
        "aggregate": {"pending": 1, "running": 1},
        "cleanup": {"pending": 1},
    }


async def test_retention_deletes_old_windows_and_old_finished_jobs(
    store: PostgresJobStore, pg_pool: Any
) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    old = now - timedelta(days=500)
    await PostgresSink(pg_pool).write(
        [
            window("d", "hour", old),
            window("d", "hour", now - timedelta(days=2)),
            window("d", "day", old, hours=24),
        ]
    )
    assert await store.delete_metrics_before("hour", 400) == 1
    assert await store.delete_metrics_before("day", 1000) == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM metrics") == 2

    finished = await store.create("report", {})
    await store.claim(finished.id, "w")
    await store.save_artifact(finished.id, "r.csv", "text/csv", b"x")
    await store.finish(finished.id, "w", "succeeded", result={})
    running = await store.create("report", {})
    await store.claim(running.id, "w")
    await pg_pool.execute(
        "UPDATE jobs SET created_at = now() - interval '90 days',"
        " finished_at = CASE WHEN finished_at IS NULL THEN NULL"
        " ELSE now() - interval '60 days' END"
    )
    assert await store.delete_finished_jobs_before(30) == (1, 1)
    assert await store.get(finished.id) is None
    assert await store.get(running.id) is not None
    assert await store.delete_finished_jobs_before(30) == (0, 0)


async def test_stored_revisions(store: PostgresJobStore, pg_pool: Any) -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    await PostgresSink(pg_pool).write([window("d", "hour", start, revision=4)])
    wanted = [window("d", "hour", start), window("d", "hour", start + timedelta(hours=1))]
    assert await store.stored_revisions(wanted) == {("d", "hour", start): 4}
    assert await store.stored_revisions([]) == {}
