"""The worker's batch step without Kafka or databases, for profiling the CPU path.

``python -m bench.offline {single,batched} READINGS [--devices N] [--profile]`` runs the
benchmark's workload through the real ``ReadingPipeline`` with anomaly scoring, and outputs
that do the worker's serialization (window JSON, the PostgreSQL COPY rows, changelog states and
baselines) but no I/O; states are checkpointed every ``STATE_INTERVAL`` as in the worker. It
prints readings per second, and with ``--profile`` the top of a cProfile. The real worker
adds Kafka, PostgreSQL and Faust's consumer on top of this.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from collections.abc import Sequence
from typing import Any

from agents.messages import Message
from agents.pipeline import ReadingPipeline
from agents.runtime import tune_gc
from agents.scoring import BaselineStore, PartitionScorers
from bench.workload import generate
from models.metrics import WindowAggregate, json_many
from service.settings import Settings
from storage.metrics_copy import copy_data
from storage.postgres_sink import dedupe_windows
from streams.anomaly_config import anomaly_config_from_settings
from streams.config import config_from_settings
from streams.processor import StreamProcessor


class _Checkpoints:
    async def load_model(self, partition: int) -> bytes | None:
        return None

    async def save_model(self, partition: int, model: bytes, windows: int) -> None:
        return None


class SerializingOutputs:
    """What FaustOutputs and the PostgreSQL sink compute per record, minus the I/O."""

    def __init__(self) -> None:
        self.windows = 0

    async def dead_letter(self, items: Sequence[Any]) -> None:
        return None

    async def forward(self, items: Sequence[tuple[str, bytes]]) -> None:
        return None

    async def publish(self, windows: Sequence[WindowAggregate]) -> None:
        json_many(windows)  # the energy.metrics messages
        copy_data(dedupe_windows(windows))  # PostgresSink's rows (its staged COPY path)
        self.windows += len(windows)

    async def publish_anomalies(self, items: Sequence[tuple[str, bytes]]) -> None:
        return None

    async def publish_readings(self, readings: Sequence[Any]) -> None:
        return None

    async def record_devices(self, seen: Sequence[Any]) -> None:
        return None

    async def save_states(self, states: Sequence[tuple[str, int, bytes]]) -> None:
        return None

    async def save_baselines(self, baselines: Sequence[tuple[str, int, bytes]]) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.offline", description=__doc__)
    parser.add_argument("form", choices=("single", "batched"))
    parser.add_argument("readings", type=int)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2_000, help="messages per batch")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    workload = generate(args.readings, args.devices)
    values = workload.single if args.form == "single" else workload.batched
    messages = [Message("readings", 0, i, key, value) for i, (key, value) in enumerate(values)]
    settings = Settings()
    processor = StreamProcessor(config_from_settings(settings))
    scoring = PartitionScorers(
        anomaly_config_from_settings(settings),
        BaselineStore({}),
        _Checkpoints(),
        grace_us=processor.engine.grace,
    )
    outputs = SerializingOutputs()
    pipeline = ReadingPipeline(
        processor,
        {},
        outputs,
        partitions=1,
        currency=settings.effective_tariff.currency,
        scoring=scoring,
        state_interval=settings.state_interval,
    )

    async def run() -> None:
        # As the worker: each batch stored while the next folds, states at checkpoints.
        stored = None
        for start in range(0, len(messages), args.batch):
            _, stored = await pipeline.submit(messages[start : start + args.batch])
        await pipeline.checkpoint_states(force=True)
        await pipeline.drain()
        if stored is not None:
            await stored

    tune_gc()  # as the worker does when it starts
    began = time.perf_counter()
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    asyncio.run(run())
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - began
    print(
        f"{args.form}: {workload.readings:,} readings, {outputs.windows:,} windows in "
        f"{elapsed:.2f} s: {workload.readings / elapsed:,.0f} readings/s"
    )
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(35)


if __name__ == "__main__":
    main()
