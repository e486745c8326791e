"""The intake between the Faust consumer's fetch loop and the batch step (agents/intake.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from agents.intake import Intake, track


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes = b""

    @property
    def tp(self) -> tuple[str, int]:
        return (self.topic, self.partition)


async def test_take_returns_a_full_batch_at_once_and_a_partial_one_after_within() -> None:
    intake = Intake(["r"], maxsize=100)
    for offset in range(5):
        await intake.put(Record("r", 0, offset))
    assert [r.offset for r in await intake.take(3, within=5.0)] == [0, 1, 2]
    started = asyncio.get_running_loop().time()
    assert [r.offset for r in await intake.take(3, within=0.05)] == [3, 4]
    assert asyncio.get_running_loop().time() - started >= 0.04


async def test_take_waits_for_the_first_record() -> None:
    intake = Intake(["r"], maxsize=100)
    waiting = asyncio.create_task(intake.take(10, within=0.01))
    await asyncio.sleep(0.02)
    assert not waiting.done()
    await intake.put(Record("r", 0, 7))
    assert [r.offset for r in await waiting] == [7]


async def test_a_full_intake_holds_the_fetch_loop_until_taken() -> None:
    intake = Intake(["r"], maxsize=2)
    await intake.put(Record("r", 0, 0))
    await intake.put(Record("r", 0, 1))
    blocked = asyncio.create_task(intake.put(Record("r", 0, 2)))
    await asyncio.sleep(0.01)
    assert not blocked.done()
    await intake.take(1, within=0.0)
    await asyncio.wait_for(blocked, 1.0)
    assert len(intake) == 2


async def test_dropping_revoked_partitions_keeps_a_waiting_take_working() -> None:
    intake = Intake(["r"], maxsize=100)
    await intake.put(Record("r", 0, 0))
    await intake.put(Record("r", 1, 0))
    assert intake.drop([("r", 0)]) == 1
    assert [r.partition for r in await intake.take(10, within=0.0)] == [1]
    waiting = asyncio.create_task(intake.take(10, within=0.0))
    await asyncio.sleep(0.01)
    intake.drop([("r", 1)])  # nothing buffered; the waiting take must still see new records
    await intake.put(Record("r", 1, 1))
    assert [r.offset for r in await asyncio.wait_for(waiting, 1.0)] == [1]
    assert intake.drop() == 0


async def test_take_stops_at_max_bytes_but_always_takes_one_record() -> None:
    intake = Intake(["r"], maxsize=100)
    for offset, size in enumerate([400, 400, 400, 2000, 10]):
        await intake.put(Record("r", 0, offset, b"x" * size))
    assert intake.bytes == 3210
    assert [r.offset for r in await intake.take(10, within=5.0, max_bytes=1000)] == [0, 1]
    assert [r.offset for r in await intake.take(10, within=5.0, max_bytes=1000)] == [2]
    assert [r.offset for r in await intake.take(10, within=5.0, max_bytes=1000)] == [3]
    assert intake.bytes == 10
    started = asyncio.get_running_loop().time()
    assert [r.offset for r in await intake.take(10, within=0.05, max_bytes=1000)] == [4]
    assert asyncio.get_running_loop().time() - started >= 0.04  # waited to fill
    assert intake.bytes == 0


async def test_a_waiting_take_returns_once_enough_bytes_arrived() -> None:
    intake = Intake(["r"], maxsize=100)
    await intake.put(Record("r", 0, 0, b"x" * 10))
    waiting = asyncio.create_task(intake.take(100, within=5.0, max_bytes=100))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await intake.put(Record("r", 0, 1, b"x" * 95))
    batch = await asyncio.wait_for(waiting, 1.0)
    assert [r.offset for r in batch] == [0]  # the second would pass max_bytes
    assert intake.drop() == 1 and intake.bytes == 0


def test_tracked_records_count_as_stream_activity_for_fausts_monitor() -> None:
    """Faust's consumer thread logs "Stream has not started processing TP" every few seconds
    for a lagging partition whose stream took no event for stream_processing_timeout: the
    intake's batches must count as the stream's events (seen in a 10-minute soak)."""

    class Monitor:
        stream_inbound_time: dict[tuple[str, int], float] = {}

    class App:
        monitor = Monitor()

    class Consumer:
        app = App()
        _unacked_messages: set[Record] = set()

    consumer = Consumer()
    records = [Record("r", 0, 1), Record("r", 0, 2), Record("r", 3, 7)]
    track(consumer, records)
    assert consumer._unacked_messages == set(records)
    assert set(Monitor.stream_inbound_time) == {("r", 0), ("r", 3)}
