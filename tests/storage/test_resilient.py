"""ResilientSink: retries outages forever (never drops), backs off, logs once per outage."""

from __future__ import annotations

import asyncio
import logging

import pytest

from storage.base import SinkRejected
from storage.memory import MemorySink
from storage.resilient import ResilientSink
from tests.storage.helpers import key_of, window

LOGGER = "storage.resilient"


class Clock:
    """A sleep that records delays and can change the world after the n-th sleep."""

    def __init__(self, sink: MemorySink, recover_after: int | None = None) -> None:
        self.sink = sink
        self.recover_after = recover_after
        self.delays: list[float] = []

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        if self.recover_after is not None and len(self.delays) >= self.recover_after:
            self.sink.unavailable = None
        await asyncio.sleep(0)


def resilient(memory: MemorySink, clock: Clock, **options: float) -> ResilientSink:
    return ResilientSink(memory, sleep=clock.sleep, random_fraction=lambda: 0.0, **options)


async def test_a_healthy_write_passes_through() -> None:
    memory = MemorySink()
    sink = resilient(memory, Clock(memory))
    batch = [window("a", "hour", i) for i in range(3)]
    await sink.write(batch)
    assert set(memory.windows) == {key_of(item) for item in batch}
    assert (sink.writes, sink.points, sink.failures, sink.healthy) == (1, 3, 0, True)
    assert sink.last_write_latency_s is not None
    assert sink.name == "memory"


async def test_an_outage_is_retried_until_it_ends_and_nothing_is_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = MemorySink()
    memory.unavailable = "connection refused"
    clock = Clock(memory, recover_after=6)
    sink = resilient(memory, clock)
    batch = [window("a", "hour", 0)]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        await sink.write(batch)
    assert set(memory.windows) == {key_of(batch[0])}
    assert clock.delays == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4]
    assert (sink.failures, sink.writes, sink.healthy, sink.outages) == (6, 1, True, 1)
    assert sink.outage_since is None
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelname for r in records] == ["WARNING", "INFO"]
    assert "memory" in records[0].getMessage()
    assert "connection refused" in records[0].getMessage()
    assert "6 retries" in records[1].getMessage()


async def test_backoff_is_capped_and_jittered() -> None:
    memory = MemorySink()
    memory.unavailable = "down"
    clock = Clock(memory, recover_after=12)
    fractions = iter([0.0, 1.0] * 6)
    sink = ResilientSink(
        memory, sleep=clock.sleep, random_fraction=lambda: next(fractions), max_delay=2.0
    )
    await sink.write([window()])
    # Without jitter 0.2, 0.4, ... capped at 2.0; a fraction of 1 halves the delay.
    assert clock.delays[:4] == [0.2, 0.2, 0.8, 0.8]
    assert clock.delays[-2:] == [2.0, 1.0]


async def test_retry_after_is_honoured() -> None:
    memory = MemorySink()
    memory.unavailable = "throttled"
    memory.retry_after = 7.0
    clock = Clock(memory, recover_after=2)
    await resilient(memory, clock).write([window()])
    assert clock.delays == [7.0, 7.0]


async def test_a_rejection_is_raised_not_retried() -> None:
    memory = MemorySink()
    memory.reject_next = "schema mismatch"
    clock = Clock(memory)
    sink = resilient(memory, clock)
    with pytest.raises(SinkRejected, match="schema mismatch"):
        await sink.write([window()])
    assert clock.delays == []
    assert (sink.rejections, sink.writes, sink.healthy) == (1, 0, True)
    assert sink.last_error is not None and "schema mismatch" in sink.last_error


async def test_state_during_an_outage_and_one_warning_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = MemorySink()
    gate = asyncio.Event()

    async def sleep(delay: float) -> None:
        await gate.wait()

    sink = ResilientSink(memory, sleep=sleep)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for outage in range(2):
            memory.unavailable = f"outage {outage}"
            gate.clear()
            writers = [asyncio.create_task(sink.write([window("a", "hour", i)])) for i in range(3)]
            await asyncio.sleep(0)
            assert not sink.healthy
            assert sink.outage_since is not None
            assert sink.last_error == f"outage {outage}"
            assert sink.pending_batches == 3
            assert not any(task.done() for task in writers)
            memory.unavailable = None
            gate.set()
            await asyncio.gather(*writers)
            assert sink.healthy and sink.pending_batches == 0
    levels = [r.levelname for r in caplog.records if r.name == LOGGER]
    assert levels == ["WARNING", "INFO", "WARNING", "INFO"]
    assert sink.outages == 2
    assert sink.stats()["outages"] == 2
    assert len(memory.windows) == 3


async def test_start_waits_through_an_outage() -> None:
    memory = MemorySink()
    memory.unavailable = "starting"
    clock = Clock(memory, recover_after=3)
    sink = resilient(memory, clock)
    await sink.start()
    assert memory.started
    assert len(clock.delays) == 3
    await sink.close()
    assert memory.closed


async def test_an_empty_batch_does_nothing() -> None:
    memory = MemorySink()
    memory.unavailable = "down"
    sink = resilient(memory, Clock(memory))
    await sink.write([])
    assert sink.writes == 0 and sink.healthy


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="base_delay"):
        ResilientSink(MemorySink(), base_delay=0)
    with pytest.raises(ValueError, match="jitter"):
        ResilientSink(MemorySink(), jitter=2)
