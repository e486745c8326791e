"""``GET /metrics``: the service in Prometheus text format.

Workers publish cumulative counters to PostgreSQL (``worker_stats``); the API turns them
into metric families with a ``worker`` label at each scrape, so one scrape target covers any
number of workers. Counters of a stopped worker keep their last value (its series simply
stops growing); gauges (rates, sink health, latency) come only from workers seen within
``STALE_AFTER_S``. Consumer lag is measured by the API, like ``/api/v1/stats``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeGuard

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

from api.state import AppState
from api.stats import STALE_AFTER_S, consumer_lag, load_worker_stats, parse_workers
from models.api import ConsumerLag, WorkerStats

log = logging.getLogger(__name__)

# (stats key, metric name without _total, help)
COUNTERS: tuple[tuple[str, str, str], ...] = (
    (
        "readings_received",
        "energy_readings_received",
        "Readings received (array elements count one each).",
    ),
    ("readings_accepted", "energy_readings_accepted", "Readings accepted into the windows."),
    ("duplicates", "energy_readings_duplicates", "Duplicate readings dropped (first one wins)."),
    ("spikes", "energy_readings_spikes", "Counter spikes ignored."),
    ("windows_emitted", "energy_windows_emitted", "Window aggregates emitted (all periods)."),
    (
        "windows_revised",
        "energy_windows_revised",
        "Window aggregates re-emitted with a higher revision.",
    ),
    ("forwarded", "energy_readings_forwarded", "Readings forwarded to their device's partition."),
    (
        "redelivered",
        "energy_messages_redelivered",
        "Messages delivered twice by the consumer and skipped.",
    ),
    ("batches", "energy_batches", "Message batches folded."),
)


class _Snapshot:
    """A collector over one scrape's data (registered in a throwaway registry)."""

    def __init__(
        self,
        workers: Sequence[WorkerStats],
        lag: ConsumerLag,
        jobs: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.workers = workers
        self.lag = lag
        self.jobs = list(jobs)

    def collect(self) -> Iterator[Metric]:
        workers = self.workers
        for key, name, text in COUNTERS:
            family = CounterMetricFamily(name, text, labels=["worker"])
            for worker in workers:
                value = worker.stats.get(key)
                if _number(value):
                    family.add_metric([worker.worker_id], float(value))
            yield family
        rejected = CounterMetricFamily(
            "energy_readings_rejected",
            "Readings dead-lettered, by reason.",
            labels=["worker", "reason"],
        )
        for worker in workers:
            by_reason = worker.stats.get("rejected_by_reason")
            if isinstance(by_reason, Mapping):
                for reason, value in sorted(by_reason.items()):
                    if _number(value):
                        rejected.add_metric([worker.worker_id, str(reason)], float(value))
        yield rejected
        yield from self._anomaly(workers)
        yield from self._worker_gauges([w for w in workers if not w.stale])
        yield from self._lag()
        yield from self._jobs()

    def _anomaly(self, workers: Sequence[WorkerStats]) -> Iterator[Metric]:
        scored = CounterMetricFamily(
            "energy_anomaly_windows_scored", "Hour and day windows scored.", labels=["worker"]
        )
        flagged = CounterMetricFamily(
            "energy_anomaly_windows_flagged", "Windows flagged anomalous.", labels=["worker"]
        )
        for worker in workers:
            anomaly = worker.stats.get("anomaly")
            if not isinstance(anomaly, Mapping):
                continue
            if _number(anomaly.get("windows_scored")):
                scored.add_metric([worker.worker_id], float(anomaly["windows_scored"]))
            if _number(anomaly.get("windows_flagged")):
                flagged.add_metric([worker.worker_id], float(anomaly["windows_flagged"]))
        yield scored
        yield flagged

    def _worker_gauges(self, fresh: Sequence[WorkerStats]) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "energy_worker_up",
            f"1 for each worker that reported within {STALE_AFTER_S:g} s.",
            labels=["worker"],
        )
        rate = GaugeMetricFamily(
            "energy_worker_readings_per_second",
            "Readings received per second over the last minute.",
            labels=["worker"],
        )
        devices = GaugeMetricFamily(
            "energy_worker_devices", "Devices whose state the worker holds.", labels=["worker"]
        )
        healthy = GaugeMetricFamily(
            "energy_sink_healthy",
            "1 when the sink's last write succeeded.",
            labels=["worker", "sink"],
        )
        latency = GaugeMetricFamily(
            "energy_sink_write_latency_seconds",
            "Duration of the sink's last successful write.",
            labels=["worker", "sink"],
        )
        pending = GaugeMetricFamily(
            "energy_sink_pending_batches",
            "Batches held while the sink is down.",
            labels=["worker", "sink"],
        )
        writes = CounterMetricFamily(
            "energy_sink_writes", "Sink writes.", labels=["worker", "sink"]
        )
        failures = CounterMetricFamily(
            "energy_sink_failures",
            "Failed sink write attempts (retried).",
            labels=["worker", "sink"],
        )
        for worker in fresh:
            wid = worker.worker_id
            up.add_metric([wid], 1.0)
            stats = worker.stats
            if _number(stats.get("rate_per_s_1m")):
                rate.add_metric([wid], float(stats["rate_per_s_1m"]))
            if _number(stats.get("devices")):
                devices.add_metric([wid], float(stats["devices"]))
            sinks = stats.get("sinks")
            if not isinstance(sinks, Mapping):
                continue
            for sink, info in sorted(sinks.items()):
                if not isinstance(info, Mapping):
                    continue
                labels = [wid, str(sink)]
                healthy.add_metric(labels, 1.0 if info.get("healthy") else 0.0)
                if _number(info.get("last_write_latency_s")):
                    latency.add_metric(labels, float(info["last_write_latency_s"]))
                if _number(info.get("pending_batches")):
                    pending.add_metric(labels, float(info["pending_batches"]))
                if _number(info.get("writes")):
                    writes.add_metric(labels, float(info["writes"]))
                if _number(info.get("failures")):
                    failures.add_metric(labels, float(info["failures"]))
        yield from (up, rate, devices, healthy, latency, pending, writes, failures)

    def _lag(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "energy_consumer_lag",
            "Messages of the readings topic not yet processed by the worker group.",
            labels=["topic", "partition"],
        )
        for partition in self.lag.partitions:
            lag.add_metric([self.lag.topic, str(partition.partition)], float(partition.lag))
        yield lag
        measured = GaugeMetricFamily(
            "energy_consumer_lag_measured", "1 when the API could measure consumer lag."
        )
        measured.add_metric([], 0.0 if self.lag.total_lag is None else 1.0)
        yield measured

    def _jobs(self) -> Iterator[Metric]:
        """``jobs``: rows with ``kind``, ``status``, ``count`` and, for finished jobs,
        ``duration_sum`` and ``duration_count`` (seconds)."""
        counts = GaugeMetricFamily(
            "energy_jobs", "Jobs by status and kind.", labels=["kind", "status"]
        )
        durations = SummaryMetricFamily(
            "energy_job_duration_seconds", "Execution time of finished jobs.", labels=["kind"]
        )
        by_kind: dict[str, tuple[int, float]] = {}
        for row in self.jobs:
            counts.add_metric([str(row["kind"]), str(row["status"])], float(row["count"]))
            count, total = by_kind.get(str(row["kind"]), (0, 0.0))
            by_kind[str(row["kind"])] = (
                count + int(row.get("duration_count") or 0),
                total + float(row.get("duration_sum") or 0.0),
            )
        for kind, (count, total) in sorted(by_kind.items()):
            durations.add_metric([kind], count_value=count, sum_value=total)
        yield counts
        yield durations


def exposition(
    workers: Sequence[WorkerStats], lag: ConsumerLag, jobs: Iterable[Mapping[str, Any]] = ()
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(workers, lag, jobs))  # type: ignore[arg-type]
    return generate_latest(registry)


async def prometheus_metrics(request: Request[AppState]) -> Response:
    state = request.state
    settings = state["settings"]
    records, lag = await asyncio.gather(
        load_worker_stats(state),
        consumer_lag(state["kafka"], settings.app_id, settings.readings_topic),
    )
    workers = parse_workers(records, datetime.now(UTC))
    jobs: list[Mapping[str, Any]] = []
    job_stats = getattr(state["stats_store"], "job_metrics", None)
    if job_stats is not None:
        try:
            jobs = await job_stats()
        except (OSError, TimeoutError) as exc:
            log.warning("job metrics unavailable", extra={"error": repr(exc)})
    return Response(exposition(workers, lag, jobs), media_type=CONTENT_TYPE_LATEST)


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
