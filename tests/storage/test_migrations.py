"""Migrations: applied once, in order, recorded; edited history refused; concurrent callers safe."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncpg
import pytest

from storage.migrations import (
    Migration,
    MigrationChecksumMismatch,
    MigrationError,
    load_migrations,
    migrate,
    migrate_pool,
)
from storage.postgres import create_pool

EXPECTED_TABLES = {
    "metrics",
    "jobs",
    "job_artifacts",
    "devices",
    "worker_stats",
    "anomaly_models",
    "schema_migrations",
}


def _migration(version: int, name: str, sql: str) -> Migration:
    return Migration(version, name, sql, hashlib.sha256(sql.encode()).hexdigest())


async def _tables(dsn: str) -> set[str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await connection.close()


async def _recorded(dsn: str) -> list[tuple[int, str, str]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        )
        return [(row["version"], row["name"], row["checksum"]) for row in rows]
    finally:
        await connection.close()


def test_shipped_migrations_are_numbered_in_order() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].label == "0001_metrics"


async def test_migrate_applies_everything_once_and_records_it(pg_empty_database: str) -> None:
    applied = await migrate(pg_empty_database)
    shipped = load_migrations()
    assert applied == [m.label for m in shipped]
    assert await _tables(pg_empty_database) == EXPECTED_TABLES
    assert await _recorded(pg_empty_database) == [(m.version, m.name, m.checksum) for m in shipped]

    assert await migrate(pg_empty_database) == []
    assert len(await _recorded(pg_empty_database)) == len(shipped)


async def test_migrate_pool_uses_a_pool_connection(pg_empty_database: str) -> None:
    pool = await create_pool(pg_empty_database, max_size=2)
    try:
        assert len(await migrate_pool(pool)) == len(load_migrations())
        assert await migrate_pool(pool) == []
    finally:
        await pool.close()


async def test_only_new_migrations_run(pg_empty_database: str) -> None:
    first = _migration(1, "first", "CREATE TABLE first_table (id int)")
    second = _migration(2, "second", "CREATE TABLE second_table (id int)")
    assert await migrate(pg_empty_database, [first]) == ["0001_first"]
    assert await migrate(pg_empty_database, [first, second]) == ["0002_second"]
    assert {"first_table", "second_table"} <= await _tables(pg_empty_database)


async def test_a_changed_applied_migration_is_refused(pg_empty_database: str) -> None:
    original = _migration(1, "first", "CREATE TABLE first_table (id int)")
    await migrate(pg_empty_database, [original])
    edited = _migration(1, "first", "CREATE TABLE first_table (id bigint)")
    later = _migration(2, "second", "CREATE TABLE second_table (id int)")
    with pytest.raises(MigrationChecksumMismatch) as caught:
        await migrate(pg_empty_database, [edited, later])
    assert caught.value.version == 1
    assert caught.value.applied_checksum == original.checksum
    assert caught.value.file_checksum == edited.checksum
    # Nothing after the mismatch ran.
    assert "second_table" not in await _tables(pg_empty_database)


async def test_a_failing_migration_rolls_back_and_is_not_recorded(
    pg_empty_database: str,
) -> None:
    good = _migration(1, "good", "CREATE TABLE good_table (id int)")
    bad = _migration(2, "bad", "CREATE TABLE half_done (id int); SELECT no_such_column FROM x")
    with pytest.raises(MigrationError, match="0002_bad"):
        await migrate(pg_empty_database, [good, bad])
    tables = await _tables(pg_empty_database)
    assert "good_table" in tables
    assert "half_done" not in tables
    assert [version for version, _, _ in await _recorded(pg_empty_database)] == [1]


async def test_concurrent_migrate_calls_apply_each_migration_once(pg_empty_database: str) -> None:
    # A slow migration widens the window in which the callers would race without the lock.
    slow = _migration(1, "slow", "SELECT pg_sleep(0.3); CREATE TABLE slow_table (id int)")
    results = await asyncio.gather(*(migrate(pg_empty_database, [slow]) for _ in range(5)))
    assert sorted(results) == [[], [], [], [], ["0001_slow"]]
    assert len(await _recorded(pg_empty_database)) == 1


async def test_concurrent_shipped_migrations(pg_empty_database: str) -> None:
    results = await asyncio.gather(*(migrate(pg_empty_database) for _ in range(4)))
    assert sum(len(result) for result in results) == len(load_migrations())
    assert await _tables(pg_empty_database) == EXPECTED_TABLES


def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_ok.sql").write_text("SELECT 1")
    (tmp_path / "2_missing_digits.sql").write_text("SELECT 1")
    with pytest.raises(MigrationError, match=r"2_missing_digits\.sql"):
        load_migrations(tmp_path)


def test_duplicate_versions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_one.sql").write_text("SELECT 1")
    (tmp_path / "0001_other.sql").write_text("SELECT 2")
    with pytest.raises(MigrationError, match="two migrations with version 1"):
        load_migrations(tmp_path)


def test_checksum_covers_the_file_bytes(tmp_path: Path) -> None:
    (tmp_path / "0001_one.sql").write_text("SELECT 1\n")
    (tmp_path / "README.txt").write_text("not a migration")
    [migration] = load_migrations(tmp_path)
    assert migration.checksum == hashlib.sha256(b"SELECT 1\n").hexdigest()
    (tmp_path / "0001_one.sql").write_bytes(b"SELECT 1\r\n")
    assert load_migrations(tmp_path)[0].checksum == migration.checksum
    (tmp_path / "0001_one.sql").write_text("SELECT  1\n")
    assert load_migrations(tmp_path)[0].checksum != migration.checksum


async def test_a_database_ahead_of_the_code_is_reported_not_refused(
    pg_empty_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    first = _migration(1, "first", "CREATE TABLE first_table (id int)")
    future = _migration(2, "future", "CREATE TABLE future_table (id int)")
    await migrate(pg_empty_database, [first, future])
    with caplog.at_level("WARNING", logger="storage.migrations"):
        assert await migrate(pg_empty_database, [first]) == []
    assert "0002_future" in caplog.text
