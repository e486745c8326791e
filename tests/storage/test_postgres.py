"""PostgreSQL specifics: replays touch nothing, error mapping, worker stats, devices."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage.base import DeviceSeen, MetricsQuery, SinkRejected, SinkUnavailable
from storage.postgres import create_pool, map_error
from storage.postgres_repository import PostgresRepository
from storage.postgres_sink import PostgresSink
from tests.storage.helpers import T0, window


async def _updated_at(pool: Any) -> dict[tuple[str, str], Any]:
    rows = await pool.fetch("SELECT device_id, period, updated_at FROM metrics")
    return {(row["device_id"], row["period"]): row["updated_at"] for row in rows}


async def test_a_replay_does_not_touch_rows(pg_pool: Any) -> None:
    sink = PostgresSink(pg_pool)
    batch = [window("a", "hour", 0), window("a", "day", 0)]
    await sink.write(batch)
    assert sink.rows_changed == 2
    before = await _updated_at(pg_pool)
    await sink.write(batch)
    assert sink.rows_changed == 2
    assert await _updated_at(pg_pool) == before
    await sink.write([window("a", "hour", 0, revision=1, energy_kwh=0.3)])
    assert sink.rows_changed == 3
    after = await _updated_at(pg_pool)
    assert after[("a", "hour")] > before[("a", "hour")]
    assert after[("a", "day")] == before[("a", "day")]


async def _energies(pool: Any) -> dict[tuple[str, str, int], tuple[float, int]]:
    rows = await pool.fetch(
        "SELECT device_id, period, window_start, energy_kwh, revision FROM metrics"
    )
    return {
        (row["device_id"], row["period"], (row["window_start"] - T0) // timedelta(hours=1)): (
            row["energy_kwh"],
            row["revision"],
        )
        for row in rows
    }


async def test_new_and_revised_windows_beside_stored_ones(pg_pool: Any) -> None:
    """New windows (revision 0) are inserted plainly, unless one is stored already; then the
    whole batch goes through the upsert, and nothing of it is lost."""
    sink = PostgresSink(pg_pool)
    await sink.write([window("a", "hour", 0)])
    # new and revised windows, none stored: inserted, and the revision upserted
    await sink.write([window("a", "hour", 1), window("a", "hour", 0, revision=1, energy_kwh=0.5)])
    assert sink.rows_changed == 3
    # a stored window among new ones (its state started over: same revision, other values)
    await sink.write(
        [
            window("a", "hour", 1, energy_kwh=0.75),
            window("a", "hour", 2),
            window("b", "hour", 0),
            window("a", "hour", 3, revision=2, energy_kwh=1.5),
        ]
    )
    assert sink.rows_changed == 7
    assert await _energies(pg_pool) == {
        ("a", "hour", 0): (0.5, 1),
        ("a", "hour", 1): (0.75, 0),
        ("a", "hour", 2): (0.25, 0),
        ("b", "hour", 0): (0.25, 0),
        ("a", "hour", 3): (1.5, 2),
    }
    # a replay of it all changes nothing
    await sink.write([window("a", "hour", 1, energy_kwh=0.75), window("a", "hour", 2)])
    assert sink.rows_changed == 7


async def test_start_and_write_on_a_database_without_the_schema_are_rejected(
    pg_empty_database: str,
) -> None:
    pool = await create_pool(pg_empty_database)
    try:
        sink = PostgresSink(pool)
        with pytest.raises(SinkRejected, match="metrics"):
            await sink.start()
        with pytest.raises(SinkRejected):
            await sink.write([window()])
    finally:
        await pool.close()


async def test_bad_data_is_rejected(pg_pool: Any) -> None:
    bad = window().model_copy(update={"currency": "EU\x00R"})  # text cannot hold NUL
    with pytest.raises(SinkRejected):
        await PostgresSink(pg_pool).write([bad])


async def test_a_closed_pool_is_unavailable(pg_database: str) -> None:
    pool = await create_pool(pg_database)
    await pool.close()
    with pytest.raises(SinkUnavailable, match="pool"):
        await PostgresSink(pool).write([window()])
    repository = PostgresRepository(pool)
    with pytest.raises(SinkUnavailable):
        await repository.query_metrics(MetricsQuery())
    assert await repository.ping() is False


async def test_a_killed_session_is_unavailable_then_recovers(pg_pool: Any) -> None:
    sink = PostgresSink(pg_pool)
    await sink.write([window("a", "hour", 0)])
    # The server ends a session, as an operator or a failover does.
    async with pg_pool.acquire() as first, pg_pool.acquire() as second:
        victim = await first.fetchval("SELECT pg_backend_pid()")
        await second.execute("SELECT pg_terminate_backend($1, 5000)", victim)
        with pytest.raises(SinkUnavailable):
            await PostgresSink(first).write([window("a", "hour", 1)])
    await sink.write([window("a", "hour", 1)])
    assert await pg_pool.fetchval("SELECT count(*) FROM metrics") == 2


async def test_create_pool_on_a_missing_server_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SinkUnavailable):
        await create_pool(f"postgresql://postgres@/energy?host={tmp_path}", connect_timeout=2)


async def test_ping(pg_pool: Any) -> None:
    assert await PostgresRepository(pg_pool).ping() is True


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), SinkUnavailable),
        (asyncpg.exceptions.CannotConnectNowError("starting up"), SinkUnavailable),
        (asyncpg.exceptions.AdminShutdownError("terminating"), SinkUnavailable),
        (asyncpg.exceptions.ConnectionDoesNotExistError("closed"), SinkUnavailable),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock"), SinkUnavailable),
        (asyncpg.InterfaceError("pool is closed"), SinkUnavailable),
        (ConnectionRefusedError(111, "refused"), SinkUnavailable),
        (TimeoutError(), SinkUnavailable),
        (asyncpg.exceptions.UniqueViolationError("duplicate"), SinkRejected),
        (asyncpg.exceptions.NumericValueOutOfRangeError("overflow"), SinkRejected),
        (asyncpg.exceptions.UndefinedTableError("no metrics"), SinkRejected),
        (asyncpg.exceptions._base.DataError("cannot encode"), SinkRejected),
    ],
)
def test_error_mapping(exc: BaseException, kind: type[Exception]) -> None:
    mapped = map_error(exc)
    assert isinstance(mapped, kind)
    assert isinstance(mapped, SinkUnavailable | SinkRejected)
    assert mapped.sink == "postgres"


def test_other_exceptions_are_not_mapped() -> None:
    assert map_error(ValueError("a bug")) is None


async def test_worker_stats_upsert_and_load(pg_pool: Any) -> None:
    repository = PostgresRepository(pg_pool)
    assert await repository.load_worker_stats() == []
    await repository.save_worker_stats("w2", {"accepted": 5, "dlq": {"late": 1}})
    await repository.save_worker_stats("w1", {"accepted": 1})
    await repository.save_worker_stats("w2", {"accepted": 9, "dlq": {"late": 2}})
    loaded = await repository.load_worker_stats()
    assert [row["worker_id"] for row in loaded] == ["w1", "w2"]
    assert loaded[1]["stats"] == {"accepted": 9, "dlq": {"late": 2}}
    assert loaded[1]["updated_at"].tzinfo is not None


async def test_devices_keep_first_and_last_seen(pg_pool: Any) -> None:
    repository = PostgresRepository(pg_pool)
    t = [T0 + timedelta(minutes=m) for m in range(10)]
    await repository.upsert_devices(
        [DeviceSeen("d1", t[3], t[5], {"power_w": 5}), DeviceSeen("d2", t[0], t[0], None)]
    )
    # An older sighting (a replay) and, in one batch, two sightings of one device.
    await repository.upsert_devices(
        [
            DeviceSeen("d1", t[1], t[2], {"power_w": 2}),
            DeviceSeen("d2", t[4], t[9], {"power_w": 9}),
            DeviceSeen("d2", t[2], t[6], {"power_w": 6}),
        ]
    )
    rows = await pg_pool.fetch(
        "SELECT device_id, first_seen, last_seen, last_reading::text AS last_reading"
        " FROM devices ORDER BY device_id"
    )
    assert [(r["device_id"], r["first_seen"], r["last_seen"]) for r in rows] == [
        ("d1", t[1], t[5]),
        ("d2", t[0], t[9]),
    ]
    assert [r["last_reading"] for r in rows] == ['{"power_w": 5}', '{"power_w": 9}']


async def test_anomaly_model_checkpoints_are_per_app_and_partition(pg_pool: Any) -> None:
    repository = PostgresRepository(pg_pool)
    assert await repository.load_anomaly_model("app", 0) is None
    await repository.save_anomaly_model("app", 0, b"first", 10)
    await repository.save_anomaly_model("app", 1, b"other", 3)
    await repository.save_anomaly_model("app", 0, b"second", 20)
    assert await repository.load_anomaly_model("app", 0) == b"second"
    assert await repository.load_anomaly_model("app", 1) == b"other"
    assert await repository.load_anomaly_model("another-app", 0) is None
    count = await pg_pool.fetchval("SELECT windows FROM anomaly_models WHERE partition = 0")
    assert count == 20


async def test_anomaly_review_rows_are_the_history_of_flagged_devices(pg_pool: Any) -> None:
    sink = PostgresSink(pg_pool)
    windows = [
        window(
            "flagged",
            "hour",
            index,
            anomaly_score=0.9 if index == 30 else 0.2,
            is_anomaly=index == 30,
        )
        for index in range(36)
    ]
    windows += [
        window("calm", "hour", index, anomaly_score=0.1, is_anomaly=False) for index in range(36)
    ]
    windows += [window("flagged", "day", 0, anomaly_score=0.3, is_anomaly=False)]
    await sink.write(windows)
    repository = PostgresRepository(pg_pool)
    start, end = T0 + timedelta(hours=24), T0 + timedelta(hours=48)
    rows, scored = await repository.anomaly_review_rows(start, end, T0)
    assert scored == 24  # 12 + 12 hour windows of both devices in [start, end)
    assert {row["device_id"] for row in rows} == {"flagged"}
    assert len(rows) == 37  # its 36 hours and its day, history included
    assert [row["window_start"] for row in rows if row["is_anomaly"]] == [T0 + timedelta(hours=30)]


async def test_job_metrics_count_by_kind_and_status(pg_pool: Any) -> None:
    rows = [
        ("aggregate", "succeeded", 2.0),
        ("aggregate", "succeeded", 4.0),
        ("aggregate", "failed", 1.0),
        ("report", "pending", None),
    ]
    for kind, status, duration in rows:
        await pg_pool.execute(
            "INSERT INTO jobs (id, kind, status, duration_s) VALUES (gen_random_uuid(), $1, $2, $3)",
            kind,
            status,
            duration,
        )
    got = {
        (r["kind"], r["status"]): (r["count"], r["duration_sum"], r["duration_count"])
        for r in await PostgresRepository(pg_pool).job_metrics()
    }
    assert got == {
        ("aggregate", "succeeded"): (2, 6.0, 2),
        ("aggregate", "failed"): (1, 1.0, 1),
        ("report", "pending"): (1, 0.0, 0),
    }
