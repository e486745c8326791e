"""Quix Streams peer: hourly and daily energy sum, reading count, min and max power per
device with its tumbling windows (event time from the readings), in a process of its own.

``python -m bench.quix_peer``; configured by ``BENCH_*`` environment variables. The input
topic must exist with ``retention.ms`` set (bench.servers.create_topic): this broker
describes only explicit configs and Quix's stateful steps need that one.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from typing import Any

from bench.progress import ProgressWriter
from streams.timeparse import parse_rfc3339


def main() -> None:
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Max, Min, Sum

    progress = ProgressWriter(
        os.environ.get("BENCH_PROGRESS", "/dev/null"), int(os.environ.get("BENCH_EXPECTED", "1"))
    )
    batched = os.environ.get("BENCH_BATCHED") == "1"
    app = Application(
        broker_address=os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092"),
        consumer_group=os.environ.get("BENCH_APP_ID", "bench-quix"),
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="bench-quix-"),
        # The group forms in seconds on this broker with a short session (not throughput).
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        loglevel="WARNING",
    )
    topic = app.topic(os.environ.get("BENCH_TOPIC", "bench.single"), value_deserializer="json")
    sdf = app.dataframe(topic)
    if batched:
        sdf = sdf.apply(lambda value: value, expand=True)

    def counted(value: Any) -> None:
        if progress.add(1):
            app.stop()

    sdf = sdf.update(counted)
    sdf = sdf.set_timestamp(
        lambda value, key, timestamp, headers: parse_rfc3339(value["timestamp"]) // 1000
    )
    # Late by arrival order in the batched form (one device's days after another's): a
    # week of grace keeps every reading in its window, as our GRACE-free replay would.
    grace = timedelta(days=7) if batched else timedelta(minutes=5)
    for length in (timedelta(hours=1), timedelta(days=1)):
        sdf.tumbling_window(length, grace_ms=grace).agg(
            energy_max=Max("energy_kwh"),
            energy_min=Min("energy_kwh"),
            power_sum=Sum("power_w"),
            count=Count(),
            power_min=Min("power_w"),
            power_max=Max("power_w"),
        ).final()
    app.run()


if __name__ == "__main__":
    main()
