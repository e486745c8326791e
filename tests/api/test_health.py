"""/health does no I/O; /ready names every dependency that is down."""

from __future__ import annotations

import asyncio

from starlette.testclient import TestClient

from api.app import create_app
from models.api import HealthResponse, ReadyResponse
from service.settings import Settings
from tests.api.fakes import FakeKafka, FakeReader, FakeStatsStore


def test_health_is_ok_without_touching_dependencies(
    client: TestClient, reader: FakeReader, kafka: FakeKafka
) -> None:
    reader.ping_error = ConnectionRefusedError("db down")
    kafka.down = True
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    HealthResponse.model_validate_json(response.content)
    assert reader.pings == 0


def test_ready_when_everything_answers(client: TestClient, reader: FakeReader) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    body = ReadyResponse.model_validate_json(response.content)
    assert body.status == "ready"
    assert set(body.checks) == {"broker", "database", "sinks"}
    assert all(check.status == "up" and check.error is None for check in body.checks.values())
    assert body.down == []
    assert reader.pings == 1


def test_ready_503_names_the_database(client: TestClient, reader: FakeReader) -> None:
    reader.ping_error = ConnectionRefusedError("connection refused")
    response = client.get("/ready")
    assert response.status_code == 503
    body = ReadyResponse.model_validate_json(response.content)
    assert body.status == "not_ready"
    assert body.down == ["database"]
    assert body.checks["broker"].status == "up"
    database = body.checks["database"]
    assert database.status == "down"
    assert database.error == "ConnectionRefusedError: connection refused"


def test_ready_503_names_the_broker(client: TestClient, kafka: FakeKafka) -> None:
    kafka.down = True
    body = client.get("/ready").json()
    assert body["down"] == ["broker"]
    assert "connection refused" in body["checks"]["broker"]["error"]


def test_ready_503_names_both(client: TestClient, kafka: FakeKafka, reader: FakeReader) -> None:
    kafka.down = True
    reader.ping_error = OSError("no route")
    response = client.get("/ready")
    assert response.status_code == 503
    assert response.json()["down"] == ["broker", "database"]


def test_a_hanging_check_times_out(settings: Settings) -> None:
    async def hang() -> None:
        await asyncio.sleep(30)

    async def fine() -> None:
        return None

    app = create_app(
        settings,
        reader=FakeReader(),
        stats_store=FakeStatsStore(),
        kafka=FakeKafka(),
        readiness={"database": hang, "broker": fine},
        check_timeout_s=0.2,
    )
    with TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["down"] == ["database"]
    assert body["checks"]["database"]["error"] == "no answer within 0.2 s"
    assert body["checks"]["database"]["latency_ms"] < 5000


def test_kafka_inspector_is_closed_by_the_lifespan_only_if_created_there(
    settings: Settings,
) -> None:
    injected = FakeKafka()
    app = create_app(settings, reader=FakeReader(), stats_store=FakeStatsStore(), kafka=injected)
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
    assert injected.closed is False  # the caller owns what it injected


def test_ready_503_while_a_worker_reports_a_sink_outage(
    client: TestClient, stats_store: FakeStatsStore
) -> None:
    asyncio.run(
        stats_store.save_worker_stats(
            "w-1",
            {
                "sinks": {
                    "postgres": {
                        "healthy": False,
                        "outage_since": "2026-11-27T08:00:00Z",
                        "last_error": "connection refused",
                    },
                    "influxdb": {"healthy": True},
                }
            },
        )
    )
    body = client.get("/ready").json()
    assert body["down"] == ["sinks"]
    assert (
        "postgres down since 2026-11-27T08:00:00Z on worker w-1: connection refused"
        in body["checks"]["sinks"]["error"]
    )
    asyncio.run(stats_store.save_worker_stats("w-1", {"sinks": {"postgres": {"healthy": True}}}))
    assert client.get("/ready").status_code == 200


def test_stale_worker_reports_do_not_fail_readiness(
    client: TestClient, stats_store: FakeStatsStore
) -> None:
    from datetime import UTC, datetime, timedelta

    stats_store.records.append(
        {
            "worker_id": "gone",
            "updated_at": datetime.now(UTC) - timedelta(minutes=5),
            "stats": {"sinks": {"postgres": {"healthy": False}}},
        }
    )
    assert client.get("/ready").status_code == 200
