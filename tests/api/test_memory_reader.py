"""The API over storage's in-memory reader: the shared cursor codec and outage signalling."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import timedelta

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app
from service.settings import Settings
from storage.memory import MemorySink
from tests.api.fakes import T0, FakeKafka, window

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


@pytest.fixture
def memory() -> MemorySink:
    return MemorySink()


@pytest.fixture
def memory_client(
    settings: Settings, memory: MemorySink, auth_headers: dict[str, str]
) -> Iterator[TestClient]:
    app = create_app(settings, reader=memory, stats_store=memory, kafka=FakeKafka())
    with TestClient(app, raise_server_exceptions=False, headers=auth_headers) as client:
        yield client


async def test_pages_through_memory_sink(memory: MemorySink, memory_client: TestClient) -> None:
    await memory.write([window(start=T0 + timedelta(hours=h)) for h in range(5)])
    first = memory_client.get("/api/v1/metrics", params={"limit": "3"}).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = memory_client.get(
        "/api/v1/metrics", params={"limit": "3", "cursor": first["next_cursor"]}
    ).json()
    assert [i["window_start"][11:13] for i in first["items"] + second["items"]] == [
        "00",
        "01",
        "02",
        "03",
        "04",
    ]
    assert second["next_cursor"] is None


def test_sink_outage_is_503_everywhere_but_health(
    memory: MemorySink, memory_client: TestClient
) -> None:
    memory.unavailable = "maintenance"
    assert memory_client.get("/health").status_code == 200
    ready = memory_client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["down"] == ["database"]
    assert ready.json()["checks"]["database"]["error"] == "did not answer"
    metrics = memory_client.get("/api/v1/metrics")
    assert metrics.status_code == 503
    assert metrics.json()["detail"] == "maintenance"
    assert metrics.headers["retry-after"] == "5"
    assert memory_client.get("/api/v1/stats").status_code == 503
