"""What a worker connects to, started once before the first batch: the PostgreSQL pool
(migrated), the sinks wrapped for retry, and the Faust-backed outputs of the pipeline."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from agents.messages import Message, dlq_value
from agents.pipeline import ReadingPipeline
from agents.produce import KeyedRecord, PlacedRecord, send_keyed, send_placed
from agents.runtime import tune_gc
from agents.scoring import BaselineStore, PartitionScorers
from models.metrics import EncodedWindows, WindowAggregate, json_many
from service.endpoints import database_dsn
from service.settings import Settings
from storage.base import DeviceSeen, SinkUnavailable
from storage.migrations import migrate_pool
from storage.postgres import create_pool
from storage.postgres_repository import PostgresRepository
from storage.postgres_sink import PostgresSink
from storage.resilient import ResilientSink
from streams.anomaly_config import anomaly_config_from_settings
from streams.config import config_from_settings
from streams.decode import Reading, Rejection
from streams.processor import StreamProcessor
from streams.timeparse import format_us, us_to_datetime

logger = logging.getLogger(__name__)

# The key of the tombstone that closes each changelog write (see _write_changelog): not a
# valid device id, so it never names table data; recovery applies it as a no-op delete.
CHANGELOG_SEAL_KEY = b""


class FaustOutputs:
    """Outputs of the pipeline over Faust topics and the sinks."""

    def __init__(self, resources: WorkerResources) -> None:
        self.r = resources

    async def dead_letter(self, items: Sequence[tuple[Rejection, Message]]) -> None:
        producer = await self.r.output_producer()
        records: list[KeyedRecord] = []
        for rejection, message in items:
            headers = [
                ("reason", rejection.reason.encode()),
                ("detail", rejection.detail.encode()),
                ("source.topic", message.topic.encode()),
                ("source.partition", str(message.partition).encode()),
                ("source.offset", str(message.offset).encode()),
            ]
            if rejection.element_index is not None:
                headers.append(("source.element", str(rejection.element_index).encode()))
            key = rejection.device_id.encode() if rejection.device_id else None
            value, extra = dlq_value(rejection.raw)
            headers.extend(extra)
            records.append((key, value, headers))
        await send_keyed(producer, self.r.dlq_topic.get_topic_name(), records)

    async def forward(self, items: Sequence[tuple[str, bytes]]) -> None:
        await self._send_by_device(self.r.repartition_topic.get_topic_name(), items)

    async def publish(self, windows: Sequence[WindowAggregate]) -> None:
        producer = await self.r.output_producer()
        topic = self.r.metrics_topic.get_topic_name()
        encoded = json_many(windows)
        records = [
            (w.device_id.encode(), data, None) for w, data in zip(windows, encoded, strict=True)
        ]
        batch = EncodedWindows(windows, encoded)
        await asyncio.gather(
            send_keyed(producer, topic, records), *(sink.write(batch) for sink in self.r.sinks)
        )

    async def publish_anomalies(self, items: Sequence[tuple[str, bytes]]) -> None:
        await self._send_by_device(self.r.settings.anomalies_topic, items)

    async def _send_by_device(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        """(device_id, value) records keyed by device id, stored when this returns."""
        producer = await self.r.output_producer()
        await send_keyed(producer, topic, [(d.encode(), value, None) for d, value in items])

    async def publish_readings(self, readings: Sequence[Reading]) -> None:
        if self.r.readings_sink is not None:
            rows = [(r.device_id, r.ts, r.power_w, r.energy_kwh) for r in readings]
            await self.r.readings_sink.write(rows)  # type: ignore[arg-type]

    async def record_devices(self, seen: Sequence[tuple[str, int, int, dict[str, Any]]]) -> None:
        if self.r.devices_sink is not None:
            rows = [
                DeviceSeen(
                    device_id,
                    us_to_datetime(first),
                    us_to_datetime(last),
                    {**reading, "timestamp": format_us(reading["timestamp"])},
                )
                for device_id, first, last, reading in seen
            ]
            await self.r.devices_sink.write(rows)  # type: ignore[arg-type]

    async def save_states(self, states: Sequence[tuple[str, int, bytes]]) -> None:
        await self._write_changelog(self.r.table, states)

    async def save_baselines(self, baselines: Sequence[tuple[str, int, bytes]]) -> None:
        if self.r.baseline_table is None:
            return
        await self._write_changelog(self.r.baseline_table, baselines)

    async def _write_changelog(self, table: Any, records: Sequence[tuple[str, int, bytes]]) -> None:
        """Write (key, partition, value) to a table's changelog in produce batches, and
        wait until stored.

        Faust's own changelog sends cost a produce request each (producer_max_batch_size=1
        works around the embedded broker reporting the end offset of a partition as the
        *first* offset of its last batch + 1, which cut table recovery short). Here records
        go in large batches, and a batch of one record closes each touched partition: a
        tombstone for the empty key (never a device id), so the broker's end offset is
        right again and recovery reads everything.
        """
        if not records:
            return
        producer = await self.r.output_producer()
        topic = table.changelog_topic.get_topic_name()
        key_partition = table.data._key_partition
        placed: list[PlacedRecord] = []
        for device_id, partition, value in records:
            placed.append((partition, device_id.encode(), value, None))
            key_partition[device_id] = partition
        await send_placed(producer, topic, placed)
        touched = sorted({partition for partition, *_ in placed})
        await send_placed(producer, topic, [(p, CHANGELOG_SEAL_KEY, None, None) for p in touched])

    async def load_model(self, partition: int) -> bytes | None:
        assert self.r.repository is not None
        return await self.r.repository.load_anomaly_model(self.r.settings.app_id, partition)

    async def save_model(self, partition: int, model: bytes, windows: int) -> None:
        assert self.r.repository is not None
        await self.r.repository.save_anomaly_model(
            self.r.settings.app_id, partition, model, windows
        )


class DevicesSink:
    """The devices table (first/last seen) behind the sink interface, so it is retried
    through outages like the metrics."""

    name = "devices"

    def __init__(self, repository: PostgresRepository) -> None:
        self.repository = repository

    async def start(self) -> None:
        return None

    async def write(self, batch: Sequence[DeviceSeen]) -> None:
        await self.repository.upsert_devices(batch)

    async def close(self) -> None:
        return None


class PartitionMismatch(RuntimeError):
    def __init__(self, topic: str, found: int, configured: int) -> None:
        super().__init__(
            f"topic {topic} has {found} partitions but TOPIC_PARTITIONS={configured}; "
            "set TOPIC_PARTITIONS to the topic's partition count"
        )


class WorkerResources:
    def __init__(
        self,
        settings: Settings,
        *,
        table: Any,
        baseline_table: Any = None,
        dlq_topic: Any,
        metrics_topic: Any,
        repartition_topic: Any,
    ) -> None:
        self.settings = settings
        self.table = table
        self.baseline_table = baseline_table
        self.dlq_topic = dlq_topic
        self.metrics_topic = metrics_topic
        self.repartition_topic = repartition_topic
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}"
        self.processor = StreamProcessor(config_from_settings(settings))
        self.sinks: list[ResilientSink] = []
        self.repository: PostgresRepository | None = None
        self.devices_sink: ResilientSink | None = None
        self.readings_sink: ResilientSink | None = None
        self.pool: Any = None
        self.influx_client: Any = None
        self.started = False
        self._stats_ok = True
        self._output_producer: Any = None
        self._pipeline: ReadingPipeline | None = None
        self._lock = asyncio.Lock()
        self._producer_lock = asyncio.Lock()

    async def ready(
        self, expected_start: Callable[[tuple[str, int]], int | None] | None = None
    ) -> ReadingPipeline:
        if self._pipeline is not None:
            return self._pipeline
        async with self._lock:
            if self._pipeline is None:
                await self._start(expected_start)
            assert self._pipeline is not None
            return self._pipeline

    async def output_producer(self) -> Any:
        """One plain aiokafka producer for the DLQ, metrics and repartition topics: each
        batch awaits its deliveries before saving state. (Faust's own send to a topic this
        same app consumes never completed its delivery future here, and costs far more per
        message.) Batches of up to 1 MB: with aiokafka's 16 KB default, a large forward to
        the repartition topic went out as two batches of one partition and the embedded
        broker answered the second with NotLeaderForPartition until it timed out."""
        if self._output_producer is not None:
            return self._output_producer
        async with self._producer_lock:  # outputs of one batch ask for it concurrently
            if self._output_producer is None:
                from aiokafka import AIOKafkaProducer

                from service.endpoints import bootstrap_servers

                producer = AIOKafkaProducer(
                    bootstrap_servers=bootstrap_servers(self.settings),
                    acks="all",
                    linger_ms=2,
                    max_batch_size=1 << 20,
                    # a batch the broker keeps refusing fails after 10 s and is sent
                    # again as a new batch (agents/produce.py), instead of after 40 s
                    request_timeout_ms=10_000,
                )
                await producer.start()
                self._output_producer = producer
        return self._output_producer

    async def close(self) -> None:
        """Release clients at worker shutdown."""
        if self._output_producer is not None:
            await self._output_producer.stop()
            self._output_producer = None
        if self.influx_client is not None:
            await self.influx_client.close()
            self.influx_client = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def check_partitions(self, app: Any) -> bool:
        """Device state is keyed by the readings topic's partitions: they must match.
        True once verified; False while the consumer has no metadata yet."""
        try:
            found = app.consumer.topic_partitions(self.settings.readings_topic)
        except Exception:  # metadata not known yet: checked again later
            return False
        if not found:
            return False
        if found != self.settings.topic_partitions:
            raise PartitionMismatch(
                self.settings.readings_topic, found, self.settings.topic_partitions
            )
        return True

    async def _start(self, expected_start: Callable[[tuple[str, int]], int | None] | None) -> None:
        settings = self.settings
        dsn = database_dsn(settings)
        delay = 0.5
        while True:
            try:
                self.pool = await create_pool(dsn, min_size=1, max_size=4)
                await migrate_pool(self.pool)
                break
            except (SinkUnavailable, OSError) as exc:
                logger.warning("database not reachable yet, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.repository = PostgresRepository(self.pool)
        self.devices_sink = ResilientSink(DevicesSink(self.repository))  # type: ignore[arg-type]
        postgres = ResilientSink(PostgresSink(self.pool))
        await postgres.start()
        self.sinks = [postgres]
        if settings.influxdb_url:
            from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

            from storage.influx import InfluxSink

            self.influx_client = InfluxDBClientAsync(
                url=settings.influxdb_url,
                token=settings.influxdb_token.get_secret_value(),
                org=settings.influxdb_org,
            )
            influx = ResilientSink(
                InfluxSink(self.influx_client, settings.influxdb_org, settings.influxdb_bucket)
            )
            await influx.start()
            self.sinks.append(influx)
            if settings.influxdb_raw_readings:
                from storage.influx import InfluxReadingsSink

                self.readings_sink = ResilientSink(
                    InfluxReadingsSink(influx.inner)  # type: ignore[arg-type]
                )
            logger.info("InfluxDB sink on", extra={"url": settings.influxdb_url})
        else:
            logger.info("InfluxDB sink off: INFLUXDB_URL is not set")
        outputs = FaustOutputs(self)
        scoring = None
        if settings.anomaly_enabled and self.baseline_table is not None:
            scoring = PartitionScorers(
                anomaly_config_from_settings(settings),
                BaselineStore(self.baseline_table.data.data),
                outputs,
                grace_us=self.processor.engine.grace,
            )
        else:
            logger.info("anomaly scoring off (ANOMALY_ENABLED=false)")
        self._pipeline = ReadingPipeline(
            self.processor,
            self.table.data.data,
            outputs,
            partitions=settings.topic_partitions,
            currency=settings.effective_tariff.currency,
            expected_start=expected_start or (lambda tp: None),
            scoring=scoring,
            state_interval=settings.state_interval,
        )
        self.started = True
        tune_gc()
        logger.info(
            "worker ready",
            extra={"worker_id": self.worker_id, "sinks": [s.name for s in self.sinks]},
        )

    async def first_offset_at(self, tp: tuple[str, int], offset: int) -> int | None:
        """The offset of the first record the broker returns when read from ``offset``."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from service.endpoints import bootstrap_servers

        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(self.settings), enable_auto_commit=False
        )
        partition = TopicPartition(*tp)
        try:
            await consumer.start()
            consumer.assign([partition])
            consumer.seek(partition, offset)
            batch = await consumer.getmany(partition, timeout_ms=5000, max_records=1)
            records = batch.get(partition)
            return records[0].offset if records else None
        except Exception as exc:
            logger.warning("could not probe %s at %s: %s", tp, offset, exc)
            return None
        finally:
            await consumer.stop()

    def sink_status(self) -> dict[str, Any]:
        return {
            sink.name: {
                "healthy": sink.healthy,
                "outage_since": sink.outage_since.isoformat() if sink.outage_since else None,
                "last_error": sink.last_error,
                "pending_batches": sink.pending_batches,
                "writes": sink.writes,
                "points": sink.points,
                "failures": sink.failures,
                "last_write_latency_s": sink.last_write_latency_s,
            }
            for sink in self.sinks
        }

    def partition_lag(self, app: Any) -> dict[str, Any]:
        pipeline = self._pipeline
        out: dict[str, Any] = {}
        try:
            assignment = app.consumer.assignment()
        except Exception:
            return out
        for tp in assignment:
            if tp.topic != self.settings.readings_topic:
                continue
            try:
                highwater = app.consumer.highwater(tp)
            except Exception:
                highwater = None
            processed = pipeline.positions.get((tp.topic, tp.partition)) if pipeline else None
            lag = None
            if highwater is not None:
                lag = max(highwater - (processed + 1 if processed is not None else 0), 0)
            out[f"{tp.topic}:{tp.partition}"] = {
                "highwater": highwater,
                "processed_offset": processed,
                "lag": lag,
            }
        return out

    async def publish_stats(self, app: Any) -> None:
        if self.repository is None or self._pipeline is None:
            return
        stats = self._pipeline.stats()
        stats["partitions"] = self.partition_lag(app)
        stats["sinks"] = self.sink_status()
        try:
            await self.repository.save_worker_stats(
                self.worker_id, orjson.loads(orjson.dumps(stats))
            )
        except Exception as exc:  # stats are best effort; the data paths retry
            if self._stats_ok:
                logger.warning("could not save worker stats (will keep trying): %s", exc)
            self._stats_ok = False
        else:
            self._stats_ok = True
