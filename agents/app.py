"""The Faust application: topics, the device-state table, agents and timers.

``faust -A agents.app worker -l info`` and ``energy-processing worker`` both run it. The
settings are read from the environment once, here, at import.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import faust
from faust.types import TP

from agents import consumer_patches
from agents import intake as intake_module
from agents.codec import register as register_codecs
from agents.consumer_patches import faust_add_gap
from agents.jobs.schedule import schedule_timer
from agents.jobs.worker import CallbackSink, JobWorker
from agents.messages import Message, messages_from_events
from agents.pipeline import ReadingPipeline
from agents.resources import PartitionMismatch, WorkerResources
from models.metrics import WindowAggregate
from service.endpoints import bootstrap_servers
from service.settings import ConfigurationError, Settings, load_settings

logger = logging.getLogger(__name__)

register_codecs()

try:
    settings: Settings = load_settings()
except ConfigurationError as exc:  # pragma: no cover - exercised through the CLI
    sys.stderr.write(f"energy-processing: {exc}\n")
    raise SystemExit(2) from exc

# Faust keeps a small folder per app id (no table data: the store is in memory).
(settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)

app = faust.App(
    settings.app_id,
    broker=[f"kafka://{server}" for server in bootstrap_servers(settings)],
    store="memory://",
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=1,
    broker_session_timeout=10.0,
    broker_rebalance_timeout=10.0,
    broker_heartbeat_interval=1.0,
    broker_commit_every=1000,
    broker_commit_interval=1.0,
    producer_max_batch_size=settings.producer_max_batch_size,
    # A record larger than this stalls its partition (Faust's default is 1 MiB); the broker's
    # own limit (message.max.bytes) is what bounds a message.
    consumer_max_fetch_size=64 * 1024 * 1024,
    consumer_auto_offset_reset="earliest",
    web_enabled=False,
    datadir=str(settings.data_dir / "faust" / settings.app_id),
    table_cleanup_interval=3600.0,
    logging_config=None,
)

# internal=True makes Faust create a missing topic with TOPIC_PARTITIONS partitions (and an
# explicit retention.ms) before consuming; an existing one is checked at the first batch.
readings_topic = app.topic(
    settings.readings_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    retention=timedelta(days=7),
    internal=True,
)
repartition_topic = app.topic(
    f"{settings.app_id}-readings-repartition",
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    internal=True,
)
dlq_topic = app.topic(
    settings.dlq_topic,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    retention=timedelta(days=30),
    internal=True,
)
metrics_topic = app.topic(
    settings.metrics_topic,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    retention=timedelta(days=30),
    internal=True,
)

jobs_topic = app.topic(
    settings.jobs_topic,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    partitions=settings.topic_partitions,
    retention=timedelta(days=7),
    internal=True,
)


def _keyed_table(name: str, value_serializer: str) -> Any:
    """A table keyed by device_id (utf8). Tables derive serializers from key/value types;
    ours are codecs, so the changelog topic is declared here with them, and the table is
    told to use the same."""
    changelog = app.topic(
        f"{settings.app_id}-{name}-changelog",
        key_serializer="utf8",
        value_serializer=value_serializer,
        partitions=settings.topic_partitions,
        compacting=True,
        deleting=False,
        acks=False,
        internal=True,
    )
    table = app.Table(
        name, partitions=settings.topic_partitions, default=None, changelog_topic=changelog
    )
    table.key_serializer = "utf8"  # type: ignore[attr-defined]
    table.value_serializer = value_serializer  # type: ignore[attr-defined]
    return table


device_table = _keyed_table("device-state", "device_state")
# Anomaly baselines per device (agents/scoring.py), written with the device states.
baseline_table = _keyed_table("anomaly-baselines", "raw")

resources = WorkerResources(
    settings,
    table=device_table,
    baseline_table=baseline_table,
    dlq_topic=dlq_topic,
    metrics_topic=metrics_topic,
    repartition_topic=repartition_topic,
)


async def _publish_job_windows(windows: Sequence[WindowAggregate]) -> None:
    """Windows recomputed by jobs go where the stream's go (topic, PostgreSQL, InfluxDB)."""
    pipeline = await resources.ready(expected_start=_committed)
    await pipeline.outputs.publish(windows)


job_worker = JobWorker(
    settings, worker_id=resources.worker_id, sink=CallbackSink(_publish_job_windows)
)

# Faust's consumer would commit past offset jumps the pipeline has not repaired, and wait
# for acks without the state checkpoints they come with (agents/consumer_patches.py).
consumer_patches.install(resources)

# The readings topic's records skip Faust's per-record stream machinery (agents/intake.py).
intake = intake_module.Intake([settings.readings_topic], maxsize=4 * settings.batch_max)
intake_module.install(intake)


async def _after_batch(pipeline: ReadingPipeline) -> None:
    for tp, expected in pipeline.take_probes().items():
        pipeline.resolve_probe(tp, expected, await resources.first_offset_at(tp, expected))
    for (topic, partition), offset in pipeline.take_seeks().items():
        await app.consumer.seek(TP(topic, partition), offset)
    while pipeline.accepted_holes:
        (topic, partition), start, end = pipeline.accepted_holes.pop()
        await faust_add_gap(app.consumer, TP(topic, partition), start, end - 1)  # type: ignore[arg-type]


def _committed(tp: tuple[str, int]) -> int | None:
    """The committed offset (the next to read) of a partition, if this worker knows it."""
    try:
        value = app.consumer._committed_offset.get(TP(*tp))  # type: ignore[attr-defined]
    except AttributeError:
        return None
    return int(value) if value is not None else None


async def _fold(messages: list[Message], *, checkpoint: bool = False) -> asyncio.Future[None]:
    """Fold a batch; returns the future of its storing and of a state checkpoint after it
    (see ReadingPipeline.submit)."""
    pipeline = await resources.ready(expected_start=_committed)
    try:
        _, stored = await pipeline.submit(messages, checkpoint=checkpoint)
    except Exception as exc:
        await _stop_worker(exc)
        raise
    await _after_batch(pipeline)
    return stored


async def _stop_worker(exc: BaseException) -> None:
    # Crash-only: a batch that cannot be stored (e.g. a sink rejecting the data) stops
    # the worker instead of leaving it idle; offsets stay uncommitted, nothing is lost,
    # and the supervisor (`run`, compose, Kubernetes) shows and restarts it.
    logger.critical("stopping the worker: batch failed: %r", exc, exc_info=exc)
    await app.crash(exc)  # type: ignore[arg-type]


@app.agent(readings_topic)
async def subscribe_readings(stream: Any) -> None:
    """Subscribes the worker to the readings topic and acks its records; they arrive
    through the intake (process_readings), not through this stream."""
    async for _event in stream:  # pragma: no cover - the intake takes every record
        logger.warning("readings record on the Faust stream: %s", _event.message)


@app.task
async def process_readings() -> None:
    """Decode, route, fold and emit readings, a batch of records at a time."""
    while True:
        records = await intake.take(
            settings.batch_max, settings.batch_within, settings.batch_max_bytes
        )
        if not await _partitions_verified():
            return
        consumer: Any = app.consumer
        if not consumer.flow_active:
            # A rebalance (or recovery) is under way: Faust seeks back to the committed
            # offsets afterwards, so unacked records are read again by their owner.
            intake.drop()
            continue
        assigned = consumer.assignment()
        records = [r for r in records if r.tp in assigned]
        if not records:
            continue
        intake_module.track(consumer, records)
        stored = await _fold(
            [Message(r.topic, r.partition, r.offset, r.key, r.value or b"") for r in records]
        )
        # Acked once stored; meanwhile the next batch is folded.
        stored.add_done_callback(intake_module.ack_when_stored(consumer, records, _stop_worker))


@app.agent(repartition_topic)
async def process_repartitioned(stream: Any) -> None:
    """Readings that arrived on a partition other than their device's, rekeyed."""
    async for events in stream.take_events(settings.batch_max, within=settings.batch_within):
        # Its events are acked when the next batch is taken: store their states now.
        stored = await _fold(messages_from_events(events, repartitioned=True), checkpoint=True)
        try:
            await stored  # the stream acks these events when the next batch is taken
        except Exception as exc:
            await _stop_worker(exc)
            raise


@app.agent(jobs_topic)
async def receive_jobs(stream: Any) -> None:
    """Job requests from the API: queued for this worker's job loop, which runs one job
    at a time in its own task, so this agent (and the offsets it commits) never waits."""
    async for value in stream:
        job_worker.submit(value)


@app.task
async def start_job_loop() -> None:
    job_worker.start()


schedule_timer(app, job_worker, settings, "rollup", settings.schedule_rollup)
schedule_timer(app, job_worker, settings, "anomaly_review", settings.schedule_anomaly_review)
schedule_timer(app, job_worker, settings, "cleanup", settings.schedule_cleanup)


@app.timer(interval=settings.job_reconcile_interval)
async def fail_stale_jobs() -> None:
    """Fail running jobs whose worker stopped sending heartbeats (it died)."""
    await job_worker.mark_stale()


_verified = False


async def _partitions_verified() -> bool:
    """Stop the worker if the readings topic's partitions do not match TOPIC_PARTITIONS
    (device state is keyed by them); a misconfigured worker must not sit idle as if healthy."""
    global _verified
    if _verified:
        return True
    try:
        _verified = resources.check_partitions(app)
    except PartitionMismatch as exc:
        logger.critical("stopping the worker: %s", exc)
        await app.crash(exc)
        return False
    return True


@app.timer(interval=2.0)
async def verify_partitions() -> None:
    await _partitions_verified()


@app.timer(interval=max(1.0, min(settings.idle_flush / 4, 15.0)))
async def idle_flush() -> None:
    """Emit the windows of devices that have been quiet for IDLE_FLUSH seconds."""
    if resources.started:
        pipeline = await resources.ready()
        await pipeline.flush_idle(settings.idle_flush)


@app.timer(interval=0.5)
async def checkpoint_states() -> None:
    """Write the device states of the batches folded since the last checkpoint when
    STATE_INTERVAL seconds have passed and no batch came to do it."""
    if resources.started:
        pipeline = await resources.ready()
        await pipeline.checkpoint_states()


@app.timer(interval=settings.stats_interval)
async def publish_stats() -> None:
    """Write this worker's counters for the API's /api/v1/stats."""
    if resources.started:
        await resources.publish_stats(app)


@app.timer(interval=settings.anomaly_checkpoint_interval)
async def checkpoint_anomaly_models() -> None:
    """Save the per-partition anomaly models that learned since their last checkpoint."""
    if resources.started:
        pipeline = await resources.ready()
        await pipeline.checkpoint_models()


@app.on_partitions_revoked.connect  # type: ignore[arg-type]
async def _on_revoked(sender: Any, revoked: Any, **_: Any) -> None:
    dropped = intake.drop((tp.topic, tp.partition) for tp in revoked)
    if dropped:
        logger.info("revoked partitions: %s fetched records dropped, read again later", dropped)
    if resources.started:
        pipeline = await resources.ready()
        pipeline.forget_partitions((tp.topic, tp.partition) for tp in revoked)
        await pipeline.release_partitions(
            tp.partition for tp in revoked if tp.topic == settings.readings_topic
        )


@app.on_before_shutdown.connect  # type: ignore[arg-type]
async def _on_shutdown(sender: Any, **_: Any) -> None:
    await job_worker.stop()
    if resources.started:
        pipeline = await resources.ready()
        try:
            await pipeline.checkpoint_states(force=True)
            await pipeline.drain()
        except Exception as exc:  # the worker stops anyway; the records stay unacked
            logger.warning("states not stored at shutdown: %r", exc)
        await pipeline.checkpoint_models()
    await resources.close()


def main() -> None:
    """``python -m agents.app worker`` works like ``faust -A agents.app worker``, without
    Faust's web server unless a ``--web-*`` option asks for it (several workers share a host)."""
    argv = sys.argv
    if "worker" in argv and not any(a.startswith(("--web", "--with")) for a in argv):
        argv.append("--without-web")
    app.main()


if __name__ == "__main__":
    main()
