"""Hostile messages through the real worker: a message larger than Kafka's default record
limit, deep nesting, invalid UTF-8, absurd numbers. The worker keeps going, every bad
message is dead-lettered with a reason (oversized values cut, with headers), and the good
readings around them are stored."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from agents.messages import MAX_DLQ_VALUE_BYTES
from tests.integration.test_worker_end_to_end import worker_env as worker_env  # fixture
from tests.integration.worker import WorkerProcess
from tests.plugins.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_hostile_messages_are_dead_lettered_and_good_readings_stored(
    kafka_bootstrap: str, worker_env: dict[str, str], tmp_path: Path, pg_database: str
) -> None:
    start = int(time.time()) // 3600 * 3600 - 6 * 3600
    good = [
        orjson.dumps({"device_id": "good-1", "timestamp": start + 60 * i, "power_w": 1000.0})
        for i in range(0, 181)
    ]
    hostile = [
        b'{"device_id":"bad-1","timestamp":1,"power_w":1,"blob":"' + b"z" * 3_000_000 + b'"',
        b"[" * 5000 + b"]" * 5000,
        b'{"device_id":"bad-2","timestamp":"2026-01-01T00:00:00Z\xff","power_w":1}',
        b'{"device_id":"bad-3","timestamp":1e308,"power_w":1}',
        b'{"device_id":"bad-4","timestamp":1700000000,"power_w":1' + b"0" * 400 + b"}",
    ]
    messages = good[:90] + hostile + good[90:]
    worker = WorkerProcess(worker_env, tmp_path / "worker.log")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        worker.start()
        worker.wait_ready()
        for value in messages:
            await producer.send(worker_env["READINGS_TOPIC"], value)
        await producer.flush()
        deadline = time.monotonic() + 60
        hours = 0
        while time.monotonic() < deadline:
            connection = await asyncpg.connect(pg_database)
            try:
                hours = await connection.fetchval(
                    "SELECT count(*) FROM metrics WHERE device_id = 'good-1' AND period = 'hour'"
                )
            finally:
                await connection.close()
            if hours >= 3:
                break
            await asyncio.sleep(0.5)
        assert hours >= 3, worker.tail()
        records = await read_topic(
            kafka_bootstrap, worker_env["DLQ_TOPIC"], len(hostile), within=60
        )
        assert len(records) == len(hostile), worker.tail()
        by_reason: dict[str, int] = {}
        truncated = 0
        for record in records:
            headers = dict(record.headers)
            reason = headers["reason"].decode()
            by_reason[reason] = by_reason.get(reason, 0) + 1
            assert len(record.value or b"") <= MAX_DLQ_VALUE_BYTES
            if len(record.value or b"") == MAX_DLQ_VALUE_BYTES:
                assert headers["truncated"] == b"true"
                assert int(headers["original.bytes"]) == len(hostile[0])
                truncated += 1
        assert truncated == 1
        assert by_reason == {"invalid_json": 3, "invalid_schema": 1, "out_of_range": 1}, by_reason

        assert worker.process is not None and worker.process.poll() is None, worker.tail()
    finally:
        await producer.stop()
        worker.stop()
