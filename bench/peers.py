"""The peers that run inside the benchmark process: a bare aiokafka consumer (the ceiling)
and the old service's batch approach (load everything, aggregate with pandas)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.progress import RunResult


async def consume(
    bootstrap: str,
    topic: str,
    messages: int,
    on_batch: Callable[[list[Any]], int],
    *,
    time_limit: float,
) -> tuple[RunResult, float]:
    """Read ``messages`` messages of partition 0; ``on_batch(records)`` returns the
    readings they held. Returns the result and the wall-clock time of the first message."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    partition = TopicPartition(topic, 0)
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        first = None
        seen = readings = 0
        while seen < messages:
            batch = await consumer.getmany(partition, timeout_ms=1000, max_records=10_000)
            records = batch.get(partition, [])
            if not records:
                continue
            if first is None:
                first = time.monotonic()
                first_wall = time.time()
            seen += len(records)
            readings += on_batch(records)
            if time.monotonic() - first >= time_limit:
                return RunResult(readings, time.monotonic() - first, capped=True), first_wall
        assert first is not None
        return RunResult(readings, time.monotonic() - first), first_wall
    finally:
        await consumer.stop()


def _count_readings(records: list[Any]) -> int:
    readings = 0
    for record in records:
        doc = orjson.loads(record.value)
        readings += len(doc) if isinstance(doc, list) else 1
    return readings


async def aiokafka_raw(
    bootstrap: str, topic: str, messages: int, *, time_limit: float
) -> RunResult:
    """Read and JSON-decode (orjson) every message; nothing else."""
    result, _ = await consume(bootstrap, topic, messages, _count_readings, time_limit=time_limit)
    return result


async def pandas_batch(
    bootstrap: str, topic: str, messages: int, *, time_limit: float
) -> RunResult:
    """Load every reading from the topic, then hourly and daily energy, count, mean, min
    and max power per device with pandas (the replaced Celery design's approach)."""
    import pandas as pd

    rows: list[dict[str, Any]] = []

    def collect(records: list[Any]) -> int:
        before = len(rows)
        for record in records:
            doc = orjson.loads(record.value)
            if isinstance(doc, list):
                rows.extend(doc)
            else:
                rows.append(doc)
        return len(rows) - before

    loaded, _ = await consume(bootstrap, topic, messages, collect, time_limit=time_limit)
    began = time.monotonic()
    frame = pd.DataFrame.from_records(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    frame = frame.sort_values(["device_id", "timestamp"], kind="stable")
    frame["energy"] = frame.groupby("device_id")["energy_kwh"].diff().clip(lower=0).fillna(0.0)
    for freq in ("h", "D"):
        frame["window"] = frame["timestamp"].dt.floor(freq)
        frame.groupby(["device_id", "window"]).agg(
            energy_kwh=("energy", "sum"),
            reading_count=("power_w", "size"),
            power_mean_w=("power_w", "mean"),
            power_min_w=("power_w", "min"),
            power_max_w=("power_w", "max"),
        )
    return RunResult(loaded.readings, loaded.seconds + time.monotonic() - began, loaded.capped)
