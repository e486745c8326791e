"""The worker's batch step, free of Faust: decode, route, fold, emit, then persist state.

Order matters for "nothing lost, nothing twice": outputs (dead letters, forwarded readings,
the metrics topic, PostgreSQL, InfluxDB) are awaited until stored *before* the device
states are written to the changelog, and offsets are committed only after that. A crash
anywhere replays the batch: outputs are idempotent upserts, and a device skips messages
it already folded (offsets kept in its state).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka.partitioner import murmur2

from models.metrics import WindowAggregate
from streams.decode import Reading, Rejection, reading_bytes
from streams.device import DeviceState, Emission
from streams.processor import BatchResult, StreamProcessor

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Message:
    """One consumed record. ``source`` is the partition for the readings topic and
    ``-1 - partition`` for the repartition topic (see StreamProcessor.fold)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    repartitioned: bool = False

    @property
    def source(self) -> int:
        return -1 - self.partition if self.repartitioned else self.partition


class Outputs(Protocol):
    """Where the pipeline's results go; every method returns once the data is durable."""

    async def dead_letter(self, items: Sequence[tuple[Rejection, Message]]) -> None: ...

    async def forward(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Send (device_id, reading JSON) to the repartition topic keyed by device_id."""
        ...

    async def publish(self, windows: Sequence[WindowAggregate]) -> None:
        """Metrics topic plus every sink (PostgreSQL, InfluxDB)."""
        ...

    def save_states(self, states: Sequence[tuple[str, DeviceState]]) -> None:
        """Write states to the changelog (flushed before offsets are committed)."""
        ...


def partition_for(device_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for key ``device_id``."""
    return int(murmur2(device_id.encode()) & 0x7FFFFFFF) % partitions


class ReadingPipeline:
    """Shared by the readings agent, the repartition agent and the idle-flush timer."""

    def __init__(
        self,
        processor: StreamProcessor,
        states: MutableMapping[str, DeviceState],
        outputs: Outputs,
        *,
        partitions: int,
        currency: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.processor = processor
        self.states = states
        self.outputs = outputs
        self.partitions = partitions
        self.currency = currency
        self.clock = clock
        self.lock = asyncio.Lock()
        self.forwarded = 0
        self.batches = 0
        self.positions: dict[tuple[str, int], int] = {}  # last offset handled per tp
        self._rate: deque[tuple[float, int]] = deque()

    # -- the batch step ------------------------------------------------------------------
    async def handle(self, messages: Sequence[Message]) -> BatchResult:
        async with self.lock:
            return await self._handle(messages)

    async def _handle(self, messages: Sequence[Message]) -> BatchResult:
        wall = self.clock()
        now_us = int(wall * 1_000_000)
        processor = self.processor
        result = BatchResult()
        readings: list[Reading] = []
        forward: list[tuple[str, bytes]] = []
        positions = [(m.source, m.offset) for m in messages]
        for index, message in enumerate(messages):
            decoded = processor.decode(message.value, now_us, result, index)
            if message.repartitioned:
                readings.extend(decoded)
                continue
            for reading in decoded:
                # State lives in the partition of the device's key; a reading that came
                # in on another partition (unkeyed or mis-keyed) is forwarded there.
                if partition_for(reading.device_id, self.partitions) == message.partition:
                    readings.append(reading)
                else:
                    forward.append((reading.device_id, reading_bytes(reading)))
        if forward:
            processor.counters.readings_received -= len(forward)
            self.forwarded += len(forward)
        processor.fold(readings, self.states, wall, result, positions)
        await self._emit(result, messages, forward)
        for message in messages:
            self.positions[(message.topic, message.partition)] = message.offset
        self.batches += 1
        self._rate.append((wall, processor.counters.readings_received))
        return result

    async def _emit(
        self,
        result: BatchResult,
        messages: Sequence[Message],
        forward: Sequence[tuple[str, bytes]],
    ) -> None:
        waits: list[Awaitable[None]] = []
        if result.rejections:
            waits.append(
                self.outputs.dead_letter([(r, messages[r.msg]) for r in result.rejections])
            )
        if forward:
            waits.append(self.outputs.forward(forward))
        if result.emissions:
            waits.append(self.outputs.publish(self.to_models(result.emissions)))
        if waits:
            await asyncio.gather(*waits)
        if result.touched:
            self.outputs.save_states([(d, self.states[d]) for d in result.touched])

    def to_models(self, emissions: Sequence[Emission]) -> list[WindowAggregate]:
        return [e.to_model(self.currency) for e in emissions]

    # -- idle flush (SEMANTICS.md section 6) -----------------------------------------------
    async def flush_idle(self, idle_seconds: float) -> int:
        """Emit the windows of every device quiet for ``idle_seconds`` of wall clock."""
        async with self.lock:
            now = self.clock()
            emissions: list[Emission] = []
            touched: list[tuple[str, DeviceState]] = []
            for device_id, state in list(self.states.items()):
                if state.pending and now - state.last_wall >= idle_seconds:
                    emissions.extend(self.processor.flush(device_id, state))
                    touched.append((device_id, state))
            if emissions:
                await self.outputs.publish(self.to_models(emissions))
            if touched:
                self.outputs.save_states(touched)
                logger.info(
                    "idle flush",
                    extra={"devices": len(touched), "windows": len(emissions)},
                )
            return len(emissions)

    # -- statistics ----------------------------------------------------------------------
    def rate_per_second(self, horizon: float = 60.0) -> float:
        """Readings received per second over the last ``horizon`` seconds."""
        now = self.clock()
        samples = self._rate
        while len(samples) > 1 and samples[1][0] < now - horizon:
            samples.popleft()
        if not samples:
            return 0.0
        oldest_time, oldest_count = samples[0]
        current = self.processor.counters.readings_received
        span = max(now - oldest_time, 1e-9)
        if now - oldest_time > horizon:
            span = horizon
        return max(current - oldest_count, 0) / span if span else 0.0

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = dict(self.processor.counters.as_dict())
        data["forwarded"] = self.forwarded
        data["batches"] = self.batches
        data["rate_per_s_1m"] = round(self.rate_per_second(), 3)
        data["devices"] = len(self.states)
        return data
