"""Re-reading the readings topic for a job: a plain aiokafka consumer (no group, nothing
committed) from the offsets for a time to the end of the log."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from service.endpoints import bootstrap_servers
from service.settings import Settings

logger = logging.getLogger(__name__)

POLL_MS = 500
MAX_RECORDS = 2000
# Polls that return nothing while a partition is still short of its end offset before the
# job gives up (the broker lost data, or reports an end it cannot serve).
MAX_EMPTY_POLLS = 40


class ReadingsTopicMissing(RuntimeError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"the readings topic {topic!r} does not exist")
        self.topic = topic


class ReadingsLogStalled(RuntimeError):
    def __init__(self, tp: TopicPartition, position: int, end: int) -> None:
        super().__init__(
            f"{tp.topic}:{tp.partition} returned nothing at offset {position} although its "
            f"end offset is {end}"
        )


@dataclass
class ReadingsLog:
    """Reads ``topic`` from the first offset whose message time is at or after
    ``from_ms`` (per partition) to the end offsets found at open (or further, when the
    broker's fetches show a higher watermark: the embedded broker may report too low an end
    offset after a batched produce)."""

    settings: Settings
    topic: str
    from_ms: int
    start: dict[TopicPartition, int] = field(default_factory=dict)
    end: dict[TopicPartition, int] = field(default_factory=dict)
    _consumer: Any = None

    @property
    def total(self) -> int:
        """Messages between the start and end offsets found at open."""
        return sum(max(0, self.end[tp] - self.start[tp]) for tp in self.start)

    async def __aenter__(self) -> ReadingsLog:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self.settings),
            client_id=f"{self.settings.app_id}-job",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self._consumer = consumer
        try:
            await self._locate(consumer)
        except BaseException:
            await consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _locate(self, consumer: Any) -> None:
        topics = await consumer.topics()
        if self.topic not in topics:
            raise ReadingsTopicMissing(self.topic)
        partitions = sorted(consumer.partitions_for_topic(self.topic) or ())
        tps = [TopicPartition(self.topic, p) for p in partitions]
        beginning = await consumer.beginning_offsets(tps)
        self.end = {tp: int(offset) for tp, offset in (await consumer.end_offsets(tps)).items()}
        try:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, max(0, self.from_ms)))
        except Exception as exc:  # a broker without timestamp lookups: read everything
            logger.warning("offsets by time not available (%r); reading from the beginning", exc)
            found = dict.fromkeys(tps)
        for tp in tps:
            at = found.get(tp)
            self.start[tp] = int(at.offset) if at is not None else self.end[tp]
            self.start[tp] = max(self.start[tp], int(beginning[tp]))
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, self.start[tp])

    async def batches(self) -> AsyncIterator[list[Any]]:
        """Lists of ConsumerRecord in partition order, until every partition is read."""
        consumer = self._consumer
        remaining = set(self.start)
        empty = 0
        while remaining:
            fetched = await consumer.getmany(
                *remaining, timeout_ms=POLL_MS, max_records=MAX_RECORDS
            )
            records = [r for tp in sorted(fetched) for r in fetched[tp]]
            if records:
                empty = 0
                yield records
            else:
                empty += 1
            for tp in list(remaining):
                position = await consumer.position(tp)
                highwater = consumer.highwater(tp)
                reached = max(self.end[tp], highwater or 0)
                if position >= reached and (highwater is not None or not records):
                    remaining.discard(tp)
                elif empty >= MAX_EMPTY_POLLS:
                    raise ReadingsLogStalled(tp, position, reached)
