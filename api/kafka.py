"""What the API asks the Kafka broker: is it there, and how far behind is the worker group.

One lazily started admin client and one group-less consumer (for end offsets) are kept per
app and restarted after a failure, so a broker that is down at start-up or goes away later
only makes these calls fail (with a short timeout) and never blocks the API.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from service import endpoints
from service.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0


class KafkaUnavailable(Exception):
    """The broker did not answer (or answered with an error) within the timeout."""

    def __init__(self, bootstrap: str, detail: str) -> None:
        super().__init__(f"Kafka broker at {bootstrap}: {detail}")
        self.bootstrap = bootstrap
        self.detail = detail


class TopicMissing(Exception):
    """The topic whose lag was asked for does not exist on the broker."""

    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist")
        self.topic = topic


@dataclass(frozen=True)
class PartitionOffsets:
    """Raw offsets of one partition; ``committed`` is None when the group never committed."""

    partition: int
    beginning: int
    end: int
    committed: int | None


class KafkaInspector(Protocol):
    async def check(self) -> None:
        """Return when the broker answers a metadata request; else raise."""
        ...

    async def group_offsets(self, group: str, topic: str) -> list[PartitionOffsets]:
        """Offsets of every partition of ``topic`` and the group's commits on them."""
        ...

    async def close(self) -> None: ...


def bootstrap_servers(settings: Settings) -> str:
    """``host:port[,host:port]`` from KAFKA_BROKER_URL (``kafka://`` allowed, as Faust takes)."""
    return ",".join(endpoints.bootstrap_servers(settings))


class AiokafkaInspector:
    """KafkaInspector over aiokafka; every call is bounded by ``timeout`` seconds."""

    def __init__(self, bootstrap: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> None:
        await self._bounded(self._check())

    async def group_offsets(self, group: str, topic: str) -> list[PartitionOffsets]:
        result: list[PartitionOffsets] = await self._bounded(self._group_offsets(group, topic))
        return result

    async def close(self) -> None:
        async with self._lock:
            await self._reset()

    async def _check(self) -> None:
        admin = await self._admin_client()
        await admin.describe_cluster()

    async def _group_offsets(self, group: str, topic: str) -> list[PartitionOffsets]:
        admin = await self._admin_client()
        # All topics (a null topic list): naming one would let the broker auto-create it.
        described: list[dict[str, Any]] = await admin.describe_topics(None)
        entry = next((t for t in described if t.get("topic") == topic), None)
        if entry is None or not entry.get("partitions"):
            raise TopicMissing(topic)
        partitions = [TopicPartition(topic, int(p["partition"])) for p in entry["partitions"]]
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        consumer = await self._offsets_consumer()
        beginning = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
        offsets = []
        for tp in sorted(partitions, key=lambda tp: tp.partition):
            commit = committed.get(tp)
            offset = commit.offset if commit is not None else -1
            offsets.append(
                PartitionOffsets(
                    partition=tp.partition,
                    beginning=int(beginning[tp]),
                    end=int(end[tp]),
                    committed=int(offset) if offset >= 0 else None,
                )
            )
        return offsets

    async def _bounded(self, call: Any) -> Any:
        try:
            return await asyncio.wait_for(call, self.timeout)
        except TopicMissing:
            raise
        except TimeoutError as exc:
            await self._drop_clients()
            raise KafkaUnavailable(self.bootstrap, f"no answer within {self.timeout:g} s") from exc
        except Exception as exc:  # aiokafka raises many unrelated types for one outage
            await self._drop_clients()
            raise KafkaUnavailable(self.bootstrap, f"{type(exc).__name__}: {exc}") from exc

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(
                    bootstrap_servers=self.bootstrap,
                    client_id="energy-processing-api",
                    request_timeout_ms=int(self.timeout * 1000),
                )
                try:
                    await admin.start()
                except BaseException:
                    await _quietly(admin.close())
                    raise
                self._admin = admin
            return self._admin

    async def _offsets_consumer(self) -> AIOKafkaConsumer:
        async with self._lock:
            if self._consumer is None:
                consumer = AIOKafkaConsumer(
                    bootstrap_servers=self.bootstrap,
                    client_id="energy-processing-api",
                    group_id=None,
                    enable_auto_commit=False,
                    request_timeout_ms=int(self.timeout * 1000),
                )
                try:
                    await consumer.start()
                except BaseException:
                    await _quietly(consumer.stop())
                    raise
                self._consumer = consumer
            return self._consumer

    async def _drop_clients(self) -> None:
        async with self._lock:
            await self._reset()

    async def _reset(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        if admin is not None:
            await _quietly(admin.close())
        if consumer is not None:
            await _quietly(consumer.stop())


async def _quietly(closing: Any) -> None:
    try:
        await asyncio.wait_for(closing, DEFAULT_TIMEOUT_S)
    except Exception as exc:  # closing a client of a dead broker may fail in many ways
        log.debug("closing a Kafka client failed", extra={"error": repr(exc)})
