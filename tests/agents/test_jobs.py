"""Job runners and the job loop without Faust, against a real PostgreSQL and broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agents.jobs.context import JobContext
from agents.jobs.registry import RUNNERS
from agents.jobs.worker import JobWorker, parse_job_message
from models.jobs import JOB_PARAMETERS, Job
from models.tariff import Tariff
from service.settings import Settings
from storage.jobs import PostgresJobStore
from storage.postgres_sink import PostgresSink
from streams.timeparse import datetime_to_us, format_us
from tests.integration.dataset import SPAN_S, START_S, build
from tests.integration.test_worker_end_to_end import produce
from tests.oracle import compute

pytestmark = pytest.mark.integration

ZONE = "Europe/Berlin"
TARIFF = Tariff.model_validate({"currency": "EUR", "price_per_kwh": 0.25})


def settings_for(bootstrap: str, readings_topic: str, **overrides: Any) -> Settings:
    return Settings(
        kafka_broker_url=bootstrap,
        readings_topic=readings_topic,
        timezone=ZONE,
        tariff=TARIFF,
        job_heartbeat_interval=0.2,
        **overrides,
    )


@pytest.fixture
async def readings_topic(kafka_bootstrap: str) -> str:
    """A one-partition readings topic, as the worker creates it (TOPIC_PARTITIONS=1)."""
    name = f"test.jobs-readings.{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        await admin.close()
    return name


@pytest.fixture
async def jobs(pg_pool: Any) -> PostgresJobStore:
    return PostgresJobStore(pg_pool)


def make_worker(settings: Settings, pool: Any, **kwargs: Any) -> JobWorker:
    return JobWorker(
        settings, worker_id="test-worker", sink=PostgresSink(pool), pool=pool, **kwargs
    )


async def run(worker: JobWorker, store: PostgresJobStore, kind: str, params: dict[str, Any]) -> Job:
    model = JOB_PARAMETERS[kind]
    job = await store.create(kind, model.model_validate(params).model_dump(mode="json"))
    claimed = await store.claim(job.id, worker.worker_id)
    assert claimed is not None
    finished = await worker.run_job(claimed)
    assert finished is not None
    return finished


async def stored(pool: Any) -> dict[tuple[str, str, int], dict[str, Any]]:
    rows = await pool.fetch("SELECT * FROM metrics")
    return {(r["device_id"], r["period"], datetime_to_us(r["window_start"])): dict(r) for r in rows}


def same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    import math

    if got["reading_count"] != want["reading_count"]:
        return False
    for name in ("energy_kwh", "coverage"):
        if not math.isclose(got[name], want[name], rel_tol=1e-6, abs_tol=1e-9):
            return False
    return math.isclose(float(got["cost"]), want["cost"], rel_tol=1e-6, abs_tol=1e-9)


async def test_aggregate_recomputes_the_oracle_and_raises_revisions(
    kafka_bootstrap: str, readings_topic: str, pg_pool: Any, jobs: PostgresJobStore
) -> None:
    data = build(seed=5, devices=4, now_s=time.time())
    await produce(kafka_bootstrap, readings_topic, data.messages)
    oracle = compute(data.arrivals, timezone=ZONE, tariff=TARIFF)
    want = {k: v for k, v in oracle.windows.items() if k[1] in ("hour", "day")}
    worker = make_worker(settings_for(kafka_bootstrap, readings_topic), pg_pool)
    whole = {
        "start": format_us((START_S - 86400) * 10**6),
        "end": format_us((START_S + SPAN_S + 86400) * 10**6),
    }

    job = await run(worker, jobs, "aggregate", whole)
    assert job.status == "succeeded", job.error
    assert job.progress == 100 and job.duration_s is not None
    result = job.result or {}
    assert result["messages"] == len(data.messages)
    assert result["rejected_by_reason"]["late"] == oracle.late
    for reason, count in data.invalid.items():
        assert result["rejected_by_reason"][reason] == count
    got = await stored(pg_pool)
    hour_day = {k: v for k, v in got.items() if k[1] in ("hour", "day")}
    assert set(hour_day) == set(want)
    assert [k for k in want if not same(hour_day[k], want[k])] == []
    assert {r["revision"] for r in got.values()} == {0}
    assert result["windows_written"] == len(got)

    # Again: final windows get the stored revision + 1, open ones (within grace of the
    # device's newest reading) keep theirs; the values stay the same.
    again = await run(worker, jobs, "aggregate", whole)
    assert again.status == "succeeded", again.error
    revised = await stored(pg_pool)
    assert set(revised) == set(got)
    finals = {k for k, v in revised.items() if v["revision"] == 1}
    assert len(finals) == (again.result or {})["windows_final"] > 0
    assert {v["revision"] for k, v in revised.items() if k not in finals} == {0}
    assert [k for k in want if not same(revised[k], want[k])] == []


async def test_aggregate_of_a_range_and_devices_writes_only_their_windows(
    kafka_bootstrap: str, readings_topic: str, pg_pool: Any, jobs: PostgresJobStore
) -> None:
    data = build(seed=6, devices=3, now_s=time.time())
    await produce(kafka_bootstrap, readings_topic, data.messages)
    oracle = compute(data.arrivals, timezone=ZONE, tariff=TARIFF)
    worker = make_worker(settings_for(kafka_bootstrap, readings_topic), pg_pool)
    start_us = (START_S + 20 * 3600) * 10**6 + 30 * 60 * 10**6  # mid-hour
    end_us = start_us + 5 * 3600 * 10**6
    job = await run(
        worker,
        jobs,
        "aggregate",
        {
            "start": format_us(start_us),
            "end": format_us(end_us),
            "device_ids": ["meter-01"],
            "periods": ["hour", "day"],
        },
    )
    assert job.status == "succeeded", job.error
    got = await stored(pg_pool)
    want = {
        k: v
        for k, v in oracle.windows.items()
        if k[0] == "meter-01"
        and k[1] in ("hour", "day")
        and k[2] < end_us
        and v["window_end"] > start_us
    }
    assert set(got) == set(want)
    assert [k for k in want if not same(got[k], want[k])] == []
    assert len([k for k in got if k[1] == "hour"]) == 6  # 5 h from mid-hour touch 6 hours


async def test_device_batch_reports_rejections_by_reason(
    pg_pool: Any, jobs: PostgresJobStore
) -> None:
    worker = make_worker(Settings(), pg_pool)
    t0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    readings: list[Any] = [
        {"timestamp": (t0 + timedelta(minutes=m)).isoformat(), "power_w": 1200.0}
        for m in range(0, 61, 15)
    ]
    readings += [
        {"timestamp": "2026-11-02T10:20:00", "power_w": 5},  # no offset
        {"timestamp": (t0 + timedelta(minutes=5)).isoformat(), "power_w": -1},
        {"timestamp": (t0 - timedelta(hours=2)).isoformat(), "power_w": 5},  # late
        {"timestamp": (t0 + timedelta(minutes=60)).isoformat(), "power_w": 9},  # duplicate
        {"device_id": "other", "timestamp": t0.isoformat(), "power_w": 1},
        "not an object",
        {"timestamp": "2099-01-01T00:00:00Z", "power_w": 1},
    ]
    job = await run(worker, jobs, "device_batch", {"device_id": "m-7", "readings": readings})
    assert job.status == "succeeded", job.error
    result = job.result or {}
    assert result["readings_accepted"] == 5
    assert result["duplicates"] == 1
    assert result["rejected_by_reason"] == {
        "future_timestamp": 1,
        "invalid_schema": 3,
        "late": 1,
        "out_of_range": 1,
    }
    assert [(r["index"], r["reason"]) for r in result["rejected"]] == [
        (5, "invalid_schema"),
        (6, "out_of_range"),
        (7, "late"),
        (9, "invalid_schema"),
        (10, "invalid_schema"),
        (11, "future_timestamp"),
    ]
    hour = next(
        w
        for w in result["windows"]
        if w["period"] == "hour" and w["window_start"].endswith("10:00:00Z")
    )
    assert hour["reading_count"] == 4 and hour["energy_kwh"] == pytest.approx(1.2)
    row = await pg_pool.fetchrow(
        "SELECT energy_kwh, revision FROM metrics WHERE device_id = 'm-7' AND period = 'hour'"
        " AND window_start = $1",
        t0,
    )
    assert row["energy_kwh"] == pytest.approx(1.2) and row["revision"] == 0
    again = await run(worker, jobs, "device_batch", {"device_id": "m-7", "readings": readings})
    assert again.status == "succeeded"
    assert (
        await pg_pool.fetchval(
            "SELECT revision FROM metrics WHERE device_id = 'm-7' AND period = 'hour'"
            " AND window_start = $1",
            t0,
        )
        == 1
    )


async def test_cleanup_applies_retention(pg_pool: Any, jobs: PostgresJobStore) -> None:
    from tests.api.fakes import window

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await PostgresSink(pg_pool).write(
        [
            window("d", "hour", now - timedelta(days=20)),
            window("d", "hour", now - timedelta(days=2)),
        ]
    )
    worker = make_worker(Settings(retention_hour_days=10, job_retention_days=1), pg_pool)
    job = await run(worker, jobs, "cleanup", {})
    assert job.status == "succeeded", job.error
    assert (job.result or {})["metrics_deleted"] == {"hour": 1, "day": 0, "week": 0, "month": 0}
    assert await pg_pool.fetchval("SELECT count(*) FROM metrics") == 1


async def test_a_failing_runner_records_its_error(pg_pool: Any, jobs: PostgresJobStore) -> None:
    async def explode(ctx: JobContext) -> dict[str, Any]:
        await ctx.progress(30)
        raise RuntimeError("the meter registry is on fire")

    worker = make_worker(Settings(), pg_pool, runners={**RUNNERS, "cleanup": explode})
    job = await run(worker, jobs, "cleanup", {})
    assert job.status == "failed"
    assert job.error == "RuntimeError: the meter registry is on fire"
    assert job.progress == 30 and job.finished_at is not None and job.duration_s is not None


async def test_report_job_stores_its_files(pg_pool: Any, jobs: PostgresJobStore) -> None:
    from storage.postgres_sink import PostgresSink
    from tests.storage.helpers import T0, window

    await PostgresSink(pg_pool).write(
        [window("meter-r", "hour", i, energy_kwh=0.5) for i in range(48)]
        + [window("meter-r", "day", i, energy_kwh=12.0) for i in range(2)]
    )
    worker = make_worker(Settings(), pg_pool)
    job = await run(
        worker,
        jobs,
        "report",
        {"start": T0.isoformat(), "end": (T0 + timedelta(days=2)).isoformat()},
    )
    assert job.status == "succeeded", job.error
    assert job.result is not None and job.result["energy_kwh"] == pytest.approx(24.0)
    names = {a.name for a in await jobs.list_artifacts(job.id)}
    assert names == {"report.csv", "report.json", "report.html"}
    html = await jobs.get_artifact(job.id, "report.html")
    assert html is not None and b"<svg" in html.data


async def test_runner_artifacts_are_stored(pg_pool: Any, jobs: PostgresJobStore) -> None:
    async def write_files(ctx: JobContext) -> dict[str, Any]:
        await ctx.save_artifact("out.csv", "text/csv", b"a\n1\n")
        with pytest.raises(ValueError, match="artifact name"):
            await ctx.save_artifact("../escape", "text/plain", b"")
        return {"files": 1}

    worker = make_worker(Settings(), pg_pool, runners={**RUNNERS, "cleanup": write_files})
    job = await run(worker, jobs, "cleanup", {})
    assert job.status == "succeeded" and job.result == {"files": 1}
    artifact = await jobs.get_artifact(job.id, "out.csv")
    assert artifact is not None and artifact.data == b"a\n1\n"


async def test_cancelling_a_running_job_stops_it_at_its_next_progress(
    pg_pool: Any, jobs: PostgresJobStore
) -> None:
    started = asyncio.Event()
    steps: list[int] = []

    async def slow(ctx: JobContext) -> dict[str, Any]:
        for step in range(1000):
            steps.append(step)
            await ctx.progress(step / 10)
            started.set()
            await asyncio.sleep(0.01)
        return {}

    worker = make_worker(Settings(), pg_pool, runners={**RUNNERS, "cleanup": slow})
    job = await jobs.create("cleanup", {})
    claimed = await jobs.claim(job.id, worker.worker_id)
    assert claimed is not None
    running = asyncio.create_task(worker.run_job(claimed))
    await started.wait()
    assert (await jobs.cancel(job.id)).status == "running"
    finished = await asyncio.wait_for(running, 10)
    assert finished is not None and finished.status == "cancelled"
    assert len(steps) < 1000


async def test_job_loop_runs_published_and_lost_jobs_once(
    pg_pool: Any, jobs: PostgresJobStore
) -> None:
    calls: list[UUID] = []

    async def count(ctx: JobContext) -> dict[str, Any]:
        calls.append(ctx.job_id)
        return {"n": len(calls)}

    settings = Settings(job_reconcile_interval=0.2, job_pending_timeout=0.5)
    worker = make_worker(settings, pg_pool, runners={**RUNNERS, "cleanup": count})
    other = make_worker(settings, pg_pool, runners={**RUNNERS, "cleanup": count})
    other.worker_id = "other-worker"
    published = await jobs.create("cleanup", {})
    lost = await jobs.create("cleanup", {})  # its energy.jobs message never arrives
    worker.start()
    other.start()
    try:
        message = orjson.dumps({"job_id": str(published.id), "kind": "cleanup"})
        worker.submit(message)
        other.submit(message)  # a duplicate delivery: the claim lets one run it
        worker.submit(b"garbage")
        async with asyncio.timeout(10):
            while True:
                states = {(await jobs.get(j.id)).status for j in (published, lost)}  # type: ignore[union-attr]
                if states == {"succeeded"}:
                    break
                await asyncio.sleep(0.1)
    finally:
        await worker.stop()
        await other.stop()
    assert sorted(calls) == sorted([published.id, lost.id])


async def test_a_job_of_a_dead_worker_is_failed_by_the_next_worker(
    pg_pool: Any, jobs: PostgresJobStore
) -> None:
    job = await jobs.create("aggregate", {})
    await jobs.claim(job.id, "dead-host-42")
    await pg_pool.execute(
        "UPDATE jobs SET heartbeat_at = now() - interval '2 minutes' WHERE id = $1", job.id
    )
    worker = make_worker(Settings(job_heartbeat_timeout=60), pg_pool)
    assert [s.job_id for s in await worker.mark_stale()] == [job.id]
    failed = await jobs.get(job.id)
    assert failed is not None and failed.status == "failed"
    assert (failed.error or "").startswith("worker dead-host-42 stopped responding")


async def test_heartbeats_keep_a_long_job_alive(pg_pool: Any, jobs: PostgresJobStore) -> None:
    async def quiet(ctx: JobContext) -> dict[str, Any]:
        await asyncio.sleep(1.5)  # no progress calls: the heartbeat task keeps it alive
        return {}

    settings = Settings(job_heartbeat_interval=0.2, job_heartbeat_timeout=1.0)
    worker = make_worker(settings, pg_pool, runners={**RUNNERS, "cleanup": quiet})
    job = await jobs.create("cleanup", {})
    claimed = await jobs.claim(job.id, worker.worker_id)
    assert claimed is not None
    running = asyncio.create_task(worker.run_job(claimed))
    for _ in range(6):
        await asyncio.sleep(0.25)
        assert await jobs.fail_stale(1.0) == []
    finished = await running
    assert finished is not None and finished.status == "succeeded"


def test_job_messages() -> None:
    job_id = uuid.uuid4()
    assert parse_job_message(orjson.dumps({"job_id": str(job_id)})) == job_id
    assert parse_job_message(orjson.dumps(str(job_id))) == job_id
    for bad in (b"", b"{}", b'{"job_id": "x"}', b"[1]", None):
        assert parse_job_message(bad) is None


def test_every_kind_has_a_runner_and_parameters() -> None:
    assert set(RUNNERS) == set(JOB_PARAMETERS)


def test_parameters_read_as_attributes_and_by_name() -> None:
    params = JOB_PARAMETERS["report"].model_validate(
        {"start": "2026-10-01T00:00:00+02:00", "end": "2026-11-01T00:00:00Z"}
    )
    assert params["formats"] == params.formats == ["csv", "json", "html"]  # type: ignore[attr-defined]
    assert params.get("device_ids") is None and params.get("nope", 1) == 1
    assert "start" in params and "nope" not in params
    assert params["start"] == datetime(2026, 9, 30, 22, 0, tzinfo=UTC)
    with pytest.raises(KeyError):
        params["nope"]


async def test_anomaly_review_job_summarises_the_day(pg_pool: Any, jobs: PostgresJobStore) -> None:
    from storage.postgres_repository import PostgresRepository
    from tests.storage.helpers import T0, window

    # T0's day (UTC) is reviewed: one flagged hour for "meter-a" at 03:00, history before.
    day_index = 10  # review the 11th day after T0
    windows = []
    for day in range(day_index + 1):
        for hour in range(24):
            index = day * 24 + hour
            flagged = day == day_index and hour == 3
            windows.append(
                window(
                    "meter-a",
                    "hour",
                    index,
                    energy_kwh=5.0 if flagged else 0.5,
                    anomaly_score=0.95 if flagged else 0.2,
                    is_anomaly=flagged,
                )
            )
            windows.append(
                window(
                    "meter-b", "hour", index, energy_kwh=0.4, anomaly_score=0.1, is_anomaly=False
                )
            )
        windows.append(
            window("meter-a", "day", day, energy_kwh=12.0, anomaly_score=0.3, is_anomaly=False)
        )
    await PostgresSink(pg_pool).write(windows)
    assert await PostgresRepository(pg_pool).ping() is not False
    review_date = (T0 + timedelta(days=day_index)).date().isoformat()
    worker = make_worker(Settings(), pg_pool)
    job = await run(worker, jobs, "anomaly_review", {"date": review_date})
    assert job.status == "succeeded", job.error
    result = job.result
    assert result is not None
    assert result["date"] == review_date
    assert result["windows_flagged"] == 1 and result["devices_flagged"] == 1
    assert result["windows_scored"] == 2 * 24 + 1
    device = result["devices"][0]
    assert device["device_id"] == "meter-a" and device["usual_day_kwh"] == pytest.approx(12.0)
    top = result["top_windows"][0]
    assert top["anomaly_score"] == pytest.approx(0.95)
    assert top["usual_kwh"] == pytest.approx(0.5) and top["ratio_to_usual"] == pytest.approx(10.0)


async def test_rollup_job_sums_the_hour_and_names_silent_devices(
    pg_pool: Any, jobs: PostgresJobStore
) -> None:
    from storage.base import DeviceSeen
    from storage.postgres_repository import PostgresRepository
    from tests.storage.helpers import T0, window

    await PostgresSink(pg_pool).write(
        [
            window("meter-a", "hour", 5, energy_kwh=1.5, cost="0.45"),
            window(
                "meter-b",
                "hour",
                5,
                energy_kwh=0.5,
                cost="0.15",
                anomaly_score=0.9,
                is_anomaly=True,
            ),
            window("meter-a", "hour", 6, energy_kwh=9.0),
        ]
    )
    hour = T0 + timedelta(hours=5)
    await PostgresRepository(pg_pool).upsert_devices(
        [
            DeviceSeen("meter-a", T0, hour, {}),
            DeviceSeen("meter-b", T0, hour, {}),
            DeviceSeen("meter-quiet", T0, hour - timedelta(hours=2), {}),
            DeviceSeen("meter-gone", T0 - timedelta(days=3), T0 - timedelta(days=2), {}),
        ]
    )
    worker = make_worker(Settings(), pg_pool)
    job = await run(worker, jobs, "rollup", {"hour": hour.isoformat()})
    assert job.status == "succeeded", job.error
    result = job.result
    assert result is not None
    assert result["devices_reporting"] == 2
    assert result["energy_kwh"] == pytest.approx(2.0)
    assert result["cost"] == {"EUR": "0.600000000"} or result["cost"]["EUR"].startswith("0.6")
    assert result["windows_flagged"] == 1
    assert result["silent_devices"] == ["meter-quiet"] and result["devices_silent"] == 1


def test_rollup_hour_must_be_on_the_hour() -> None:
    from pydantic import ValidationError

    model = JOB_PARAMETERS["rollup"]
    assert model.model_validate({"hour": "2026-11-27T10:30:00+05:30"}).get("hour") is not None
    with pytest.raises(ValidationError, match="start of a UTC hour"):
        model.model_validate({"hour": "2026-11-27T10:30:00Z"})
    with pytest.raises(ValidationError):
        model.model_validate({"hour": "2026-11-27T10:00:00"})  # no offset
