"""The worker's batch step, free of Faust: decode, route, fold, emit, then persist state.

Order matters for "nothing lost, nothing twice": outputs (dead letters, forwarded readings,
the metrics topic, PostgreSQL, InfluxDB) are awaited until stored *before* the device
states are written to the changelog, and offsets are committed only after that. A crash
anywhere replays the batch: outputs are idempotent upserts, and a device skips messages
it already folded (offsets kept in its state).

States are written at checkpoints, every ``state_interval`` seconds (``STATE_INTERVAL``)
rather than after every batch: a checkpoint writes each device touched since the last one
once, and a batch's records are acked (their offsets may be committed) only when a
checkpoint after them is stored. A crash replays what came after the last checkpoint,
as Kafka Streams does between its commits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from functools import lru_cache
from typing import Any

from agents.contiguity import ContiguousOffsets
from agents.messages import Message, forward_value
from agents.outputs import Outputs
from agents.produce import key_partition
from agents.scoring import PartitionScorers, anomaly_record
from models.metrics import WindowAggregate
from streams.anomaly_stream import ScoredWindow
from streams.decode import Reading
from streams.device_state import DeviceState
from streams.emission import Emission
from streams.processor import BatchResult, StreamProcessor

logger = logging.getLogger(__name__)

SLOW_OUTPUTS_S = 0.5


@lru_cache(maxsize=1 << 16)
def partition_for(device_id: str, partitions: int) -> int:
    """The partition Kafka's default (murmur2) partitioner picks for key ``device_id``
    (cached by the text too: routing asks for it once a reading)."""
    return key_partition(device_id.encode(), partitions)


class ReadingPipeline(ContiguousOffsets):
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
        expected_start: Callable[[tuple[str, int]], int | None] = lambda tp: None,
        scoring: PartitionScorers | None = None,
        state_interval: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        ContiguousOffsets.__init__(self, expected_start)
        self.processor = processor
        self.states = states
        self.outputs = outputs
        self.partitions = partitions
        self.currency = currency
        self.clock = clock
        self.lock = asyncio.Lock()
        self.forwarded = 0
        self.batches = 0
        self.scoring = scoring
        self._rate: deque[tuple[float, int]] = deque()
        # the last batch's storing: its outputs, then everything (see submit)
        self._outputs_stored: asyncio.Future[None] | None = None
        self._stored: asyncio.Future[None] | None = None
        # state checkpoints: devices touched since the last one, and the acks of the
        # batches it will cover
        self.state_interval = state_interval
        self.monotonic = monotonic
        self._dirty: set[str] = set()
        self._seen: dict[str, tuple[int, int]] = {}  # for the devices table: first, last
        self._uncovered: list[asyncio.Future[None]] = []
        self._last_checkpoint = monotonic()
        self.checkpoints = 0

    # -- the batch step ------------------------------------------------------------------
    async def handle(self, messages: Sequence[Message]) -> BatchResult:
        """Fold a batch and return once everything it produced, and the states, are stored."""
        result, stored = await self.submit(messages, checkpoint=True)
        await stored
        return result

    async def submit(
        self, messages: Sequence[Message], *, checkpoint: bool = False
    ) -> tuple[BatchResult, asyncio.Future[None]]:
        """Fold a batch now and store its outputs in the background; the future completes
        when they and a state checkpoint after them are stored (ack the batch's records
        then), raising if they could not be. The batch ends with a checkpoint when
        ``checkpoint`` is set or ``state_interval`` has passed since the last one;
        otherwise a later batch's or ``checkpoint_states`` writes its states. Batches are
        stored in the order they were folded: a batch's outputs after the previous batch's
        outputs, a checkpoint's states after the previous checkpoint's.

        While a batch is being stored the next one is folded (the CPU work overlaps the
        round trips to Kafka and the databases); at most two are in flight: this returns
        after the previous batch's outputs are stored."""
        async with self.lock:
            previous = self._stored
            result, acked = await self._handle(messages, checkpoint)
        if previous is not None:
            await asyncio.wait([previous])  # its failure is reported by its own future
        return result, acked

    async def checkpoint_states(self, *, force: bool = False) -> bool:
        """Write the states touched since the last checkpoint if ``state_interval`` has
        passed (or ``force``) and batches wait for one; returns whether one was started.
        Its batches' futures (``submit``) complete when it is stored."""
        async with self.lock:
            if not (self._uncovered or self._dirty) or not (force or self._checkpoint_due()):
                return False
            self._start_store([], checkpoint=True, records=False)
            return True

    def _checkpoint_due(self) -> bool:
        return self.monotonic() - self._last_checkpoint >= self.state_interval

    async def drain(self) -> None:
        """Wait until every batch folded so far is stored (raises if one could not be)."""
        stored = self._stored
        if stored is not None:
            await stored

    async def _handle(
        self, messages: Sequence[Message], checkpoint: bool
    ) -> tuple[BatchResult, asyncio.Future[None]]:
        messages = self.admit(messages)
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
                    forward.append((reading.device_id, forward_value(reading)))
        if forward:
            processor.counters.readings_received -= len(forward)
            self.forwarded += len(forward)
        processor.fold(readings, self.states, wall, result, positions)
        scored = await self._score(readings, result.emissions)
        acked = self._emit(result, messages, forward, scored, checkpoint)
        self.batches += 1
        if messages and logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "batch folded",
                extra={
                    "messages": len(messages),
                    "first": f"{messages[0].topic}:{messages[0].partition}@{messages[0].offset}",
                    "last": f"{messages[-1].topic}:{messages[-1].partition}@{messages[-1].offset}",
                    "emitted": len(result.emissions),
                    "rejected": len(result.rejections),
                },
            )
        self._rate.append((wall, processor.counters.readings_received))
        return result, acked

    def _emit(
        self,
        result: BatchResult,
        messages: Sequence[Message],
        forward: Sequence[tuple[str, bytes]],
        scored: dict[int, ScoredWindow],
        checkpoint: bool,
    ) -> asyncio.Future[None]:
        """Start storing the batch's outputs, after the previous batch's, and end it with a
        state checkpoint when asked or due; returns the future to ack its records on."""
        waits: list[tuple[str, Awaitable[None]]] = []
        if result.rejections:
            waits.append(
                (
                    "dead_letter",
                    self.outputs.dead_letter([(r, messages[r.msg]) for r in result.rejections]),
                )
            )
        if forward:
            waits.append(("forward", self.outputs.forward(forward)))
        if result.emissions:
            windows, anomalies = self.to_models(result.emissions, scored)
            waits.append(("publish", self.outputs.publish(windows)))
            if anomalies:
                waits.append(("anomalies", self.outputs.publish_anomalies(anomalies)))
        if result.accepted:
            waits.append(("readings", self.outputs.publish_readings(result.accepted)))
        if result.devices:
            seen = self._seen
            for device_id, (first, last) in result.devices.items():
                known = seen.get(device_id)
                if known is not None:
                    first, last = min(first, known[0]), max(last, known[1])
                seen[device_id] = (first, last)
        self._dirty.update(result.touched)
        acked = self._start_store(waits, checkpoint=checkpoint or self._checkpoint_due())
        assert acked is not None
        return acked

    def _devices_seen(self) -> list[tuple[str, int, int, dict[str, Any]]]:
        """The devices table's rows for the devices seen since the last checkpoint: first
        and last accepted reading time, and the latest reading."""
        rows = []
        states = self.states
        for device_id, (first, last) in self._seen.items():
            state = states.get(device_id)
            if state is None or not state.readings:  # pragma: no cover - released first
                continue
            latest = state.readings[-1]  # the reading at max_ts
            reading = {"timestamp": latest[0], "power_w": latest[1], "energy_kwh": latest[2]}
            rows.append((device_id, first, last, reading))
        self._seen = {}
        return rows

    def _snapshot(self, touched: Iterable[str]) -> tuple[list[Any], list[Any]]:
        """The changed baselines and the touched devices' states, serialized now."""
        states = self.states
        baselines: list[tuple[str, int, bytes]] = []
        if self.scoring is not None:
            changed = self.scoring.changed_baselines()
            baselines = [(d, self._partition_of(d), data) for d, data in changed]
        records = [(d, self._partition_of(d), states[d].to_bytes()) for d in touched]
        return baselines, records

    def _partition_of(self, device_id: str) -> int:
        """The changelog partition of a device's state and baseline: where its state lives,
        else where its key belongs."""
        state = self.states.get(device_id)
        partition = state.partition if state is not None else None
        return partition if partition is not None else partition_for(device_id, self.partitions)

    def _start_store(
        self, waits: list[tuple[str, Awaitable[None]]], *, checkpoint: bool, records: bool = True
    ) -> asyncio.Future[None] | None:
        """Store ``waits`` after the previous outputs; at a checkpoint, then the states and
        baselines changed since the last one (serialized now), after the previous
        checkpoint's. With ``records``, returns the future to ack the batch's records on:
        done when a checkpoint after it is stored, failed as soon as its storing fails."""
        loop = asyncio.get_running_loop()
        snapshot: tuple[list[Any], list[Any]] = ([], [])
        if checkpoint:
            if self._seen:
                waits = [*waits, ("devices", self.outputs.record_devices(self._devices_seen()))]
            snapshot = self._snapshot(sorted(self._dirty))
            self._dirty.clear()
            self._last_checkpoint = self.monotonic()
            self.checkpoints += 1
        outputs_stored: asyncio.Future[None] = loop.create_future()
        stored = asyncio.ensure_future(
            self._store(self._outputs_stored, self._stored, waits, snapshot, outputs_stored)
        )
        # Nobody may wait for the outputs alone: keep an unseen failure quiet (the batch's
        # own future carries it).
        outputs_stored.add_done_callback(_consume)
        self._outputs_stored, self._stored = outputs_stored, stored
        acked: asyncio.Future[None] | None = None
        if records:
            acked = loop.create_future()
            self._uncovered.append(acked)
        if checkpoint:
            stored.add_done_callback(_settle(self._uncovered))
            self._uncovered = []
        elif acked is not None:
            stored.add_done_callback(_settle([acked], failure_only=True))
        return acked

    async def _store(
        self,
        previous_outputs: asyncio.Future[None] | None,
        previous: asyncio.Future[None] | None,
        waits: list[tuple[str, Awaitable[None]]],
        snapshot: tuple[list[Any], list[Any]],
        outputs_stored: asyncio.Future[None],
    ) -> None:
        try:
            if previous_outputs is not None:
                await previous_outputs
        except BaseException as exc:
            outputs_stored.set_exception(exc)
            for _, wait in waits:  # never started: close the coroutines
                close = getattr(wait, "close", None)
                if close is not None:
                    close()
            raise
        try:
            await self._await_outputs(waits)
        except BaseException as exc:
            outputs_stored.set_exception(exc)
            raise
        outputs_stored.set_result(None)
        if previous is not None:
            await previous
        await self._save_state(*snapshot)

    async def _await_outputs(self, waits: list[tuple[str, Awaitable[None]]]) -> None:
        if not waits:
            return
        started = time.monotonic()
        timings: dict[str, float] = {}
        await asyncio.gather(*(self._timed(name, w, timings) for name, w in waits))
        elapsed = time.monotonic() - started
        if elapsed > SLOW_OUTPUTS_S:
            logger.warning(
                "slow outputs: %.1f s for one batch (%s)",
                elapsed,
                ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items()),
            )

    @staticmethod
    async def _timed(name: str, wait: Awaitable[None], timings: dict[str, float]) -> None:
        started = time.monotonic()
        await wait
        timings[name] = time.monotonic() - started

    def to_models(
        self, emissions: Sequence[Emission], scored: dict[int, ScoredWindow] | None = None
    ) -> tuple[list[WindowAggregate], list[tuple[str, bytes]]]:
        """The windows to publish, with their scores, and the anomaly records of the
        flagged ones."""
        currency = self.currency
        if not scored:
            return [e.to_model(currency) for e in emissions], []
        windows: list[WindowAggregate] = []
        anomalies: list[tuple[str, bytes]] = []
        for emission in emissions:
            window = scored.get(id(emission))
            if window is None:
                windows.append(emission.to_model(currency))
                continue
            result = window.result
            model = emission.to_model(currency, result.score, result.is_anomaly)
            windows.append(model)
            if result.is_anomaly:
                anomalies.append((model.device_id, anomaly_record(model, window)))
        return windows, anomalies

    # -- anomaly scoring (agents/scoring.py) ---------------------------------------------
    async def _score(
        self, readings: Sequence[Reading] | None, emissions: Sequence[Emission]
    ) -> dict[int, ScoredWindow]:
        if self.scoring is None or not emissions:
            return {}
        return await self.scoring.score(readings, emissions, self.states)

    async def _save_state(
        self, baselines: Sequence[tuple[str, int, bytes]], states: Sequence[tuple[str, int, bytes]]
    ) -> None:
        """Changed anomaly baselines and device states to their changelogs, concurrently."""
        waits: list[Awaitable[None] | None] = []
        if baselines:
            waits.append(self.outputs.save_baselines(baselines))
        if states:
            waits.append(self.outputs.save_states(states))
        pending = [w for w in waits if w is not None]
        if pending:
            await asyncio.gather(*pending)

    async def checkpoint_models(self) -> int:
        """Save the anomaly models that learned since their last checkpoint."""
        if self.scoring is None:
            return 0
        async with self.lock:
            await self.drain()
            return await self.scoring.checkpoint()

    async def release_partitions(self, partitions: Iterable[int]) -> None:
        """On revocation: store the states, checkpoint and drop those partitions' anomaly
        models."""
        async with self.lock:
            if self._uncovered or self._dirty:
                self._start_store([], checkpoint=True, records=False)
            await self.drain()
            if self.scoring is not None:
                await self.scoring.release(partitions)

    # -- idle flush (SEMANTICS.md section 6) -----------------------------------------------
    async def flush_idle(self, idle_seconds: float) -> int:
        """Emit the windows of every device quiet for ``idle_seconds`` of wall clock."""
        async with self.lock:
            await self.drain()
            now = self.clock()
            emissions: list[Emission] = []
            touched: list[str] = []
            for device_id, state in list(self.states.items()):
                if state.pending and now - state.last_wall >= idle_seconds:
                    emissions.extend(self.processor.flush(device_id, state))
                    touched.append(device_id)
            waits: list[tuple[str, Awaitable[None]]] = []
            if emissions:
                scored = await self._score(None, emissions)
                windows, anomalies = self.to_models(emissions, scored)
                waits.append(("publish", self.outputs.publish(windows)))
                if anomalies:
                    waits.append(("anomalies", self.outputs.publish_anomalies(anomalies)))
            self._dirty.update(touched)  # their states go with the next checkpoint
            self._start_store(waits, checkpoint=self._checkpoint_due(), records=False)
            await self.drain()
            if touched:
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
        data["redelivered"] = self.redelivered
        data["gaps_repaired"] = self.gaps_repaired
        data["batches"] = self.batches
        data["rate_per_s_1m"] = round(self.rate_per_second(), 3)
        data["devices"] = len(self.states)
        if self.scoring is not None:
            data["anomaly"] = self.scoring.stats()
        return data


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _settle(
    acks: list[asyncio.Future[None]], *, failure_only: bool = False
) -> Callable[[asyncio.Future[None]], None]:
    """Storing ended: the acks follow it (a checkpoint's batches), or, with
    ``failure_only``, fail at once with it (a batch whose outputs could not be stored) and
    otherwise wait for a checkpoint."""

    def done(stored: asyncio.Future[None]) -> None:
        exc = None if stored.cancelled() else stored.exception()
        if failure_only and exc is None and not stored.cancelled():
            return
        for ack in acks:
            if ack.done():
                continue
            if stored.cancelled():
                ack.cancel()
            elif exc is not None:
                ack.set_exception(exc)
            else:
                ack.set_result(None)

    return done
