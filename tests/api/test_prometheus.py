"""GET /metrics: worker counters, sink health, lag and jobs in Prometheus text format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from api.kafka import PartitionOffsets
from tests.api.fakes import FakeKafka, FakeStatsStore


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def record(worker_id: str, age_s: float, **stats: Any) -> dict[str, Any]:
    return {
        "worker_id": worker_id,
        "updated_at": datetime.now(UTC) - timedelta(seconds=age_s),
        "stats": stats,
    }


def test_counters_per_worker_gauges_only_for_fresh_workers_and_lag(
    client: TestClient, stats_store: FakeStatsStore, kafka: FakeKafka
) -> None:
    stats_store.records = [
        record(
            "w-1",
            2,
            readings_received=120,
            readings_accepted=100,
            rejected_by_reason={"late": 3, "invalid_json": 2},
            windows_emitted=40,
            rate_per_s_1m=8.5,
            anomaly={"windows_scored": 30, "windows_flagged": 2},
            sinks={
                "postgres": {
                    "healthy": False,
                    "last_write_latency_s": 0.02,
                    "writes": 9,
                    "failures": 4,
                    "pending_batches": 1,
                }
            },
        ),
        record(
            "w-old",
            900,
            readings_received=50,
            rate_per_s_1m=99.0,
            sinks={"postgres": {"healthy": True, "writes": 1}},
        ),
    ]
    kafka.offsets = [PartitionOffsets(0, 0, 100, 90), PartitionOffsets(1, 0, 10, None)]
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    assert got[("energy_readings_received_total", (("worker", "w-1"),))] == 120
    assert got[("energy_readings_received_total", (("worker", "w-old"),))] == 50
    assert got[("energy_readings_rejected_total", (("reason", "late"), ("worker", "w-1")))] == 3
    assert got[("energy_anomaly_windows_flagged_total", (("worker", "w-1"),))] == 2
    assert got[("energy_worker_readings_per_second", (("worker", "w-1"),))] == 8.5
    assert ("energy_worker_readings_per_second", (("worker", "w-old"),)) not in got
    assert got[("energy_sink_healthy", (("sink", "postgres"), ("worker", "w-1")))] == 0
    assert got[("energy_sink_failures_total", (("sink", "postgres"), ("worker", "w-1")))] == 4
    assert got[("energy_consumer_lag", (("partition", "0"), ("topic", "test.readings")))] == 10
    assert got[("energy_consumer_lag", (("partition", "1"), ("topic", "test.readings")))] == 10
    assert got[("energy_consumer_lag_measured", ())] == 1


def test_jobs_by_status_and_durations(client: TestClient, stats_store: FakeStatsStore) -> None:
    async def job_metrics() -> list[dict[str, Any]]:
        return [
            {
                "kind": "aggregate",
                "status": "succeeded",
                "count": 3,
                "duration_sum": 6.0,
                "duration_count": 3,
            },
            {
                "kind": "aggregate",
                "status": "running",
                "count": 1,
                "duration_sum": 0,
                "duration_count": 0,
            },
        ]

    stats_store.job_metrics = job_metrics  # type: ignore[attr-defined]
    got = samples(client.get("/metrics").text)
    assert got[("energy_jobs", (("kind", "aggregate"), ("status", "succeeded")))] == 3
    assert got[("energy_job_duration_seconds_sum", (("kind", "aggregate"),))] == 6.0
    assert got[("energy_job_duration_seconds_count", (("kind", "aggregate"),))] == 3


def test_unmeasured_lag_is_reported(client: TestClient, kafka: FakeKafka) -> None:
    kafka.down = True
    got = samples(client.get("/metrics").text)
    assert got[("energy_consumer_lag_measured", ())] == 0
