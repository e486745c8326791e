"""ensure_topics creates every service topic once, with the configured partitions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from service.ports import free_port
from service.settings import Settings
from service.topics import BrokerUnavailable, ensure_topics, topic_specs, wait_for_broker

pytestmark = pytest.mark.integration


def _settings(topic_name: Callable[[str], str], partitions: int) -> Settings:
    return Settings(
        readings_topic=topic_name("readings"),
        dlq_topic=topic_name("dlq"),
        metrics_topic=topic_name("metrics"),
        anomalies_topic=topic_name("anomalies"),
        jobs_topic=topic_name("jobs"),
        topic_partitions=partitions,
    )


async def _partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}


async def test_creates_all_topics_idempotently(
    kafka_bootstrap: str, topic_name: Callable[[str], str]
) -> None:
    settings = _settings(topic_name, partitions=3)
    names = [spec.name for spec in topic_specs(settings)]
    assert len(set(names)) == 5

    await ensure_topics(kafka_bootstrap, settings)
    await ensure_topics(kafka_bootstrap, settings)  # second run: no error, no change

    assert await _partitions(kafka_bootstrap, names) == dict.fromkeys(names, 3)


def test_every_topic_has_explicit_retention() -> None:
    settings = Settings()
    specs = {spec.name: spec for spec in topic_specs(settings)}
    assert specs["energy.readings"].retention_ms == 7 * 24 * 3600 * 1000
    for spec in specs.values():
        assert spec.new_topic().topic_configs["retention.ms"] == str(spec.retention_ms)


async def test_wait_for_broker(kafka_bootstrap: str) -> None:
    await wait_for_broker(kafka_bootstrap, timeout=5)


async def test_wait_for_absent_broker_gives_up() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailable, match=bootstrap):
        await wait_for_broker(bootstrap, timeout=1)
