"""One contract, every sink driver: memory, PostgreSQL, InfluxDB (VictoriaMetrics stand-in).

Upsert stores (memory, PostgreSQL) keep per window the highest revision: a replay changes
nothing, a higher revision replaces, a lower one is ignored. InfluxDB instead keeps the last
point written per identity (measurement, tags, timestamp); that is enough because the emitter
only ever writes increasing revisions of a window. The VictoriaMetrics stand-in differs once
more: it keeps every raw sample written at a timestamp, so its expected view is "every
distinct value written", and a replay (identical values) still adds nothing to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from models.metrics import WindowAggregate
from storage.base import Sink
from storage.influx import InfluxSink
from storage.memory import MemorySink
from storage.postgres_sink import PostgresSink
from tests.storage.helpers import (
    View,
    every_write_view,
    full_fields,
    highest_revisions,
    key_of,
    singleton_view,
    victoria_view,
    window,
)

Writes = list[list[WindowAggregate]]


@dataclass
class Driver:
    sink: Sink
    keeps_highest_revision: bool
    read: Callable[[], Awaitable[View]]
    expected: Callable[[Writes], View]


def _upsert_expectation(writes: Writes) -> View:
    return singleton_view(highest_revisions(writes), full_fields)


async def _postgres_rows(pool: Any) -> list[WindowAggregate]:
    rows = await pool.fetch("SELECT * FROM metrics")
    return [WindowAggregate.model_validate(dict(row)) for row in rows]


@pytest.fixture(params=["memory", "postgres", "influxdb"])
def driver(request: pytest.FixtureRequest, unique_prefix: str) -> Driver:
    if request.param == "memory":
        memory = MemorySink()

        async def read_memory() -> View:
            return singleton_view(memory.windows.values(), full_fields)

        return Driver(memory, True, read_memory, _upsert_expectation)
    if request.param == "postgres":
        pool = request.getfixturevalue("pg_pool")

        async def read_postgres() -> View:
            return singleton_view(await _postgres_rows(pool), full_fields)

        return Driver(PostgresSink(pool), True, read_postgres, _upsert_expectation)
    url: str = request.getfixturevalue("victoria_url")
    client = request.getfixturevalue("influx_client")

    async def read_victoria() -> View:
        return await victoria_view(url, unique_prefix)

    # A small chunk size so the batches below take several requests.
    sink = InfluxSink(client, org="energy", bucket="energy", chunk_size=7)
    return Driver(sink, False, read_victoria, every_write_view)


def first_batch(prefix: str) -> list[WindowAggregate]:
    return [
        *(window(f"{prefix}a", "hour", i, energy_kwh=0.25 * (i + 1)) for i in range(12)),
        window(f"{prefix}a", "day", 0, power=None, anomaly_score=0.875, is_anomaly=True),
        window(f"{prefix}a", "week", 0, anomaly_score=0.125, is_anomaly=False),
        # A zero window is stored like any other; readers hide it (see test_queries).
        window(f"{prefix}b", "hour", 0, reading_count=0, energy_kwh=0.0, power=None, cost="0"),
        window(f"{prefix}b", "month", 0, energy_kwh=41.5, cost="12.345678901"),
    ]


async def apply(driver: Driver, writes: Writes, batch: list[WindowAggregate]) -> View:
    await driver.sink.write(batch)
    writes.append(batch)
    stored = await driver.read()
    assert stored == driver.expected(writes)
    return stored


async def test_write_then_read_back(driver: Driver, unique_prefix: str) -> None:
    assert isinstance(driver.sink, Sink)
    await driver.sink.start()
    batch = first_batch(unique_prefix)
    stored = await apply(driver, [], batch)
    assert set(stored) == {key_of(item) for item in batch}
    await driver.sink.close()


async def test_replaying_a_batch_changes_nothing(driver: Driver, unique_prefix: str) -> None:
    writes: Writes = []
    before = await apply(driver, writes, first_batch(unique_prefix))
    after = await apply(driver, writes, first_batch(unique_prefix))
    assert after == before


async def test_higher_revision_wins(driver: Driver, unique_prefix: str) -> None:
    writes: Writes = []
    await apply(driver, writes, first_batch(unique_prefix))
    newer = [
        window(
            f"{unique_prefix}a",
            "hour",
            0,
            revision=1,
            reading_count=13,
            energy_kwh=0.5,
            cost="0.150000000",
            power=(260.0, 90.0, 410.0),
        ),
        window(f"{unique_prefix}b", "month", 0, revision=2, energy_kwh=43.0, cost="12.9"),
    ]
    stored = await apply(driver, writes, newer)
    for item in newer:
        fields = stored[key_of(item)]
        assert max(fields["revision"]) == item.revision
        if driver.keeps_highest_revision:
            assert fields["energy_kwh"] == {item.energy_kwh}
        else:
            assert item.energy_kwh in fields["energy_kwh"]


async def test_lower_revision_does_not_replace(driver: Driver, unique_prefix: str) -> None:
    writes: Writes = []
    await apply(driver, writes, first_batch(unique_prefix))
    higher = window(f"{unique_prefix}a", "hour", 1, revision=3, energy_kwh=0.75, cost="0.2")
    await apply(driver, writes, [higher])
    lower = window(f"{unique_prefix}a", "hour", 1, revision=1, energy_kwh=9.0, cost="2.7")
    stored = await apply(driver, writes, [lower])
    if driver.keeps_highest_revision:
        assert stored[key_of(higher)]["energy_kwh"] == {0.75}
        assert stored[key_of(higher)]["revision"] == {3}
    else:
        # InfluxDB keeps the last write (here the lower revision); nothing emits one.
        assert 9.0 in stored[key_of(higher)]["energy_kwh"]


async def test_equal_revision_with_other_values_replaces(
    driver: Driver, unique_prefix: str
) -> None:
    """A stream that started over emits revision 0 again: the newer values must win."""
    writes: Writes = []
    await apply(driver, writes, [window(f"{unique_prefix}r", "day", 0, revision=0, energy_kwh=1.0)])
    again = window(f"{unique_prefix}r", "day", 0, revision=0, energy_kwh=2.5)
    stored = await apply(driver, writes, [again])
    if driver.keeps_highest_revision:
        assert stored[key_of(again)]["energy_kwh"] == {2.5}
    else:
        assert 2.5 in stored[key_of(again)]["energy_kwh"]


async def test_one_batch_with_several_revisions_of_a_window(
    driver: Driver, unique_prefix: str
) -> None:
    device = f"{unique_prefix}d"
    batch = [
        window(device, "hour", 0, revision=3, energy_kwh=1.0),
        window(device, "hour", 0, revision=5, energy_kwh=2.0),
        window(device, "hour", 0, revision=4, energy_kwh=3.0),
    ]
    stored = await apply(driver, [], batch)
    if driver.keeps_highest_revision:
        assert stored[key_of(batch[0])]["energy_kwh"] == {2.0}


async def test_empty_batch_is_a_no_op(driver: Driver) -> None:
    await driver.sink.write([])
    assert await driver.read() == {}
