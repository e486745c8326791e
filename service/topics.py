"""Create the service's Kafka topics (idempotently) and wait for a broker to answer."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from service.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
_TOPIC_ALREADY_EXISTS = 36


class TopicsError(Exception):
    """The broker refused to create a topic."""

    def __init__(self, topic: str, error_code: int, detail: str | None) -> None:
        super().__init__(f"cannot create topic {topic!r}: error {error_code}: {detail or ''}")
        self.topic = topic
        self.error_code = error_code
        self.detail = detail


class BrokerUnavailable(Exception):
    """No Kafka broker answered at the bootstrap address in time."""

    def __init__(self, bootstrap: str, timeout: float, cause: str) -> None:
        super().__init__(f"no Kafka broker answered at {bootstrap} within {timeout:.0f} s: {cause}")
        self.bootstrap = bootstrap
        self.timeout = timeout


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int

    def new_topic(self) -> NewTopic:
        # retention.ms is set explicitly: this broker's DescribeConfigs returns only explicit
        # configs, and some clients refuse a topic whose retention they cannot read.
        return NewTopic(
            self.name,
            self.partitions,
            1,
            topic_configs={"retention.ms": str(self.retention_ms)},
        )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics of the Kafka contracts (README), with their retention."""
    partitions = settings.topic_partitions
    return [
        TopicSpec(settings.readings_topic, partitions, 7 * DAY_MS),
        TopicSpec(settings.dlq_topic, partitions, 30 * DAY_MS),
        TopicSpec(settings.metrics_topic, partitions, 30 * DAY_MS),
        TopicSpec(settings.anomalies_topic, partitions, 30 * DAY_MS),
        TopicSpec(settings.jobs_topic, partitions, 7 * DAY_MS),
    ]


async def ensure_topics(bootstrap: str, settings: Settings) -> None:
    """Create any missing service topic; existing topics are left as they are."""
    specs = topic_specs(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{settings.app_id}-admin")
    await admin.start()
    try:
        response = await admin.create_topics([spec.new_topic() for spec in specs])
        for topic, error_code, detail in _topic_errors(response):
            if error_code == _TOPIC_ALREADY_EXISTS:
                log.debug("topic exists", extra={"topic": topic})
            elif error_code != 0:
                raise TopicsError(topic, error_code, detail)
            else:
                log.info("created topic", extra={"topic": topic})
        described = await admin.describe_topics([spec.name for spec in specs])
    finally:
        await admin.close()
    wanted = {spec.name: spec.partitions for spec in specs}
    for topic in described:
        have = len(topic.get("partitions", []))
        if topic["topic"] in wanted and have != wanted[topic["topic"]]:
            log.warning(
                "existing topic has a different partition count than TOPIC_PARTITIONS",
                extra={
                    "topic": topic["topic"],
                    "partitions": have,
                    "wanted": wanted[topic["topic"]],
                },
            )


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors: list[tuple[str, int, str | None]] = []
    for entry in getattr(response, "topic_errors", []):
        topic, error_code = entry[0], entry[1]
        detail = entry[2] if len(entry) > 2 else None
        errors.append((str(topic), int(error_code), detail))
    return errors


async def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> None:  # noqa: ASYNC109
    """Return once a broker at ``bootstrap`` answers a metadata request; else BrokerUnavailable."""
    deadline = time.monotonic() + timeout
    last_error = "no attempt"
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        finally:
            await admin.close()
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(bootstrap, timeout, last_error)
        await asyncio.sleep(0.5)
