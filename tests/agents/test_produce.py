"""Batched sends (agents/produce.py): every record reaches its partition once, in order,
across as many batches as it takes; a record too large for any batch is an error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import NotLeaderForPartitionError, UnknownError

from agents.produce import key_partition, send_keyed, send_placed


class FakeBatch:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.records: list[tuple[bytes | None, bytes | None, Any]] = []
        self.size = 0

    def append(
        self, *, key: bytes | None, value: bytes | None, timestamp: None, headers: Any
    ) -> object | None:
        size = len(key or b"") + len(value or b"")
        if self.records and self.size + size > self.limit:
            return None
        if not self.records and size > self.limit:
            return None
        self.records.append((key, value, headers))
        self.size += size
        return object()


class FakeCluster:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))


class FakeClient:
    def __init__(self, partitions: int) -> None:
        self.cluster = FakeCluster(partitions)

    async def _wait_on_metadata(self, topic: str) -> None:
        return None


class FakeProducer:
    def __init__(self, partitions: int = 4, limit: int = 100, failures: int = 0) -> None:
        self.client = FakeClient(partitions)
        self.limit = limit
        self.sent: list[tuple[str, int, FakeBatch]] = []
        self.failures = failures  # the first ``failures`` batches fail

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.limit)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        future = asyncio.get_running_loop().create_future()
        if self.failures:
            self.failures -= 1
            future.set_exception(NotLeaderForPartitionError())
            return future
        self.sent.append((topic, partition, batch))
        future.set_result(None)
        return future

    def received(self, partition: int) -> list[bytes | None]:
        return [v for _, p, b in self.sent if p == partition for _, v, _ in b.records]


async def test_records_keep_their_order_per_partition_across_full_batches() -> None:
    producer = FakeProducer(limit=100)
    records = [(i % 3, b"k", f"value-{i:03d}".encode(), None) for i in range(60)]
    await send_placed(producer, "t", records)
    for partition in range(3):
        expected = [v for p, _, v, _ in records if p == partition]
        assert producer.received(partition) == expected
    # 20 records of 10 bytes a partition, batches of at most 100 bytes
    assert len(producer.sent) == 3 * 2
    assert all(batch.size <= 100 for _, _, batch in producer.sent)


async def test_keyed_records_go_where_the_default_partitioner_puts_them() -> None:
    producer = FakeProducer(partitions=5, limit=1 << 20)
    keys = [f"meter-{i}".encode() for i in range(50)]
    await send_keyed(producer, "t", [(key, key, None) for key in keys] + [(None, b"x", None)])
    placed = {v: p for _, p, b in producer.sent for _, v, _ in b.records}
    for key in keys:
        assert placed[key] == key_partition(key, 5)
    assert 0 <= placed[b"x"] < 5


def test_key_partition_is_murmur2() -> None:
    # Values of Kafka's own partitioner (the Java client's Utils.murmur2) for these keys.
    from aiokafka.partitioner import DefaultPartitioner

    for key in (b"a", b"meter-000001", "zähler".encode()):
        assert key_partition(key, 12) == DefaultPartitioner()(key, list(range(12)), [])
    assert key_partition(b"anything", 1) == 0


async def test_a_record_larger_than_a_batch_is_refused() -> None:
    producer = FakeProducer(limit=10)
    with pytest.raises(ValueError, match="fits no batch"):
        await send_placed(producer, "t", [(0, b"k", b"small", None), (0, b"k", b"x" * 50, None)])


async def test_a_refused_batch_sends_everything_again(caplog: pytest.LogCaptureFixture) -> None:
    producer = FakeProducer(limit=1 << 20, failures=2)
    records = [(i % 2, b"k", f"v{i}".encode(), None) for i in range(6)]
    await send_placed(producer, "t", records)
    for partition in (0, 1):  # complete and in order on the attempt that succeeded
        assert producer.received(partition)[-3:] == [v for p, _, v, _ in records if p == partition]
    assert "sending them again" in caplog.text


async def test_retries_are_bounded_and_other_errors_are_not_retried() -> None:
    producer = FakeProducer(failures=100)
    with pytest.raises(NotLeaderForPartitionError):
        await send_placed(producer, "t", [(0, b"k", b"v", None)], attempts=2)

    class Broken(FakeProducer):
        async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
            raise UnknownError()

    with pytest.raises(UnknownError):
        await send_placed(Broken(), "t", [(0, b"k", b"v", None)])
