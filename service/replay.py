"""Re-send dead-lettered messages to the readings topic, after a fix.

A record of the dead-letter topic holds the rejected bytes with ``reason``, ``detail`` and
``source.*`` headers (README, "Dead letters"). ``replay`` reads one partition's offset range
(or every partition's), keeps the records whose reason is among ``reasons`` (all when
empty), and produces each value unchanged, with its key, to the readings topic, adding a
``replayed.from`` header (``<dlq topic>:<partition>:<offset>``). The worker judges them
again like any reading: a reading rejected for a rule that still holds (for example
``late``) is dead-lettered again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

log = logging.getLogger(__name__)

POLL_MS = 500


@dataclass
class ReplayRange:
    partition: int | None = None  # None: every partition of the topic
    from_offset: int = 0
    to_offset: int | None = None  # inclusive; None: up to the end offset at the start
    reasons: frozenset[str] = frozenset()


@dataclass
class ReplayResult:
    scanned: int = 0
    replayed: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    partitions: dict[int, tuple[int, int]] = field(default_factory=dict)  # first, last offset


class ReplayError(Exception):
    """The range or topic cannot be replayed (message says why)."""


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("utf-8", "replace")
    return None


async def replay(
    bootstrap: str,
    dlq_topic: str,
    readings_topic: str,
    selection: ReplayRange,
    *,
    dry_run: bool = False,
    progress: Callable[[ReplayResult], None] | None = None,
) -> ReplayResult:
    """Replay ``selection`` of ``dlq_topic`` into ``readings_topic``; see the module doc."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    producer = None if dry_run else AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    result = ReplayResult()
    await consumer.start()
    try:
        if producer is not None:
            await producer.start()
        found = consumer.partitions_for_topic(dlq_topic)
        if not found and dlq_topic in await consumer.topics():  # refreshes metadata
            found = consumer.partitions_for_topic(dlq_topic)
        if not found:
            raise ReplayError(f"topic {dlq_topic} does not exist or has no partitions")
        if selection.partition is not None and selection.partition not in found:
            raise ReplayError(
                f"topic {dlq_topic} has no partition {selection.partition} "
                f"(partitions: {sorted(found)})"
            )
        chosen = [selection.partition] if selection.partition is not None else sorted(found)
        tps = [TopicPartition(dlq_topic, p) for p in chosen]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        stops: dict[TopicPartition, int] = {}  # exclusive end per partition
        for tp in tps:
            stop = ends[tp]
            if selection.to_offset is not None:
                stop = min(stop, selection.to_offset + 1)
            begin = max(selection.from_offset, starts[tp])
            if begin < stop:
                consumer.seek(tp, begin)
                stops[tp] = stop
        pending: list[asyncio.Future[object]] = []
        while stops:
            batches = await consumer.getmany(*stops, timeout_ms=POLL_MS)
            for tp, records in batches.items():
                stop = stops.get(tp)
                if stop is None:
                    continue
                for record in records:
                    if record.offset >= stop:
                        break
                    result.scanned += 1
                    first, _ = result.partitions.get(tp.partition, (record.offset, record.offset))
                    result.partitions[tp.partition] = (first, record.offset)
                    reason = _header(record.headers, "reason") or "unknown"
                    if selection.reasons and reason not in selection.reasons:
                        skipped = result.skipped_by_reason
                        skipped[reason] = skipped.get(reason, 0) + 1
                        continue
                    result.replayed += 1
                    if producer is not None:
                        headers = [
                            (
                                "replayed.from",
                                f"{dlq_topic}:{tp.partition}:{record.offset}".encode(),
                            )
                        ]
                        pending.append(
                            await producer.send(
                                readings_topic, record.value, key=record.key, headers=headers
                            )
                        )
                if records and records[-1].offset >= stop - 1:
                    del stops[tp]
            for tp in list(stops):
                if await consumer.position(tp) >= stops[tp]:
                    del stops[tp]
            if len(pending) > 10_000:
                await asyncio.gather(*pending)
                pending.clear()
            if progress is not None:
                progress(result)
        await asyncio.gather(*pending)
    finally:
        if producer is not None:
            await producer.stop()
        await consumer.stop()
    log.info(
        "replay finished",
        extra={
            "dlq_topic": dlq_topic,
            "readings_topic": readings_topic,
            "scanned": result.scanned,
            "replayed": result.replayed,
            "dry_run": dry_run,
        },
    )
    return result
