"""Kafka fixtures: one embedded broker (memory only) per test session, unique topic names."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from service.embedded.kafka import EmbeddedKafka
from service.ports import free_port


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of an embedded Tansu broker shared by the whole session."""
    log_file: Path = tmp_path_factory.mktemp("kafka") / "tansu.log"
    broker = EmbeddedKafka(free_port(), log_file=log_file)
    bootstrap = broker.start()
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def topic_name() -> Callable[[str], str]:
    """Make topic names unique to this test, so tests sharing the broker never collide."""
    suffix = uuid.uuid4().hex[:10]

    def make(base: str = "topic") -> str:
        return f"test.{base}.{suffix}"

    return make


async def read_topic(
    bootstrap: str, topic: str, expected: int, within: float = 15.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from the beginning, once ``expected`` have arrived.

    Reads for one more short poll after reaching ``expected`` so a surplus shows up.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        partitions = await _partitions_of(consumer, topic, within)
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        async with asyncio.timeout(within):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=200)
                for partition_records in batch.values():
                    records.extend(partition_records)
        batch = await consumer.getmany(timeout_ms=300)
        for partition_records in batch.values():
            records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def _partitions_of(consumer: AIOKafkaConsumer, topic: str, within: float) -> set[int]:
    async with asyncio.timeout(within):
        while True:
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                return set(partitions)
            await consumer.topics()  # refreshes metadata
            await asyncio.sleep(0.1)
