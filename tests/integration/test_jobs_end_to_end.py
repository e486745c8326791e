"""Jobs end to end: the API records and publishes them, the real worker process runs them
through the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app
from service.settings import Settings
from streams.timeparse import format_us
from tests.integration.dataset import SPAN_S, START_S, build
from tests.integration.test_worker_end_to_end import (
    expected,
    produce,
    stored_windows,
    wait_for,
    worker_env,  # noqa: F401 - the fixture
)
from tests.integration.worker import WorkerProcess

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

JOB_ENV = {
    "JOB_HEARTBEAT_INTERVAL": "0.5",
    "JOB_HEARTBEAT_TIMEOUT": "3",
    "JOB_RECONCILE_INTERVAL": "0.5",
    "JOB_PENDING_TIMEOUT": "2",
}


@pytest.fixture
def env(worker_env: dict[str, str]) -> dict[str, str]:  # noqa: F811
    return {**worker_env, **JOB_ENV}


@pytest.fixture
def job_worker(env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(env, tmp_path / "worker.log")
    yield process
    process.stop()


@pytest.fixture
def api(env: dict[str, str], tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        auth_disabled=True,
        database_url=SecretStr(env["DATABASE_URL"]),
        kafka_broker_url=env["KAFKA_BROKER_URL"],
        jobs_topic=env["JOBS_TOPIC"],
        data_dir=tmp_path,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def wait_job(api: TestClient, job_id: str, statuses: set[str], within: float = 90.0) -> Any:
    deadline = time.monotonic() + within
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.get('status')} after {within} s: {job}")


def window_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("revision", "updated_at")}


async def test_aggregate_and_device_batch_jobs_through_the_worker(
    kafka_bootstrap: str, env: dict[str, str], api: TestClient, pg_database: str, tmp_path: Path
) -> None:
    data = build(seed=17, devices=5, now_s=time.time())
    want = expected(data)
    # Jobs reach this worker only through energy.jobs: no pending-job reconciliation.
    job_worker = WorkerProcess({**env, "JOB_PENDING_TIMEOUT": "3600"}, tmp_path / "jobs.log")
    try:
        await _aggregate_and_device_batch(
            kafka_bootstrap, env, job_worker, api, pg_database, data, want
        )
    finally:
        job_worker.stop()


async def _aggregate_and_device_batch(
    kafka_bootstrap: str,
    env: dict[str, str],
    job_worker: WorkerProcess,
    api: TestClient,
    pg_database: str,
    data: Any,
    want: Any,
) -> None:
    job_worker.start()
    job_worker.wait_ready()
    await produce(kafka_bootstrap, env["READINGS_TOPIC"], data.messages)
    problems = await wait_for(pg_database, want, within=float(os.environ.get("E2E_WAIT", "90")))
    assert not problems, "\n".join(problems[:20]) + "\n" + job_worker.tail()
    await asyncio.sleep(3)  # idle flush done; the stream's windows are settled
    streamed = await stored_windows(pg_database)

    response = api.post(
        "/api/v1/aggregate",
        json={
            "start": format_us((START_S - 86400) * 10**6),
            "end": format_us((START_S + SPAN_S + 86400) * 10**6),
            "periods": ["hour", "day"],
        },
    )
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json()["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", (job, job_worker.tail())
    assert job["progress"] == 100 and job["duration_s"] is not None
    assert job["worker_id"] and job["started_at"] and job["finished_at"]
    result = job["result"]
    assert result["messages"] == len(data.messages)

    recomputed = await stored_windows(pg_database)
    assert not await wait_for(pg_database, want, within=1)  # still the oracle
    assert set(recomputed) == set(streamed)
    # The job's values are the stream's, field for field; final windows got a higher revision.
    assert [k for k in streamed if window_values(recomputed[k]) != window_values(streamed[k])] == []
    raised = [k for k in streamed if recomputed[k]["revision"] == streamed[k]["revision"] + 1]
    kept = [k for k in streamed if recomputed[k]["revision"] == streamed[k]["revision"]]
    assert len(raised) == result["windows_final"] > 0
    assert len(raised) + len(kept) == len(streamed)

    # device_batch: readings from the request, some invalid, reported by reason.
    readings: list[Any] = [
        {"timestamp": f"2026-11-02T10:{m:02d}:00Z", "power_w": 600.0} for m in range(0, 60, 10)
    ]
    readings += [
        {"timestamp": "2026-11-02T10:15:00", "power_w": 1},
        {"timestamp": "2026-11-02T10:25:00Z", "power_w": -3},
        {"timestamp": "2026-11-02T09:00:00Z", "power_w": 1},
        {"device_id": "someone-else", "timestamp": "2026-11-02T10:05:00Z", "power_w": 1},
    ]
    response = api.post(
        "/api/v1/jobs",
        json={"kind": "device_batch", "parameters": {"device_id": "batch-1", "readings": readings}},
    )
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json()["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    assert job["result"]["readings_accepted"] == 6
    assert job["result"]["rejected_by_reason"] == {
        "invalid_schema": 2,
        "late": 1,
        "out_of_range": 1,
    }
    metrics = api.get("/api/v1/metrics", params={"device_id": "batch-1", "period": "hour"}).json()
    assert [(m["window_start"], m["reading_count"]) for m in metrics["items"]] == [
        ("2026-11-02T10:00:00Z", 6)
    ]
    assert metrics["items"][0]["energy_kwh"] == pytest.approx(0.5)

    stats = api.get("/api/v1/stats").json()
    assert stats["jobs"]["by_status"]["succeeded"] == 2
    assert stats["jobs"]["by_kind"] == {"aggregate": 1, "device_batch": 1}


async def test_cancelled_failed_and_orphaned_jobs(
    env: dict[str, str], job_worker: WorkerProcess, api: TestClient, pg_database: str
) -> None:
    # Before any worker runs: a pending job is cancelled, and a job is left "running" by a
    # worker that died (its heartbeat stopped long ago).
    pending = api.post("/api/v1/jobs", json={"kind": "cleanup"}).json()
    cancelled = api.post(f"/api/v1/jobs/{pending['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    orphan = uuid.uuid4()
    connection = await asyncpg.connect(pg_database)
    try:
        await connection.execute(
            "INSERT INTO jobs (id, kind, status, worker_id, started_at, heartbeat_at)"
            " VALUES ($1, 'cleanup', 'running', 'host-9-dead', now() - interval '1 minute',"
            " now() - interval '1 minute')",
            orphan,
        )
    finally:
        await connection.close()
    # A job whose energy.jobs message is lost (published while the broker was unknown).
    lost_api = create_app(
        Settings(
            auth_disabled=True,
            database_url=SecretStr(env["DATABASE_URL"]),
            kafka_broker_url="127.0.0.1:1",
            jobs_topic=env["JOBS_TOPIC"],
        )
    )
    with TestClient(lost_api) as client:
        lost = client.post("/api/v1/jobs", json={"kind": "cleanup"}).json()

    job_worker.start()
    job_worker.wait_ready()
    failed = wait_job(api, str(orphan), {"failed"}, within=30)
    assert failed["error"].startswith("worker host-9-dead stopped responding")
    done = wait_job(api, lost["id"], {"succeeded", "failed"}, within=30)
    assert done["status"] == "succeeded", done

    report = api.post(
        "/api/v1/jobs",
        json={
            "kind": "report",
            "parameters": {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z"},
        },
    ).json()
    finished_report = wait_job(api, report["id"], {"succeeded", "failed"})
    assert finished_report["status"] == "succeeded", finished_report
    listed = api.get(f"/api/v1/jobs/{report['id']}/artifacts").json()
    assert {a["name"] for a in listed["items"]} == {"report.csv", "report.json", "report.html"}
    page = api.get(f"/api/v1/jobs/{report['id']}/artifacts/report.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # no windows in that month here: a "no data" page (charts are tested in tests/reports)
    assert b"<!DOCTYPE html>" in page.content and b"No data" in page.content
    assert "attachment" in page.headers["content-disposition"]

    assert api.get(f"/api/v1/jobs/{pending['id']}").json()["status"] == "cancelled"
    conflict = api.post(f"/api/v1/jobs/{pending['id']}/cancel")
    assert conflict.status_code == 409


async def test_a_job_running_on_a_killed_worker_is_failed_by_the_next_one(
    kafka_bootstrap: str, env: dict[str, str], api: TestClient, tmp_path: Path
) -> None:
    # Enough readings that an aggregate job takes a few seconds.
    start_s = 1_793_000_000
    messages = []
    for m in range(1500):
        batch = [
            {"device_id": f"k-{d}", "timestamp": start_s + m * 60 + d, "power_w": 100.0 + d}
            for d in range(100)
        ]
        messages.append((None, orjson.dumps(batch)))
    first = WorkerProcess(env, tmp_path / "first.log")
    second = WorkerProcess(env, tmp_path / "second.log")
    try:
        first.start()
        first.wait_ready()
        await produce(kafka_bootstrap, env["READINGS_TOPIC"], messages)
        body = {"start": format_us(start_s * 10**6), "end": format_us((start_s + 90_000) * 10**6)}
        job_id = api.post("/api/v1/aggregate", json=body).json()["id"]
        job = wait_job(api, job_id, {"running", "succeeded", "failed"}, within=60)
        assert job["status"] == "running", job
        first.kill()
        dead = job["worker_id"]

        second.start()
        second.wait_ready()
        failed = wait_job(api, job_id, {"failed", "succeeded"}, within=30)
        assert failed["status"] == "failed"
        assert failed["error"].startswith(f"worker {dead} stopped responding"), failed
        assert failed["finished_at"] is not None

        # It can be run again: by its id (a new job, same parameters) or by requesting it
        # again; both succeed on the new worker.
        retried = api.post(f"/api/v1/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        again = api.post("/api/v1/aggregate", json=body)
        assert again.status_code == 202, again.text
        for new_id in (retried.json()["id"], again.json()["id"]):
            done = wait_job(api, new_id, {"failed", "succeeded"}, within=90)
            assert done["status"] == "succeeded", (done, second.tail())
            assert done["result"]["messages"] == len(messages)
        assert api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "failed"
    finally:
        first.stop()
        second.stop()


def test_timers_record_their_runs_as_jobs(
    env: dict[str, str], api: TestClient, tmp_path: Path
) -> None:
    """Every-minute schedules: the leader creates the roll-up, anomaly review and cleanup
    jobs (one per slot) and runs them; they show in GET /api/v1/jobs."""
    every_minute = {
        "SCHEDULE_ROLLUP": "* * * * *",
        "SCHEDULE_ANOMALY_REVIEW": "* * * * *",
        "SCHEDULE_CLEANUP": "* * * * *",
    }
    worker = WorkerProcess({**env, **every_minute}, tmp_path / "timers.log")
    try:
        worker.start()
        worker.wait_ready()
        deadline = time.monotonic() + 120
        done: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline and len(done) < 3:
            for kind in ("rollup", "anomaly_review", "cleanup"):
                page = api.get("/api/v1/jobs", params={"kind": kind}).json()
                finished = [j for j in page["items"] if j["status"] in ("succeeded", "failed")]
                if finished:
                    done[kind] = finished[0]
            time.sleep(1.0)
        assert set(done) == {"rollup", "anomaly_review", "cleanup"}, worker.tail()
        assert all(job["status"] == "succeeded" for job in done.values()), done
        assert "devices_reporting" in done["rollup"]["result"]
        assert "windows_flagged" in done["anomaly_review"]["result"]
        assert "metrics_deleted" in done["cleanup"]["result"]
        # one job per kind and slot, however often the timer fired within the slot
        cleanups = api.get("/api/v1/jobs", params={"kind": "cleanup"}).json()["items"]
        assert len(cleanups) == 1
    finally:
        worker.stop()
