"""The whole stream path over the real broker and PostgreSQL, compared with the oracle:
readings -> worker -> metrics table -> GET /api/v1/metrics; DLQ holds every rejection."""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app
from models.tariff import Tariff
from service.settings import Settings
from streams.timeparse import datetime_to_us, parse_rfc3339
from tests.integration.dataset import Dataset, build
from tests.integration.worker import WorkerProcess
from tests.oracle import compute
from tests.plugins.kafka import read_topic

with warnings.catch_warnings():  # Starlette prefers httpx2; httpx works the same
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TARIFF = Tariff.model_validate(
    {
        "currency": "EUR",
        "price_per_kwh": 0.30,
        "periods": [
            {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "17:00",
                "end": "21:00",
                "price_per_kwh": 0.45,
            },
            {"days": "all", "start": "00:00", "end": "06:00", "price_per_kwh": 0.18},
        ],
    }
)
ZONE = "Europe/Berlin"


@pytest.fixture
def worker_env(kafka_bootstrap: str, pg_database: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "KAFKA_BROKER_URL": kafka_bootstrap,
        "DATABASE_URL": pg_database,
        "APP_ID": f"test-{suffix}",
        "READINGS_TOPIC": f"t{suffix}.readings",
        "DLQ_TOPIC": f"t{suffix}.readings.dlq",
        "METRICS_TOPIC": f"t{suffix}.metrics",
        "ANOMALIES_TOPIC": f"t{suffix}.anomalies",
        "JOBS_TOPIC": f"t{suffix}.jobs",
        "IDLE_FLUSH": "2",
        "STATS_INTERVAL": "0.5",
        "TIMEZONE": ZONE,
        "TARIFF": TARIFF.model_dump_json(),
        "INFLUXDB_URL": "",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(worker_env, tmp_path / "worker.log")
    yield process
    process.stop()


async def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def fetch(dsn: str, query: str) -> list[Any]:
    connection = await asyncpg.connect(dsn)
    try:
        return list(await connection.fetch(query))
    finally:
        await connection.close()


async def stored_windows(dsn: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    rows = await fetch(
        dsn,
        "SELECT * FROM metrics WHERE period IN ('hour', 'day') AND (reading_count > 0 OR energy_kwh > 0)",
    )
    return {(r["device_id"], r["period"], datetime_to_us(r["window_start"])): dict(r) for r in rows}


def expected(data: Dataset) -> dict[tuple[str, str, int], dict[str, Any]]:
    oracle = compute(data.arrivals, timezone=ZONE, tariff=TARIFF)
    return {k: v for k, v in oracle.windows.items() if k[1] in ("hour", "day")}


def _us(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_rfc3339(value)
    return datetime_to_us(value)


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def differences(
    got: dict[tuple[str, str, int], dict[str, Any]],
    want: dict[tuple[str, str, int], dict[str, Any]],
) -> list[str]:
    problems = [f"missing {k}" for k in sorted(set(want) - set(got))][:10]
    problems += [f"unexpected {k}" for k in sorted(set(got) - set(want))][:10]
    for key in sorted(set(want) & set(got)):
        g, w = got[key], want[key]
        if g["reading_count"] != w["reading_count"]:
            problems.append(f"{key} reading_count {g['reading_count']} != {w['reading_count']}")
        for name in ("energy_kwh", "coverage", "power_mean_w", "power_min_w", "power_max_w"):
            if not close(g[name], w[name]):
                problems.append(f"{key} {name} {g[name]} != {w[name]}")
        if not close(float(g["cost"]), w["cost"]):
            problems.append(f"{key} cost {g['cost']} != {w['cost']}")
        for name in ("first_ts", "last_ts"):
            if _us(g[name]) != w[name]:
                problems.append(f"{key} {name} {g[name]} != {w[name]}")
    return problems


async def wait_for(
    dsn: str, want: dict[tuple[str, str, int], dict[str, Any]], within: float
) -> list[str]:
    deadline = time.monotonic() + within
    problems: list[str] = ["not checked"]
    while time.monotonic() < deadline:
        problems = differences(await stored_windows(dsn), want)
        if not problems:
            return []
        await asyncio.sleep(1.0)
    return problems


async def test_stream_to_postgres_and_api_equals_oracle_and_dlq_has_every_rejection(
    kafka_bootstrap: str, worker_env: dict[str, str], worker: WorkerProcess, pg_database: str
) -> None:
    data = build(seed=11, devices=8, now_s=time.time())
    want = expected(data)
    assert len(want) > 300
    worker.start()
    worker.wait_ready()
    await produce(kafka_bootstrap, worker_env["READINGS_TOPIC"], data.messages)
    problems = await wait_for(pg_database, want, within=float(os.environ.get("E2E_WAIT", "90")))
    assert not problems, "\n".join(problems[:20]) + "\n" + worker.tail()

    # The devices table: first and last accepted reading of each device, written at the
    # next state checkpoint (STATE_INTERVAL after the windows at the latest).
    spans: dict[str, tuple[int, int]] = {}
    for (device, period, _), window in want.items():
        if period == "hour" and window["first_ts"] is not None:
            lo, hi = spans.get(device, (window["first_ts"], window["last_ts"]))
            spans[device] = (min(lo, window["first_ts"]), max(hi, window["last_ts"]))
    deadline = time.monotonic() + 2 * float(worker_env.get("STATE_INTERVAL", "10")) + 10
    while True:
        rows = await fetch(
            pg_database, "SELECT device_id, first_seen, last_seen, last_reading FROM devices"
        )
        seen = {
            r["device_id"]: (datetime_to_us(r["first_seen"]), datetime_to_us(r["last_seen"]))
            for r in rows
        }
        if seen == spans or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert seen == spans
    assert all(r["last_reading"] for r in rows)

    # The API serves exactly the stored windows, field by field.
    settings = Settings(
        database_url=pg_database, kafka_broker_url=kafka_bootstrap, auth_disabled=True
    )
    # The app builds its own pool inside TestClient's event loop.
    app = create_app(settings)
    served: dict[tuple[str, str, int], dict[str, Any]] = {}
    with TestClient(app) as client:
        for period in ("hour", "day"):
            cursor = None
            while True:
                params: dict[str, Any] = {"period": period, "limit": 1000}
                if cursor:
                    params["cursor"] = cursor
                response = client.get("/api/v1/metrics", params=params)
                assert response.status_code == 200, response.text
                body = response.json()
                for item in body["items"]:
                    item["cost"] = Decimal(item["cost"])
                    key = (
                        item["device_id"],
                        item["period"],
                        parse_rfc3339(item["window_start"]),
                    )
                    served[key] = item
                cursor = body["next_cursor"]
                if not cursor:
                    break
    assert not differences(served, want)
    assert {k: parse_rfc3339(v["window_end"]) for k, v in served.items()} == {
        k: v["window_end"] for k, v in want.items()
    }

    # DLQ: every rejection, with its reason in the headers and the original bytes.
    oracle = compute(data.arrivals, timezone=ZONE, tariff=TARIFF)
    reasons = Counter(data.invalid)
    reasons["late"] += oracle.late
    records = await read_topic(kafka_bootstrap, worker_env["DLQ_TOPIC"], sum(reasons.values()))
    got = Counter(dict(r.headers)["reason"].decode() for r in records)
    assert got == reasons
    sent = {value for _, value in data.messages}
    assert all(r.value in sent for r in records if dict(r.headers)["reason"].decode() != "late")


async def test_worker_killed_mid_stream_resumes_without_loss_or_double_counting(
    kafka_bootstrap: str, worker_env: dict[str, str], worker: WorkerProcess, pg_database: str
) -> None:
    data = build(seed=23, devices=6, now_s=time.time())
    want = expected(data)
    topic = worker_env["READINGS_TOPIC"]
    thirds = len(data.messages) // 3
    parts = [
        data.messages[:thirds],
        data.messages[thirds : 2 * thirds],
        data.messages[2 * thirds :],
    ]

    worker.start()
    worker.wait_ready()
    await produce(kafka_bootstrap, topic, parts[0])
    await asyncio.sleep(3.0)  # some batches folded, state in the changelog, offsets committed
    worker.kill()

    await produce(kafka_bootstrap, topic, parts[1])  # arrives while no worker runs
    worker.start()
    worker.wait_ready()
    await asyncio.sleep(1.5)  # kill again while it catches up
    worker.kill()

    worker.start()
    worker.wait_ready()
    await produce(kafka_bootstrap, topic, parts[2])
    problems = await wait_for(pg_database, want, within=float(os.environ.get("E2E_WAIT", "90")))
    assert not problems, "\n".join(problems[:20]) + "\n" + worker.tail()


async def test_postgres_outage_mid_stream_loses_nothing(
    kafka_bootstrap: str, worker_env: dict[str, str], tmp_path: Path, server_dir: Path
) -> None:
    """Stop the worker's PostgreSQL mid-stream and start it again: the worker holds its
    writes (one warning per sink), catches up, and stores exactly the oracle; the API's
    /ready names the database down during the outage and ready again after it."""
    from service.embedded.postgres import EmbeddedPostgres
    from service.ports import free_port
    from storage.migrations import migrate

    server = EmbeddedPostgres(server_dir / "pg", port=free_port())
    dsn = await asyncio.to_thread(server.start)
    worker = WorkerProcess({**worker_env, "DATABASE_URL": dsn}, tmp_path / "outage.log")
    settings = Settings(database_url=dsn, kafka_broker_url=kafka_bootstrap, auth_disabled=True)
    try:
        await migrate(dsn)
        data = build(seed=31, devices=5, now_s=time.time())
        want = expected(data)
        half = len(data.messages) // 2
        with TestClient(create_app(settings)) as api:
            worker.start()
            worker.wait_ready()
            await produce(kafka_bootstrap, worker_env["READINGS_TOPIC"], data.messages[:half])
            await asyncio.sleep(3.0)
            assert database_status(api) == (200, "up")
            await asyncio.to_thread(server.stop)
            stopped = time.monotonic()
            assert database_status(api)[1] == "down"
            response = api.get("/ready")
            assert response.status_code == 503 and "database" in response.json()["down"]
            await produce(kafka_bootstrap, worker_env["READINGS_TOPIC"], data.messages[half:])
            await asyncio.sleep(max(0.0, 6.0 - (time.monotonic() - stopped)))  # worker retries
            assert database_status(api)[1] == "down"
            await asyncio.to_thread(server.start)
            problems = await wait_for(dsn, want, within=float(os.environ.get("E2E_WAIT", "90")))
            assert not problems, "\n".join(problems[:20]) + "\n" + worker.tail()
            assert database_status(api)[1] == "up"
            deadline = time.monotonic() + 30  # the worker's next stats report clears `sinks`
            while (response := api.get("/ready")).status_code != 200:
                assert time.monotonic() < deadline, response.text
                await asyncio.sleep(0.5)
        log = (tmp_path / "outage.log").read_text()
        # One warning per sink and outage; which sinks see it depends on what the batches
        # in flight during the outage carried (a batch closing no window writes no metrics).
        for sink in ("postgres", "devices"):
            assert log.count(f"sink {sink} unavailable") <= 1, worker.tail()
            assert log.count(f"sink {sink} recovered") == log.count(f"sink {sink} unavailable")
        assert log.count("unavailable, holding writes") >= 1, worker.tail()
        assert log.count("could not save worker stats") <= 1
    finally:
        worker.stop()
        await asyncio.to_thread(server.stop)


def database_status(api: TestClient) -> tuple[int, str]:
    response = api.get("/ready")
    return response.status_code, response.json()["checks"]["database"]["status"]


async def test_three_partitions_with_a_miskeyed_device_equal_the_oracle(
    kafka_bootstrap: str, worker_env: dict[str, str], tmp_path: Path, pg_database: str
) -> None:
    """Device state spread over 3 partitions (3 changelog partitions); one device keyed by
    a gateway id on another partition goes through the repartition topic."""
    env = {**worker_env, "TOPIC_PARTITIONS": "3"}
    worker = WorkerProcess(env, tmp_path / "partitions.log")
    try:
        data = build(seed=41, devices=6, now_s=time.time(), partitions=3)
        want = expected(data)
        worker.start()
        worker.wait_ready()
        await produce(kafka_bootstrap, env["READINGS_TOPIC"], data.messages)
        problems = await wait_for(pg_database, want, within=float(os.environ.get("E2E_WAIT", "90")))
        assert not problems, "\n".join(problems[:20]) + "\n" + worker.tail()
        connection = await asyncpg.connect(pg_database)
        try:
            forwarded = await connection.fetchval(
                "SELECT sum((stats->>'forwarded')::int) FROM worker_stats"
            )
        finally:
            await connection.close()
        meter00 = sum(1 for r in data.arrivals if r.device_id == "meter-00")
        assert forwarded is not None and forwarded >= meter00 - 5
    finally:
        worker.stop()


async def test_influxdb_outage_mid_stream_loses_nothing(
    kafka_bootstrap: str,
    worker_env: dict[str, str],
    tmp_path: Path,
    pg_database: str,
    victoria_factory: Any,
) -> None:
    """Stop the InfluxDB write endpoint mid-stream and start it again: the worker holds
    (backpressure), then every final window is in PostgreSQL and as a point in InfluxDB."""
    import httpx

    from service.ports import free_port

    port = free_port()
    victoria = victoria_factory(port)
    url = await asyncio.to_thread(victoria.start)
    env = {**worker_env, "INFLUXDB_URL": url, "INFLUXDB_TOKEN": "t"}
    worker = WorkerProcess(env, tmp_path / "influx.log")
    try:
        data = build(seed=37, devices=4, now_s=time.time())
        want = expected(data)
        half = len(data.messages) // 2
        worker.start()
        worker.wait_ready()
        await produce(kafka_bootstrap, env["READINGS_TOPIC"], data.messages[:half])
        await asyncio.sleep(3.0)
        await asyncio.to_thread(victoria.stop)
        await produce(kafka_bootstrap, env["READINGS_TOPIC"], data.messages[half:])
        await asyncio.sleep(6.0)
        await asyncio.to_thread(victoria.start)
        problems = await wait_for(pg_database, want, within=float(os.environ.get("E2E_WAIT", "90")))
        assert not problems, "\n".join(problems[:20]) + "\n" + worker.tail()
        async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=10) as client:
            (await client.get("/internal/force_flush")).raise_for_status()
            response = await client.post(
                "/api/v1/export", data={"match[]": '{__name__="energy_window_energy_kwh"}'}
            )
            response.raise_for_status()
        points: dict[tuple[str, str, int], float] = {}
        for line in response.text.splitlines():
            series = json.loads(line)
            labels = series["metric"]
            for value, millis in zip(series["values"], series["timestamps"], strict=True):
                points[(labels["device_id"], labels["period"], millis * 1000)] = value
        missing = [k for k in want if k not in points]
        assert not missing, missing[:5]
        log = (tmp_path / "influx.log").read_text()
        assert log.count("sink influxdb unavailable") == 1, worker.tail()
        assert log.count("sink influxdb recovered") == 1
    finally:
        worker.stop()


async def test_a_second_worker_joins_and_the_first_leaves_mid_stream(
    kafka_bootstrap: str, worker_env: dict[str, str], tmp_path: Path, pg_database: str
) -> None:
    """Horizontal scale: partitions (and the device states, baselines and anomaly models
    with them) move to a second worker on rebalance and back; the result equals the oracle."""
    env = {**worker_env, "TOPIC_PARTITIONS": "4"}
    first = WorkerProcess({**env, "DATA_DIR": str(tmp_path / "a")}, tmp_path / "first.log")
    second = WorkerProcess({**env, "DATA_DIR": str(tmp_path / "b")}, tmp_path / "second.log")
    try:
        data = build(seed=53, devices=8, now_s=time.time(), partitions=4)
        want = expected(data)
        thirds = len(data.messages) // 3
        topic = env["READINGS_TOPIC"]
        first.start()
        first.wait_ready()
        await produce(kafka_bootstrap, topic, data.messages[:thirds])
        await asyncio.sleep(2.0)
        second.start()
        second.wait_ready()
        await produce(kafka_bootstrap, topic, data.messages[thirds : 2 * thirds])
        await asyncio.sleep(3.0)
        first.stop()  # its partitions move to the second worker
        await produce(kafka_bootstrap, topic, data.messages[2 * thirds :])
        problems = await wait_for(pg_database, want, within=float(os.environ.get("E2E_WAIT", "90")))
        assert not problems, "\n".join(problems[:20]) + "\n" + second.tail()
        rebalanced = (tmp_path / "second.log").read_text()
        # joined (a share of the partitions), then took the first worker's on its leaving
        assert rebalanced.count("Setting newly assigned partitions") >= 2, second.tail()
    finally:
        first.stop()
        second.stop()
