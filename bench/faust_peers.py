"""Faust peers, each a Faust worker of its own: ``BENCH_MODE=noop`` only iterates the stream
(the framework's ceiling with its defaults), ``BENCH_MODE=naive`` is the obvious program:
per-event updates of tumbling windowed tables for hourly and daily sums.

``python -m bench.faust_peers worker``; configured by ``BENCH_*`` environment variables.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import faust
import orjson

from bench.progress import ProgressWriter
from streams.timeparse import parse_rfc3339

MODE = os.environ.get("BENCH_MODE", "noop")
progress = ProgressWriter(
    os.environ.get("BENCH_PROGRESS", "/dev/null"), int(os.environ.get("BENCH_EXPECTED", "1"))
)
per_message = int(os.environ.get("BENCH_PER_MESSAGE", "1"))

app = faust.App(
    os.environ.get("BENCH_APP_ID", "bench-faust"),
    broker=f"kafka://{os.environ.get('BENCH_BOOTSTRAP', '127.0.0.1:9092')}",
    store="memory://",
    web_enabled=False,
    datadir=os.environ.get("BENCH_DATADIR", "/tmp/bench-faust"),
    consumer_auto_offset_reset="earliest",
    topic_replication_factor=1,
    # Only so that the group forms in seconds on this broker (DESIGN); not throughput.
    broker_session_timeout=10.0,
    broker_rebalance_timeout=10.0,
    broker_heartbeat_interval=1.0,
    producer_max_batch_size=1,
)
topic = app.topic(
    os.environ.get("BENCH_TOPIC", "bench.single"),
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
_event_time = 0.0


def _now_of_reading(event: Any) -> float:
    return _event_time


hourly = (
    app.Table("hourly-power", default=float, partitions=1)
    .tumbling(timedelta(hours=1), expires=timedelta(days=3650))
    .relative_to(_now_of_reading)  # type: ignore[attr-defined]
)
daily = (
    app.Table("daily-power", default=float, partitions=1)
    .tumbling(timedelta(days=1), expires=timedelta(days=3650))
    .relative_to(_now_of_reading)  # type: ignore[attr-defined]
)


@app.agent(topic)
async def consume(stream: Any) -> None:
    global _event_time
    async for value in stream:
        if MODE == "noop":
            if progress.add(per_message):
                progress.stream.flush()
            continue
        doc = orjson.loads(value)
        readings = doc if isinstance(doc, list) else [doc]
        for reading in readings:
            _event_time = parse_rfc3339(reading["timestamp"]) / 1e6
            device_id = reading["device_id"]
            hourly[device_id] += reading["power_w"]
            daily[device_id] += reading["power_w"]
        progress.add(len(readings))


if __name__ == "__main__":
    app.main()
