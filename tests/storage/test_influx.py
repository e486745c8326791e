"""InfluxSink request shapes and error mapping, against a scripted HTTP server."""

from __future__ import annotations

import email.utils
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from service.ports import free_port
from storage.base import SinkRejected, SinkUnavailable
from storage.influx import InfluxSink, retry_after_seconds, to_line
from tests.storage.helpers import window


@dataclass
class ScriptedInflux:
    """Answers each write with the next scripted (status, headers, body); 204 when empty."""

    url: str = ""
    script: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], list[str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        self.requests.append((dict(request.query), body.split("\n")))
        status, headers, text = self.script.pop(0) if self.script else (204, {}, "")
        return web.Response(status=status, headers=headers, text=text or None)


@pytest.fixture
async def influx() -> AsyncIterator[ScriptedInflux]:
    scripted = ScriptedInflux()
    app = web.Application()
    app.router.add_post("/api/v2/write", scripted.handle)
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    scripted.url = str(server.make_url("")).rstrip("/")
    try:
        yield scripted
    finally:
        await server.close()


@pytest.fixture
async def client(influx: ScriptedInflux) -> AsyncIterator[Any]:
    made: Any = InfluxDBClientAsync(url=influx.url, token="secret", org="energy")
    try:
        yield made
    finally:
        await made.close()


def test_line_carries_identity_fields_and_nanoseconds() -> None:
    line = to_line(window("dev-1", "hour", 0))
    assert line == (
        "energy_window,device_id=dev-1,period=hour "
        "reading_count=12i,revision=0i,energy_kwh=0.25,cost=0.075,coverage=0.5,"
        "power_mean_w=250.0,power_min_w=100.0,power_max_w=400.0 1709251200000000000"
    )


def test_line_optional_fields() -> None:
    line = to_line(window(power=None, anomaly_score=0.5, is_anomaly=True))
    assert "power_mean_w" not in line
    assert ",anomaly_score=0.5,is_anomaly=true " in line
    assert "is_anomaly=false" in to_line(window(is_anomaly=False))


def test_line_escapes_tags_and_drops_non_finite_values() -> None:
    odd = window().model_copy(update={"device_id": "a b,c=d", "anomaly_score": float("nan")})
    line = to_line(odd)
    assert line.startswith("energy_window,device_id=a\\ b\\,c\\=d,period=hour ")
    assert "anomaly_score" not in line


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    parsed = retry_after_seconds(later)
    assert parsed is not None and 25 <= parsed <= 31


async def test_one_request_per_chunk(influx: ScriptedInflux, client: Any) -> None:
    sink = InfluxSink(client, org="energy", bucket="metrics", chunk_size=10)
    batch = [window("d", "hour", i) for i in range(25)]
    await sink.write(batch)
    assert [len(lines) for _, lines in influx.requests] == [10, 10, 5]
    params, lines = influx.requests[0]
    assert params["org"] == "energy"
    assert params["bucket"] == "metrics"
    assert params["precision"] == "ns"
    assert lines[0] == to_line(batch[0])


async def test_an_empty_batch_sends_nothing(influx: ScriptedInflux, client: Any) -> None:
    await InfluxSink(client, org="energy", bucket="metrics").write([])
    assert influx.requests == []


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        (503, {}, None),
        (500, {"Retry-After": "3"}, 3.0),
        (429, {"Retry-After": "7"}, 7.0),
    ],
)
async def test_server_errors_and_throttling_are_unavailable(
    influx: ScriptedInflux,
    client: Any,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    influx.script.append((status, headers, '{"code":"x","message":"busy"}'))
    sink = InfluxSink(client, org="energy", bucket="metrics")
    with pytest.raises(SinkUnavailable) as caught:
        await sink.write([window()])
    assert caught.value.retry_after == retry_after
    assert str(status) in caught.value.detail
    await sink.write([window()])  # the next attempt goes through


@pytest.mark.parametrize("status", [400, 401, 404, 413, 422])
async def test_other_client_errors_are_rejections(
    influx: ScriptedInflux, client: Any, status: int
) -> None:
    influx.script.append((status, {}, '{"code":"invalid","message":"unable to parse"}'))
    with pytest.raises(SinkRejected, match=str(status)):
        await InfluxSink(client, org="energy", bucket="metrics").write([window()])


async def test_a_failed_chunk_fails_the_write(influx: ScriptedInflux, client: Any) -> None:
    influx.script.extend([(204, {}, ""), (503, {}, "")])
    sink = InfluxSink(client, org="energy", bucket="metrics", chunk_size=2)
    with pytest.raises(SinkUnavailable):
        await sink.write([window("d", "hour", i) for i in range(5)])
    assert len(influx.requests) == 2  # the third chunk was not attempted


async def test_nothing_listening_is_unavailable() -> None:
    closed: Any = InfluxDBClientAsync(url=f"http://127.0.0.1:{free_port()}", token="t", org="o")
    try:
        with pytest.raises(SinkUnavailable, match="influxdb"):
            await InfluxSink(closed, org="o", bucket="b").write([window()])
    finally:
        await closed.close()


def test_chunk_size_must_be_positive(client: Any) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        InfluxSink(client, org="o", bucket="b", chunk_size=0)
