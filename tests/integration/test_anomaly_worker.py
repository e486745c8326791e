"""Anomaly scoring in the real worker: scores stored with the windows, flagged windows on
the anomalies topic, and the model checkpoint carried across a worker restart."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from streams.timeparse import datetime_to_us, parse_rfc3339
from tests.integration.test_worker_end_to_end import produce
from tests.integration.test_worker_end_to_end import worker_env as worker_env  # fixture
from tests.integration.worker import WorkerProcess
from tests.plugins.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEVICES = 12
STEP_S = 900
DAYS = 4


def readings(now_s: float) -> list[tuple[bytes, bytes]]:
    """DAYS days of 15-minute power readings for DEVICES devices, ending well before now,
    in time order; device 3 draws ten times its usual power for two hours on the last day."""
    end = int(now_s // 86_400) * 86_400 - 86_400
    start = end - DAYS * 86_400
    messages = []
    for ts in range(start, end, STEP_S):
        hour = (ts // 3600) % 24
        for device in range(DEVICES):
            level = 300.0 + 200.0 * math.sin(hour / 24 * 2 * math.pi) + 25.0 * device
            if device == 3 and end - 20 * 3600 <= ts < end - 18 * 3600:
                level *= 10
            doc = {"device_id": f"meter-{device:02d}", "timestamp": ts, "power_w": level}
            messages.append((doc["device_id"].encode(), orjson.dumps(doc)))  # type: ignore[union-attr]
    return messages


async def scored_rows(dsn: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT device_id, period, window_start, anomaly_score, is_anomaly FROM metrics"
            " WHERE period IN ('hour', 'day')"
        )
    finally:
        await connection.close()
    return [dict(r) for r in rows]


async def worker_stats(dsn: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT stats::text AS stats FROM worker_stats")
    finally:
        await connection.close()
    return [json.loads(r["stats"]) for r in rows]


async def checkpoints(dsn: str, app_id: str) -> dict[int, int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT partition, windows FROM anomaly_models WHERE app_id = $1", app_id
        )
    finally:
        await connection.close()
    return {r["partition"]: r["windows"] for r in rows}


async def wait_until(predicate: Any, within: float = 90.0) -> Any:
    deadline = time.monotonic() + within
    value = None
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.5)
    return value


async def test_windows_are_scored_flagged_and_the_model_survives_a_restart(
    kafka_bootstrap: str, worker_env: dict[str, str], tmp_path: Path, pg_database: str
) -> None:
    env = {
        **worker_env,
        "TIMEZONE": "UTC",
        "ANOMALY_WARMUP_DAYS": "1",
        "ANOMALY_THRESHOLD": "0.6",
        "ANOMALY_CHECKPOINT_INTERVAL": "1",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    messages = readings(time.time())
    half = len(messages) // 2
    hours_first_half = half // DEVICES * STEP_S // 3600 * DEVICES
    try:
        worker.start()
        worker.wait_ready()
        await produce(kafka_bootstrap, env["READINGS_TOPIC"], messages[:half])

        async def first_half_scored() -> bool:
            rows = await scored_rows(pg_database)
            hours = [r for r in rows if r["period"] == "hour" and r["anomaly_score"] is not None]
            return len(hours) >= hours_first_half - 2 * DEVICES

        assert await wait_until(first_half_scored), worker.tail()
        saved = await wait_until(lambda: checkpoints(pg_database, env["APP_ID"]))
        assert saved and saved[0] > 0, worker.tail()
        learned_before = max(
            s["anomaly"]["models"]["0"]["hour"]
            for s in await worker_stats(pg_database)
            if s.get("anomaly", {}).get("models")
        )
        worker.stop()  # a clean stop checkpoints on the way out
        saved = await checkpoints(pg_database, env["APP_ID"])
        assert saved[0] >= learned_before

        worker.start()
        worker.wait_ready()
        await produce(kafka_bootstrap, env["READINGS_TOPIC"], messages[half:])

        async def all_learned() -> int:
            stats = [
                s for s in await worker_stats(pg_database) if s.get("anomaly", {}).get("models")
            ]
            learned = max((s["anomaly"]["models"]["0"]["hour"] for s in stats), default=0)
            total = (len(messages) // DEVICES * STEP_S // 3600 - 1) * DEVICES
            # Restored from the checkpoint: the count continues from the first run's.
            return learned if learned >= total - 2 * DEVICES else 0

        assert await wait_until(all_learned, within=120), worker.tail()
    finally:
        worker.stop()

    rows = await scored_rows(pg_database)
    assert all(r["anomaly_score"] is not None and 0 <= r["anomaly_score"] <= 1 for r in rows)
    flagged = {(r["device_id"], r["period"], r["window_start"]) for r in rows if r["is_anomaly"]}
    assert ("meter-03", "hour") in {(d, p) for d, p, _ in flagged}, worker.tail()

    topic = env["ANOMALIES_TOPIC"]
    records = [
        orjson.loads(r.value) for r in await read_topic(kafka_bootstrap, topic, len(flagged))
    ]
    assert records and all(r["is_anomaly"] and r["features"] for r in records)
    published = {(r["device_id"], r["period"], parse_rfc3339(r["window_start"])) for r in records}
    assert {(d, p, datetime_to_us(w)) for d, p, w in flagged} <= published
