"""The embedded broker speaks the Kafka protocol: produce, consume, restart cleanly."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition

from service.embedded.kafka import EmbeddedKafka, EmbeddedKafkaError
from service.ports import free_port, port_accepts

pytestmark = pytest.mark.integration


async def test_round_trip(kafka_bootstrap: str, topic_name: Callable[[str], str]) -> None:
    topic = topic_name("roundtrip")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for index in range(10):
            await producer.send(topic, f"value-{index}".encode(), key=b"device-1")
        await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        received: list[tuple[bytes | None, bytes | None]] = []
        async with asyncio.timeout(15):
            while len(received) < 10:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    received.extend((r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    assert [value for _, value in received] == [f"value-{i}".encode() for i in range(10)]
    assert {key for key, _ in received} == {b"device-1"}


def test_start_stop_leaves_no_process(tmp_path: Path) -> None:
    port = free_port()
    log_file = tmp_path / "tansu.log"
    with EmbeddedKafka(port, log_file=log_file) as broker:
        assert broker.bootstrap == f"127.0.0.1:{port}"
        assert port_accepts("127.0.0.1", port)
        process = broker._process
        assert process is not None
        pid = process.pid
    assert not broker.running
    assert process.returncode is not None  # reaped: no zombie
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not port_accepts("127.0.0.1", port)
    assert "tansu" in log_file.read_text().lower()


def test_restart_on_same_port(tmp_path: Path) -> None:
    port = free_port()
    for _ in range(2):
        broker = EmbeddedKafka(port, log_file=tmp_path / "tansu.log")
        broker.start()
        broker.stop()
    broker.stop()  # stopping twice is harmless


def test_broker_dying_at_start_reports_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'fatal: storage engine exploded' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr("service.embedded.kafka.tansu_binary", lambda: fake)
    broker = EmbeddedKafka(free_port(), log_file=tmp_path / "tansu.log")
    with pytest.raises(
        EmbeddedKafkaError, match=r"exited with code 3(.|\n)*storage engine exploded"
    ):
        broker.start()
    assert not broker.running
