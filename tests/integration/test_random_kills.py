"""kill -9 of the worker at seeded random moments while 100k+ readings stream in: the stored
windows equal the oracle (none missing, none counted twice) and the DLQ holds exactly the
expected rejections (counted once per source message and element; the DLQ is
at-least-once, so a replay after a kill may repeat a record)."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.test_worker_end_to_end import (
    TARIFF,
    ZONE,
    wait_for,
    worker_env,  # noqa: F401 - the fixture
)
from tests.integration.volume import build_volume
from tests.integration.worker import WorkerProcess
from tests.oracle import compute
from tests.plugins.kafka import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = int(os.environ.get("KILL_SEED", "8"))
KILLS = int(os.environ.get("KILL_COUNT", "4"))


async def produce_paced(
    bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]], seconds: float
) -> None:
    """Send ``messages`` evenly over about ``seconds`` (the stream keeps flowing across kills)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        started = time.monotonic()
        for index, (key, value) in enumerate(messages):
            due = started + seconds * index / len(messages)
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def test_worker_killed_at_random_moments_during_100k_readings_equals_the_oracle(
    kafka_bootstrap: str,
    worker_env: dict[str, str],  # noqa: F811 - the fixture
    tmp_path: Path,
    pg_database: str,
) -> None:
    data = build_volume(seed=SEED)
    readings = len(data.arrivals)
    assert readings >= 100_000
    oracle = compute(data.arrivals, timezone=ZONE, tariff=TARIFF)
    want = {k: v for k, v in oracle.windows.items() if k[1] in ("hour", "day")}
    rng = random.Random(SEED)
    worker = WorkerProcess(worker_env, tmp_path / "worker.log")
    topic = worker_env["READINGS_TOPIC"]
    timeline: list[str] = []
    began = time.monotonic()
    try:
        worker.start()
        worker.wait_ready()
        feed = asyncio.create_task(
            produce_paced(kafka_bootstrap, topic, data.messages, seconds=45.0)
        )
        for kill in range(KILLS):
            # A quarter of the kills hit a worker still restoring its state or joining the
            # group; the others a worker folding batches.
            if kill > 0 and rng.random() < 0.25:
                delay, phase = rng.uniform(1.0, 5.0), "starting"
            else:
                if kill > 0:
                    await asyncio.to_thread(worker.wait_ready, 120.0)
                delay, phase = rng.uniform(0.5, 6.0), "running"
            await asyncio.sleep(delay)
            worker.kill()
            timeline.append(f"kill {kill + 1} at {time.monotonic() - began:.1f} s ({phase})")
            worker.start()
        await feed
        await asyncio.to_thread(worker.wait_ready, 120.0)
        produced = time.monotonic() - began
        problems = await wait_for(
            pg_database, want, within=float(os.environ.get("E2E_WAIT", "240"))
        )
        assert not problems, "\n".join(problems[:20] + timeline) + "\n" + worker.tail()
        converged = time.monotonic() - began
    finally:
        worker.stop()

    reasons = Counter(data.invalid)
    reasons["late"] += oracle.late
    records = await read_topic(
        kafka_bootstrap, worker_env["DLQ_TOPIC"], sum(reasons.values()), within=60
    )
    distinct: dict[tuple[bytes, bytes, bytes], str] = {}
    for record in records:
        headers = dict(record.headers)
        source = (
            headers["source.partition"],
            headers["source.offset"],
            headers.get("source.element", b"-"),
        )
        distinct[source] = headers["reason"].decode()
    assert Counter(distinct.values()) == reasons
    print(
        f"\n{readings} readings in {len(data.messages)} messages, {len(want)} hour/day windows,"
        f" {KILLS} kills: " + "; ".join(timeline) + f"; fed by {produced:.1f} s, equal to the"
        f" oracle at {converged:.1f} s; DLQ {len(records)} records, {len(distinct)} distinct"
        f" ({dict(reasons)})"
    )
