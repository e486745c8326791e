"""Real outages: the store goes away mid-stream, the write waits, and nothing is lost.

Each test runs servers of its own (the session's are shared and must stay up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from models.metrics import WindowAggregate
from service.embedded.postgres import EmbeddedPostgres
from service.embedded.victoria import EmbeddedVictoriaMetrics
from service.ports import free_port
from storage.influx import InfluxSink
from storage.memory import MemorySink
from storage.migrations import migrate
from storage.postgres import create_pool
from storage.postgres_sink import PostgresSink
from storage.resilient import ResilientSink
from tests.plugins.storage import FAST_SETTINGS
from tests.storage.helpers import (
    every_write_view,
    full_fields,
    singleton_view,
    victoria_view,
    window,
)

LOGGER = "storage.resilient"


async def wait_until(condition: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def batches(prefix: str) -> tuple[list[WindowAggregate], list[WindowAggregate]]:
    first = [window(f"{prefix}a", "hour", i, energy_kwh=0.25 * (i + 1)) for i in range(6)]
    second = [
        *(window(f"{prefix}b", "hour", i) for i in range(4)),
        window(f"{prefix}a", "hour", 0, revision=1, energy_kwh=0.5, cost="0.15"),
        window(f"{prefix}a", "day", 0, energy_kwh=5.25, cost="1.575"),
    ]
    return first, second


async def ride_out_outage(
    sink: ResilientSink,
    batch: list[WindowAggregate],
    end_outage: Callable[[], Any],
) -> None:
    """Write ``batch`` while the store is down; check it waits; end the outage; finish."""
    writer = asyncio.create_task(sink.write(batch))
    await wait_until(lambda: not sink.healthy)
    await wait_until(lambda: sink.failures >= 3)
    assert not writer.done(), "the write must wait for the store, not give up"
    assert sink.pending_batches == 1
    await asyncio.to_thread(end_outage)
    await asyncio.wait_for(writer, 30)
    assert sink.healthy
    assert sink.pending_batches == 0


def assert_one_outage_logged(caplog: pytest.LogCaptureFixture, sink_name: str) -> None:
    records = [r for r in caplog.records if r.name == LOGGER]
    assert [r.levelname for r in records] == ["WARNING", "INFO"], [r.getMessage() for r in records]
    assert sink_name in records[0].getMessage()
    assert "recovered" in records[1].getMessage()


async def test_postgres_restart_during_writes(
    server_dir: Path, unique_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = EmbeddedPostgres(server_dir / "pgdata", settings=FAST_SETTINGS)
    dsn = await asyncio.to_thread(server.start)
    pool: Any = None
    try:
        await migrate(dsn)
        pool = await create_pool(dsn, max_size=2, connect_timeout=2)
        sink = ResilientSink(PostgresSink(pool, timeout=5), base_delay=0.05, max_delay=0.3)
        first, second = batches(unique_prefix)
        await sink.write(first)

        await asyncio.to_thread(server.stop)
        with caplog.at_level(logging.INFO, logger=LOGGER):
            await ride_out_outage(sink, second, server.start)

        rows = await pool.fetch("SELECT * FROM metrics")
        stored = singleton_view(
            [WindowAggregate.model_validate(dict(r)) for r in rows], full_fields
        )
        reference = MemorySink()
        for batch in (first, second):
            await reference.write(batch)
        assert stored == singleton_view(reference.windows.values(), full_fields)
        assert_one_outage_logged(caplog, "postgres")
    finally:
        if pool is not None:
            await pool.close()
        await asyncio.to_thread(server.stop)


@pytest.mark.parametrize("outage", ["restart", "late-start"])
async def test_influx_outage_then_recovery(
    victoria_factory: Callable[[int], EmbeddedVictoriaMetrics],
    unique_prefix: str,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    server = victoria_factory(free_port())
    client: Any = InfluxDBClientAsync(url=server.url, token="unused", org="energy", timeout=2000)
    try:
        sink = ResilientSink(
            InfluxSink(client, org="energy", bucket="energy"), base_delay=0.05, max_delay=0.3
        )
        first, second = batches(unique_prefix)
        if outage == "restart":
            await asyncio.to_thread(server.start)
            await sink.write(first)
            await asyncio.to_thread(server.stop)
        else:
            # Nothing listens on the port yet: the first write already meets the outage.
            second = first + second
            first = []
        with caplog.at_level(logging.INFO, logger=LOGGER):
            await ride_out_outage(sink, second, server.start)

        assert await victoria_view(server.url, unique_prefix) == every_write_view([first, second])
        assert_one_outage_logged(caplog, "influxdb")
    finally:
        await client.close()
