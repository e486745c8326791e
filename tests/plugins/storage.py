"""Storage fixtures: one embedded PostgreSQL and one VictoriaMetrics per test session.

Fixtures: ``postgres_server`` (session, EmbeddedPostgres), ``postgres_dsn`` (session, shared
migrated ``energy`` database), ``pg_database`` / ``pg_empty_database`` (per test, DSN of a
migrated database with empty tables / of a database without tables), ``pg_pool`` (per test, asyncpg pool on ``pg_database``),
``victoria_server`` / ``victoria_url`` (session), ``influx_client`` (per test,
InfluxDBClientAsync on it), ``victoria_factory`` (per test, make own servers), ``server_dir``,
``unique_prefix``.

Tests that write get a database emptied for them (``pg_database``, ``pg_pool``), so they
never see each other's rows. VictoriaMetrics has no databases:
tests keep apart by using device ids unique to the test (``unique_prefix``).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync

from service.embedded.postgres import EmbeddedPostgres
from service.embedded.victoria import EmbeddedVictoriaMetrics
from service.ports import free_port
from storage.migrations import migrate
from storage.postgres import create_pool

T = TypeVar("T")

# Durability is not what these tests are about; without fsync a database clone takes ~0.1 s.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
MIGRATED_DATABASE = "energy_test"
EMPTY_DATABASE = "energy_test_empty"
# Every table but the migration record, whatever the migrations created.
_TRUNCATE_ALL = """
DO $$
DECLARE tables text;
BEGIN
    SELECT string_agg(format('%I', tablename), ', ') INTO tables
    FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'schema_migrations';
    IF tables IS NOT NULL THEN
        EXECUTE 'TRUNCATE ' || tables;
    END IF;
END $$
"""


def run_in_thread(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from a sync fixture, away from the tests' event loop."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="storage-fixture")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


@contextmanager
def server_folder(what: str) -> Iterator[Path]:
    """A private folder for a server's data, removed afterwards.

    Not under pytest's numbered temp folders: a concurrent pytest session prunes old ones,
    which would delete a running server's data (and socket) from under it.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"energy-test-{what}-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A private folder for servers a test starts itself (removed afterwards)."""
    with server_folder("own") as folder:
        yield folder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """A started EmbeddedPostgres (Unix socket) for the session, with the databases behind
    ``pg_database`` (migrated) and ``pg_empty_database`` (no tables)."""
    with server_folder("postgres") as folder:
        server = EmbeddedPostgres(folder / "pgdata", settings=FAST_SETTINGS)
        server.start()
        try:
            run_in_thread(lambda: _create_databases(server))
            yield server
        finally:
            server.stop()


async def _create_databases(server: EmbeddedPostgres) -> None:
    admin = await asyncpg.connect(server.dsn("postgres"))
    try:
        for name in (MIGRATED_DATABASE, EMPTY_DATABASE):
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await migrate(server.dsn(MIGRATED_DATABASE))


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: EmbeddedPostgres) -> str:
    """DSN of the session's shared, migrated ``energy`` database (tests share its rows)."""
    dsn = postgres_server.dsn()
    run_in_thread(lambda: migrate(dsn))
    return dsn


async def _reset(dsn: str, statement: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        # A connection a previous test left open must not hold locks the reset waits for.
        await connection.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
async def pg_database(postgres_server: EmbeddedPostgres) -> str:
    """DSN of a migrated database whose tables are empty when the test starts.

    Emptied (TRUNCATE, ~20 ms) rather than created per test (CREATE DATABASE, ~0.4 s here).
    """
    dsn = postgres_server.dsn(MIGRATED_DATABASE)
    await _reset(dsn, _TRUNCATE_ALL)
    return dsn


@pytest.fixture
async def pg_empty_database(postgres_server: EmbeddedPostgres) -> str:
    """DSN of a database with no tables at all (for migration tests); emptied per test."""
    dsn = postgres_server.dsn(EMPTY_DATABASE)
    await _reset(dsn, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    return dsn


@pytest.fixture
async def pg_pool(pg_database: str) -> AsyncIterator[Any]:
    """An asyncpg pool on this test's fresh, migrated database."""
    pool = await create_pool(pg_database, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


def _require_victoria_metrics() -> None:
    if not EmbeddedVictoriaMetrics.available():
        reason = "victoria-metrics binary not on PATH (apt-get install victoria-metrics)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def victoria_server() -> Iterator[EmbeddedVictoriaMetrics]:
    """A started EmbeddedVictoriaMetrics on a free port for the session."""
    _require_victoria_metrics()
    with server_folder("victoria") as folder:
        server = EmbeddedVictoriaMetrics(folder, free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def victoria_url(victoria_server: EmbeddedVictoriaMetrics) -> str:
    """Base URL of the session's VictoriaMetrics (InfluxDB v2 write API at /api/v2/write)."""
    return victoria_server.url


@pytest.fixture
async def influx_client(victoria_url: str) -> AsyncIterator[Any]:
    """An ``InfluxDBClientAsync`` on the session's VictoriaMetrics (closed afterwards)."""
    client: Any = InfluxDBClientAsync(url=victoria_url, token="unused", org="energy")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def victoria_factory(server_dir: Path) -> Iterator[Callable[[int], EmbeddedVictoriaMetrics]]:
    """Make (not start) VictoriaMetrics servers of this test's own; stopped afterwards."""
    _require_victoria_metrics()
    servers: list[EmbeddedVictoriaMetrics] = []

    def make(port: int) -> EmbeddedVictoriaMetrics:
        server = EmbeddedVictoriaMetrics(server_dir / f"victoria-{len(servers)}", port)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def unique_prefix() -> str:
    """A device-id prefix unique to this test (shared servers without per-test databases)."""
    return f"t{uuid.uuid4().hex[:10]}-"
