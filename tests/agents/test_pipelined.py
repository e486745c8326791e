"""Storing a batch while the next is folded (ReadingPipeline.submit): outputs before states,
each after the previous batch's; states as they were when their batch was folded; a
failure stops everything after it. States at checkpoints every ``state_interval``: a
batch is acked only when a checkpoint after it is stored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from agents.messages import Message
from agents.pipeline import ReadingPipeline
from models.metrics import WindowAggregate
from streams.config import ProcessingConfig
from streams.device_state import DeviceState
from streams.processor import StreamProcessor
from tests.agents.test_pipeline import reading

HOUR = 3600


class GatedOutputs:
    """Outputs whose writes finish only when the test opens their gate."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.fail: set[str] = set()

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    async def _write(self, name: str, data: Any) -> None:
        self.log.append((f"{name} started", data))
        await self.gate(name).wait()
        if name in self.fail:
            raise RuntimeError(f"{name} failed")
        self.log.append((f"{name} stored", data))

    async def dead_letter(self, items: Sequence[Any]) -> None:
        return None

    async def forward(self, items: Sequence[Any]) -> None:
        return None

    async def publish(self, windows: Sequence[WindowAggregate]) -> None:
        await self._write("publish", sorted({w.window_start.timestamp() for w in windows}))

    async def publish_anomalies(self, items: Sequence[Any]) -> None:
        return None

    async def publish_readings(self, readings: Sequence[Any]) -> None:
        return None

    async def record_devices(self, seen: Sequence[Any]) -> None:
        return None

    async def save_states(self, states: Sequence[tuple[str, int, bytes]]) -> None:
        loaded = {d: DeviceState.from_bytes(value) for d, _, value in states}
        await self._write("states", {d: s.max_ts for d, s in loaded.items()})

    async def save_baselines(self, baselines: Sequence[Any]) -> None:
        return None


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(
    state_interval: float = 0.0, ticks: Ticks | None = None
) -> tuple[ReadingPipeline, GatedOutputs]:
    outputs = GatedOutputs()
    pipeline = ReadingPipeline(
        StreamProcessor(ProcessingConfig(grace_s=0)),
        {},
        outputs,
        partitions=1,
        currency="EUR",
        clock=lambda: 1_900_000_000.0,
        state_interval=state_interval,
        monotonic=ticks or Ticks(),
    )
    return pipeline, outputs


START = 1_800_000_000 - 1_800_000_000 % HOUR  # an hour boundary, seconds


def batch(number: int) -> list[Message]:
    """Batch ``number``: readings at the start of hours 2n and 2n+1 (each batch closes
    an hour window, so it has something to publish)."""
    return [
        Message("r", 0, offset, b"a", reading("a", START + offset * HOUR))
        for offset in (2 * number, 2 * number + 1)
    ]


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_next_batch_folds_while_the_previous_is_stored_in_order() -> None:
    pipeline, outputs = make()
    hour = HOUR * 10**6
    _, first = await asyncio.wait_for(pipeline.submit(batch(0)), 5)  # no wait: none before
    submitting = asyncio.ensure_future(pipeline.submit(batch(1)))
    await settle()
    # the second batch is folded while the first is being stored ...
    assert pipeline.states["a"].max_ts == START * 10**6 + 3 * hour
    assert not first.done() and not submitting.done()  # ... and submit waits for the first
    # only the first batch's outputs have started; the second's wait for them
    assert [kind for kind, _ in outputs.log] == ["publish started"]
    outputs.gate("publish").set()
    await settle()
    kinds = [kind for kind, _ in outputs.log]
    assert kinds[:2] == ["publish started", "publish stored"]
    assert set(kinds[2:4]) == {"states started", "publish started"}
    outputs.gate("states").set()
    _, second = await asyncio.wait_for(submitting, 5)
    await asyncio.wait_for(second, 5)
    assert first.done()
    states = [data for kind, data in outputs.log if kind == "states stored"]
    # each batch wrote the state as it was after its own fold, not the later one
    assert states == [{"a": START * 10**6 + hour}, {"a": START * 10**6 + 3 * hour}]
    stored = [kind for kind, _ in outputs.log if kind.endswith("stored")]
    publish = [i for i, kind in enumerate(stored) if kind == "publish stored"]
    saved = [i for i, kind in enumerate(stored) if kind == "states stored"]
    # a batch's states after its outputs; the second batch's after the first's
    assert len(publish) == len(saved) == 2
    assert publish[0] < saved[0] < saved[1] and publish[1] < saved[1]


async def test_a_failed_output_fails_its_batch_and_every_later_one_without_saving_state() -> None:
    pipeline, outputs = make()
    _, first = await asyncio.wait_for(pipeline.submit(batch(0)), 5)
    submitting = asyncio.ensure_future(pipeline.submit(batch(1)))
    await settle()
    outputs.fail.add("publish")
    outputs.gate("publish").set()
    outputs.gate("states").set()
    with pytest.raises(RuntimeError, match="publish failed"):
        await asyncio.wait_for(first, 5)
    _, second = await asyncio.wait_for(submitting, 5)  # submit itself does not raise
    with pytest.raises(RuntimeError, match="publish failed"):
        await asyncio.wait_for(second, 5)
    assert not [kind for kind, _ in outputs.log if kind.startswith("states")]
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(pipeline.drain(), 5)


async def test_idle_flush_and_checkpoints_wait_for_the_batch_being_stored() -> None:
    pipeline, outputs = make()
    await asyncio.wait_for(pipeline.submit(batch(0)), 5)
    flushing = asyncio.ensure_future(pipeline.flush_idle(0.0))
    await settle()
    assert not flushing.done()  # the batch's outputs are not stored yet
    outputs.gate("publish").set()
    outputs.gate("states").set()
    assert await asyncio.wait_for(flushing, 5) >= 1
    kinds = [kind for kind, _ in outputs.log if kind.endswith("stored")]
    assert kinds == ["publish stored", "states stored", "publish stored", "states stored"]


def open_pipeline(state_interval: float) -> tuple[ReadingPipeline, GatedOutputs, Ticks]:
    """A pipeline whose writes finish at once, and the clock of its checkpoints."""
    ticks = Ticks()
    pipeline, outputs = make(state_interval=state_interval, ticks=ticks)
    outputs.gate("publish").set()
    outputs.gate("states").set()
    return pipeline, outputs, ticks


def two_devices(number: int) -> list[Message]:
    """Like ``batch``, for devices "a" and "b" (offsets 4n..4n+3)."""
    return [
        Message(
            "r", 0, 4 * number + 2 * i + k, device.encode(), reading(device, START + hour * HOUR)
        )
        for i, device in enumerate("ab")
        for k, hour in enumerate((2 * number, 2 * number + 1))
    ]


async def test_states_wait_for_the_interval_and_one_checkpoint_acks_every_batch_before_it() -> None:
    pipeline, outputs, ticks = open_pipeline(10.0)
    acks = []
    for number in range(3):
        ticks.now += 3.0  # 3, 6, 9 s after the start: no checkpoint due
        _, acked = await asyncio.wait_for(pipeline.submit(two_devices(number)), 5)
        acks.append(acked)
    await asyncio.wait_for(pipeline.drain(), 5)
    await settle()
    assert [kind for kind, _ in outputs.log].count("publish stored") == 3
    assert not [kind for kind, _ in outputs.log if kind.startswith("states")]
    assert not any(ack.done() for ack in acks)  # outputs stored, states not yet: no ack
    ticks.now += 1.0  # 10 s: the next batch ends with a checkpoint
    _, last = await asyncio.wait_for(pipeline.submit(two_devices(3)), 5)
    await asyncio.wait_for(last, 5)
    await settle()
    assert all(ack.done() and ack.exception() is None for ack in acks)
    states = [data for kind, data in outputs.log if kind == "states stored"]
    # each device once, as it is after the last batch
    last_ts = (START + 7 * HOUR) * 10**6
    assert states == [{"a": last_ts, "b": last_ts}]
    assert pipeline.checkpoints == 1


async def test_the_timer_checkpoint_covers_batches_when_input_stops() -> None:
    pipeline, outputs, ticks = open_pipeline(10.0)
    _, acked = await asyncio.wait_for(pipeline.submit(batch(0)), 5)
    assert not await pipeline.checkpoint_states()  # not due yet
    await settle()
    assert not acked.done()
    ticks.now += 10.0
    assert await pipeline.checkpoint_states()
    await asyncio.wait_for(acked, 5)
    assert [data for kind, data in outputs.log if kind == "states stored"] == [
        {"a": (START + HOUR) * 10**6}
    ]
    assert not await pipeline.checkpoint_states(force=True)  # nothing left to write


async def test_a_rebalance_forces_the_checkpoint_and_release_stores_pending_states() -> None:
    pipeline, outputs, _ = open_pipeline(60.0)
    _, first = await asyncio.wait_for(pipeline.submit(batch(0)), 5)
    assert await pipeline.checkpoint_states(force=True)
    await asyncio.wait_for(first, 5)
    _, second = await asyncio.wait_for(pipeline.submit(batch(1)), 5)
    await asyncio.wait_for(pipeline.release_partitions([0]), 5)
    assert second.done() and second.exception() is None
    states = [data for kind, data in outputs.log if kind == "states stored"]
    assert states == [{"a": (START + HOUR) * 10**6}, {"a": (START + 3 * HOUR) * 10**6}]


async def test_a_failed_output_fails_its_ack_at_once_and_the_checkpoint_fails_the_rest() -> None:
    pipeline, outputs, ticks = open_pipeline(10.0)
    _, first = await asyncio.wait_for(pipeline.submit(batch(0)), 5)
    await asyncio.wait_for(pipeline.drain(), 5)
    outputs.fail.add("publish")
    _, second = await asyncio.wait_for(pipeline.submit(batch(1)), 5)
    with pytest.raises(RuntimeError, match="publish failed"):
        await asyncio.wait_for(second, 5)  # not left waiting for a checkpoint
    assert not first.done()
    ticks.now += 10.0
    assert await pipeline.checkpoint_states()
    with pytest.raises(RuntimeError, match="publish failed"):
        await asyncio.wait_for(first, 5)  # its states were never written
    assert not [kind for kind, _ in outputs.log if kind.startswith("states")]


async def test_an_idle_flush_leaves_its_states_to_the_next_checkpoint() -> None:
    pipeline, outputs, ticks = open_pipeline(60.0)
    _, acked = await asyncio.wait_for(pipeline.submit(batch(0)), 5)
    assert await asyncio.wait_for(pipeline.flush_idle(0.0), 5) >= 1  # windows published
    assert not [kind for kind, _ in outputs.log if kind.startswith("states")]
    assert not acked.done()
    ticks.now += 60.0
    assert await pipeline.checkpoint_states()
    await asyncio.wait_for(acked, 5)
    flushed = pipeline.states["a"]
    assert not flushed.pending  # the idle flush's state is the one written
    assert [data for kind, data in outputs.log if kind == "states stored"] == [
        {"a": flushed.max_ts}
    ]
