"""GET /api/v1/stats: sums of worker counters, staleness, consumer lag, outages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from api.kafka import PartitionOffsets
from api.stats import partition_lag
from models.api import StatsResponse
from tests.api.fakes import FakeKafka, FakeStatsStore


def worker(worker_id: str, age_s: float, **stats: object) -> dict[str, object]:
    return {
        "worker_id": worker_id,
        "updated_at": datetime.now(UTC) - timedelta(seconds=age_s),
        "stats": stats,
    }


def test_sums_counters_and_flags_stale_workers(
    client: TestClient, stats_store: FakeStatsStore
) -> None:
    stats_store.records = [
        worker(
            "w-b",
            5,
            readings_received=100,
            readings_accepted=90,
            rejected_by_reason={"late": 4, "invalid_json": 1},
            duplicates=5,
            spikes=0,
            windows_emitted=10,
            windows_revised=2,
            rate_per_s_1m=12.5,
            partitions={"energy.readings:0": {"lag": 3}},
            sink={"postgres": "ok"},
            custom_counter=7,
        ),
        worker(
            "w-a",
            600,
            readings_received=50,
            readings_accepted=45,
            rejected_by_reason={"late": 1, "out_of_range": 2},
            duplicates=2,
            windows_emitted=4,
            rate_per_s_1m=99.0,
            partitions={"energy.readings:0": {"lag": 100}},
            custom_counter=1,
            flag=True,
        ),
    ]
    response = client.get("/api/v1/stats")
    assert response.status_code == 200, response.text
    body = response.json()
    StatsResponse.model_validate(body)
    totals = body["totals"]
    assert totals["readings_received"] == 150
    assert totals["readings_accepted"] == 135
    assert totals["rejected_by_reason"] == {"late": 5, "invalid_json": 1, "out_of_range": 2}
    assert totals["readings_rejected"] == 8
    assert totals["duplicates"] == 7
    assert totals["spikes"] == 0
    assert totals["windows_emitted"] == 14
    assert totals["windows_revised"] == 2
    assert totals["rate_per_s_1m"] == 12.5  # the stale worker's rate is not current
    assert totals["custom_counter"] == 8
    assert "partitions" not in totals and "sink" not in totals and "flag" not in totals
    assert [w["worker_id"] for w in body["workers"]] == ["w-a", "w-b"]
    stale = {w["worker_id"]: w["stale"] for w in body["workers"]}
    assert stale == {"w-a": True, "w-b": False}
    assert body["workers_total"] == 2 and body["workers_fresh"] == 1
    assert body["workers"][1]["stats"]["sink"] == {"postgres": "ok"}
    assert body["workers"][1]["updated_at"].endswith("Z")
    assert 4 <= body["workers"][1]["age_s"] < 60
    assert body["stale_after_s"] == 60


def test_no_workers_gives_zero_totals(client: TestClient) -> None:
    body = client.get("/api/v1/stats").json()
    assert body["workers"] == []
    assert body["totals"]["readings_received"] == 0
    assert body["totals"]["rejected_by_reason"] == {}


def test_naive_or_text_timestamps_and_malformed_records(
    client: TestClient, stats_store: FakeStatsStore
) -> None:
    now = datetime.now(UTC)
    stats_store.records = [
        {"worker_id": "naive", "updated_at": now.replace(tzinfo=None), "stats": {"spikes": 1}},
        {"worker_id": "text", "updated_at": now.isoformat(), "stats": {"spikes": 2}},
        {"worker_id": "broken", "updated_at": "not a time", "stats": {"spikes": 100}},
        {"worker_id": "missing"},
    ]
    response = client.get("/api/v1/stats")
    assert response.status_code == 200, response.text
    body = response.json()
    assert [w["worker_id"] for w in body["workers"]] == ["naive", "text"]
    assert body["totals"]["spikes"] == 3


def test_consumer_lag_from_the_broker(
    client: TestClient, kafka: FakeKafka, settings: object
) -> None:
    kafka.offsets = [
        PartitionOffsets(partition=0, beginning=0, end=120, committed=100),
        PartitionOffsets(partition=1, beginning=10, end=50, committed=None),
        PartitionOffsets(partition=2, beginning=0, end=7, committed=9),
    ]
    lag = client.get("/api/v1/stats").json()["consumer_lag"]
    assert kafka.asked == [("energy-test", "test.readings")]
    assert lag == {
        "group": "energy-test",
        "topic": "test.readings",
        "partitions": [
            {"partition": 0, "end_offset": 120, "committed_offset": 100, "lag": 20},
            {"partition": 1, "end_offset": 50, "committed_offset": None, "lag": 40},
            {"partition": 2, "end_offset": 7, "committed_offset": 9, "lag": 0},
        ],
        "total_lag": 60,
        "error": None,
    }


def test_broker_down_gives_null_lag_with_error_never_500(
    client: TestClient, kafka: FakeKafka, stats_store: FakeStatsStore
) -> None:
    kafka.down = True
    stats_store.records = [worker("w", 1, readings_received=3)]
    response = client.get("/api/v1/stats")
    assert response.status_code == 200
    body = response.json()
    assert body["consumer_lag"]["total_lag"] is None
    assert body["consumer_lag"]["partitions"] == []
    assert "connection refused" in body["consumer_lag"]["error"]
    assert body["totals"]["readings_received"] == 3


def test_stats_store_outage_is_503(client: TestClient, stats_store: FakeStatsStore) -> None:
    stats_store.error = ConnectionResetError("gone")
    response = client.get("/api/v1/stats")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Database unavailable"


def test_partition_lag_clamps_when_end_is_below_the_commit() -> None:
    assert partition_lag(PartitionOffsets(0, 0, 5, 8)).lag == 0
    assert partition_lag(PartitionOffsets(0, 3, 5, None)).lag == 2
