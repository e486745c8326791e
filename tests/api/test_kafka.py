"""AiokafkaInspector and /api/v1/stats lag against the real (embedded) broker."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import OffsetAndMetadata

from api.kafka import AiokafkaInspector, KafkaUnavailable, TopicMissing, bootstrap_servers
from service.ports import free_port
from service.settings import Settings

pytestmark = pytest.mark.integration


async def make_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs={"retention.ms": "3600000"})]
        )
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    # One message per request: this broker can under-report end offsets after batches.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_batch_size=16384, linger_ms=0)
    await producer.start()
    try:
        for partition, count in counts.items():
            for i in range(count):
                await producer.send_and_wait(topic, f"m{i}".encode(), partition=partition)
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


async def test_check_and_group_offsets(
    kafka_bootstrap: str, topic_name: Callable[[str], str]
) -> None:
    topic, group = topic_name("readings"), topic_name("group")
    await make_topic(kafka_bootstrap, topic, 2)
    await produce(kafka_bootstrap, topic, {0: 5, 1: 3})
    await commit(kafka_bootstrap, group, {TopicPartition(topic, 0): 2})
    inspector = AiokafkaInspector(kafka_bootstrap, timeout=10)
    try:
        await inspector.check()
        offsets = await inspector.group_offsets(group, topic)
    finally:
        await inspector.close()
    assert [(o.partition, o.beginning, o.end, o.committed) for o in offsets] == [
        (0, 0, 5, 2),
        (1, 0, 3, None),
    ]


async def test_missing_topic_is_reported_and_not_created(
    kafka_bootstrap: str, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("absent")
    inspector = AiokafkaInspector(kafka_bootstrap, timeout=10)
    try:
        with pytest.raises(TopicMissing):
            await inspector.group_offsets("some-group", topic)
    finally:
        await inspector.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


async def test_unreachable_broker_fails_fast() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    inspector = AiokafkaInspector(bootstrap, timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(KafkaUnavailable) as check_error:
            await inspector.check()
        with pytest.raises(KafkaUnavailable):
            await inspector.group_offsets("g", "t")
    finally:
        await inspector.close()
    assert time.monotonic() - started < 5
    assert bootstrap in str(check_error.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, "127.0.0.1:9092"),
        ("kafka://broker:9092", "broker:9092"),
        ("kafka://a:1;kafka://b:2", "a:1,b:2"),
        ("a:1, b:2", "a:1,b:2"),
    ],
)
def test_bootstrap_servers(url: str | None, expected: str) -> None:
    assert bootstrap_servers(Settings(kafka_broker_url=url, kafka_port=9092)) == expected
