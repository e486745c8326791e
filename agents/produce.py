"""Many records to one topic through aiokafka, a batch per partition instead of a ``send``
per record.

``AIOKafkaProducer.send`` costs about 20 us a record in Python (a metadata wait, a set of
the topic's partitions, a future, the accumulator's bookkeeping); a worker batch sends
thousands (windows, changelog states, anomaly baselines). Here the records go into one
``BatchBuilder`` per partition and each builder is handed over whole: same records, same
order within a partition, one future per batch.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import murmur2

logger = logging.getLogger(__name__)
ATTEMPTS = 5

Header = tuple[str, bytes]
# (key, value, headers): the partition from the key as Kafka's default partitioner picks it
KeyedRecord = tuple[bytes | None, bytes | None, Sequence[Header] | None]
# (partition, key, value, headers)
PlacedRecord = tuple[int, bytes | None, bytes | None, Sequence[Header] | None]


@lru_cache(maxsize=1 << 16)
def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) picks for ``key``, cached."""
    if partitions == 1:
        return 0
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


async def partition_count(producer: Any, topic: str) -> int:
    """Partitions of ``topic`` from the producer's metadata (fetched when unknown)."""
    await producer.client._wait_on_metadata(topic)
    partitions = producer.client.cluster.partitions_for_topic(topic)
    if not partitions:
        raise RuntimeError(f"topic {topic} has no partitions in the cluster metadata")
    return len(partitions)


async def send_keyed(producer: Any, topic: str, records: Iterable[KeyedRecord]) -> None:
    """Send records placed by key (murmur2, as the default partitioner; a record without a
    key goes to a random partition) and wait until the broker has them all."""
    count = await partition_count(producer, topic)
    placed: list[PlacedRecord] = []
    for key, value, headers in records:
        partition = random.randrange(count) if key is None else key_partition(key, count)
        placed.append((partition, key, value, headers))
    await send_placed(producer, topic, placed)


async def send_placed(
    producer: Any, topic: str, records: Iterable[PlacedRecord], *, attempts: int = ATTEMPTS
) -> None:
    """Send records to the given partitions in batches and wait until stored. Records of one
    partition keep their order (one batch after another: aiokafka has one in flight per
    partition).

    A retriable failure that outlasts aiokafka's own retries (the embedded broker has been
    seen answering NotLeaderForPartition to a partition it leads until the request timed
    out) sends all the records again as new batches, up to ``attempts`` times: records may
    then be stored twice (changelog records are idempotent; the output topics are
    at-least-once), never lost."""
    records = list(records)
    for attempt in range(1, attempts + 1):
        try:
            await _send_placed_once(producer, topic, records)
            return
        except Exception as exc:
            retriable = isinstance(exc, KafkaTimeoutError) or (
                isinstance(exc, KafkaError) and exc.retriable
            )
            if not retriable or attempt == attempts:
                raise
            logger.warning(
                "producing %s records to %s failed (%r); sending them again (attempt %s of %s)",
                len(records),
                topic,
                exc,
                attempt + 1,
                attempts,
            )
            await asyncio.sleep(min(0.2 * 2**attempt, 5.0))


async def _send_placed_once(producer: Any, topic: str, records: list[PlacedRecord]) -> None:
    builders: dict[int, Any] = {}
    futures: list[asyncio.Future[Any]] = []
    for partition, key, value, headers in records:
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            futures.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                raise ValueError(f"a record of {len(value or b'')} bytes fits no batch")
    for partition, builder in builders.items():
        futures.append(await producer.send_batch(builder, topic, partition=partition))
    if futures:
        await asyncio.gather(*futures)
