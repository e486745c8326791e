"""The API over the real stack: windows written by PostgresSink, read back over HTTP.

The app is built without injected stores, as ``uvicorn api.app:create_app --factory`` builds
it: its lifespan opens its own pool on DATABASE_URL and its own Kafka clients.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app, database_dsn
from models.api import MetricItem, MetricsResponse, StatsResponse
from models.metrics import WindowAggregate
from service.embedded.postgres import EmbeddedPostgres
from service.ports import free_port
from service.settings import Settings
from storage.postgres_repository import PostgresRepository
from storage.postgres_sink import PostgresSink
from tests.api.fakes import T0, window
from tests.api.tokens import AUTH_ENV, AUTH_SETTINGS, bearer

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = pytest.mark.integration
URL = "/api/v1/metrics"


@contextmanager
def serving(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False, headers=bearer()) as client:
        yield client


def stack_settings(tmp_path: Path, dsn: str, bootstrap: str, **overrides: Any) -> Settings:
    return Settings(
        database_url=SecretStr(dsn),
        kafka_broker_url=bootstrap,
        data_dir=tmp_path,
        **(AUTH_SETTINGS | overrides),
    )


def expected_json(windows: list[WindowAggregate]) -> list[dict[str, Any]]:
    ordered = sorted(windows, key=lambda w: (w.device_id, w.period, w.window_start))
    payloads = [MetricItem.payload(w) for w in ordered]
    loaded: list[dict[str, Any]] = orjson.loads(orjson.dumps(payloads, option=orjson.OPT_UTC_Z))
    return loaded


def all_pages(client: TestClient, params: dict[str, str]) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        response = client.get(URL, params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        body = MetricsResponse.model_validate_json(response.content)
        items += response.json()["items"]
        pages += 1
        cursor = body.next_cursor
        if cursor is None:
            return items, pages


@pytest.fixture
def stored() -> list[WindowAggregate]:
    hourly = [
        window(
            device_id=device,
            start=T0 + timedelta(hours=h),
            energy_kwh=0.1 * (h + 1),
            cost=f"{h}.123456789",
            is_anomaly=(device == "meter:b" and h == 2),
        )
        for device in ("meter:a", "meter:b", "plug.c")
        for h in range(4)
    ]
    daily = [
        window(device_id=device, period="day", start=T0, hours=24, cost="7.000000001")
        for device in ("meter:a", "plug.c")
    ]
    return hourly + daily


async def test_windows_written_by_the_sink_are_served(
    pg_pool: Any,
    pg_database: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    stored: list[WindowAggregate],
) -> None:
    sink = PostgresSink(pg_pool)
    await sink.start()
    # An empty window (no readings, no energy) is stored but never served.
    empty = window(device_id="meter:a", start=T0 - timedelta(hours=1), energy_kwh=0.0)
    empty = empty.model_copy(update={"reading_count": 0, "power_reading_count": 0})
    await sink.write([*stored, empty])
    # A revision replaces the stored window; a replay of the old one changes nothing.
    revised = stored[0].model_copy(
        update={"energy_kwh": 9.5, "cost": Decimal("2.850000000"), "revision": 1}
    )
    await sink.write([revised])
    await sink.write([stored[0]])
    current = [revised, *stored[1:]]

    with serving(stack_settings(tmp_path, pg_database, kafka_bootstrap)) as client:
        items, pages = all_pages(client, {"limit": "5"})
        assert items == expected_json(current)
        assert pages == 3  # 14 windows, 5 per page
        first_hour = next(i for i in items if (i["device_id"], i["period"]) == ("meter:a", "hour"))
        assert (first_hour["revision"], first_hour["cost"]) == (1, "2.850000000")
        assert first_hour["window_start"] == "2024-03-01T00:00:00Z"  # not the empty window

        only_b, _ = all_pages(client, {"device_id": "meter:b", "period": "hour"})
        assert [i["window_start"] for i in only_b] == [
            "2024-03-01T00:00:00Z",
            "2024-03-01T01:00:00Z",
            "2024-03-01T02:00:00Z",
            "2024-03-01T03:00:00Z",
        ]
        ranged, _ = all_pages(
            client,
            {
                "period": "hour",
                "start": "2024-03-01T02:00:00+01:00",  # 01:00Z, inclusive
                "end": "2024-03-01T03:00:00Z",  # exclusive
                "limit": "1",
            },
        )
        assert [(i["device_id"], i["window_start"]) for i in ranged] == [
            (device, f"2024-03-01T0{h}:00:00Z")
            for device in ("meter:a", "meter:b", "plug.c")
            for h in (1, 2)
        ]
        flagged, _ = all_pages(client, {"anomalies_only": "true"})
        assert [(i["device_id"], i["window_start"]) for i in flagged] == [
            ("meter:b", "2024-03-01T02:00:00Z")
        ]
        days, _ = all_pages(client, {"period": "day"})
        assert [(i["device_id"], i["cost"]) for i in days] == [
            ("meter:a", "7.000000001"),
            ("plug.c", "7.000000001"),
        ]
        bad = client.get(URL, params={"cursor": "bm90IGEgY3Vyc29y"})
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"] == "cursor"


async def test_ready_and_stats_on_the_real_stack(
    pg_pool: Any,
    pg_database: str,
    kafka_bootstrap: str,
    topic_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    from tests.api.test_kafka import make_topic, produce

    topic, group = topic_name("readings"), topic_name("group")
    await make_topic(kafka_bootstrap, topic, 2)
    await produce(kafka_bootstrap, topic, {0: 2, 1: 1})
    repository = PostgresRepository(pg_pool)
    await repository.save_worker_stats(
        "worker-1",
        {"readings_received": 10, "rejected_by_reason": {"late": 2}, "rate_per_s_1m": 1.5},
    )
    await repository.save_worker_stats("worker-2", {"readings_received": 5})
    settings = stack_settings(
        tmp_path, pg_database, kafka_bootstrap, readings_topic=topic, app_id=group
    )
    with serving(settings) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"]["status"] == "up"
        assert ready.json()["checks"]["broker"]["status"] == "up"
        response = client.get("/api/v1/stats")
    assert response.status_code == 200, response.text
    body = StatsResponse.model_validate_json(response.content)
    assert body.totals.readings_received == 15
    assert body.totals.readings_rejected == 2
    assert body.totals.rate_per_s_1m == 1.5
    assert [(w.worker_id, w.stale) for w in body.workers] == [
        ("worker-1", False),
        ("worker-2", False),
    ]
    assert body.consumer_lag.error is None
    assert body.consumer_lag.total_lag == 3
    assert [(p.partition, p.lag) for p in body.consumer_lag.partitions] == [(0, 2), (1, 1)]


def test_database_down_starts_anyway_and_says_so(tmp_path: Path, kafka_bootstrap: str) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/energy"
    with serving(stack_settings(tmp_path, dead, kafka_bootstrap)) as client:
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["down"] == ["database"]
        metrics = client.get(URL)
        assert metrics.status_code == 503
        assert metrics.headers["content-type"] == "application/problem+json"
        assert metrics.json()["title"] == "Database unavailable"
        assert client.get("/api/v1/stats").status_code == 503


def test_broker_down_is_named_and_stats_still_answer(tmp_path: Path, pg_database: str) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with serving(stack_settings(tmp_path, pg_database, dead)) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["down"] == ["broker"]
        stats = client.get("/api/v1/stats")
        assert stats.status_code == 200
        assert stats.json()["consumer_lag"]["total_lag"] is None
        assert dead in stats.json()["consumer_lag"]["error"]


def test_factory_without_arguments_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_database: str, kafka_bootstrap: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_database)
    monkeypatch.setenv("KAFKA_BROKER_URL", kafka_bootstrap)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for name, value in AUTH_ENV.items():
        monkeypatch.setenv(name, value)
    with TestClient(create_app(), headers=bearer()) as client:
        assert client.get("/ready").status_code == 200
        assert client.get(URL).json() == {"items": [], "next_cursor": None}


def test_without_database_url_the_embedded_server_is_used(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url=None)
    assert database_dsn(settings) == EmbeddedPostgres(tmp_path / "postgres").dsn()
    assert (
        database_dsn(Settings(database_url=SecretStr("postgresql://u@h/db")))
        == "postgresql://u@h/db"
    )


def test_timestamps_survive_the_database_as_utc(stored: list[WindowAggregate]) -> None:
    # Guard for the expectation above: payload timestamps are UTC datetimes.
    for key in ("window_start", "first_ts"):
        moment = MetricItem.payload(stored[0])[key]
        assert isinstance(moment, datetime) and moment.utcoffset() == timedelta(0)
    assert stored[0].window_start.tzinfo is UTC
