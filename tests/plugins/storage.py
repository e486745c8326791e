"""Storage fixtures: one embedded PostgreSQL and one VictoriaMetrics per test session.

Tests that write get a database of their own (``pg_database``, ``pg_pool``), cloned from a
migrated template, so they never see each other's rows. VictoriaMetrics has no databases:
tests keep apart by using device ids unique to the test (``unique_prefix``).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
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

# Durability is not what these tests are about; without fsync a database clone takes ~10 ms.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
TEMPLATE_DATABASE = "energy_test_template"


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


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A started EmbeddedPostgres (Unix socket) for the session, with a migrated template
    database ``energy_test_template`` that per-test databases are cloned from."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"), settings=FAST_SETTINGS)
    server.start()
    try:

        async def prepare() -> None:
            admin = await asyncpg.connect(server.dsn("postgres"))
            try:
                await admin.execute(f'CREATE DATABASE "{TEMPLATE_DATABASE}"')
            finally:
                await admin.close()
            await migrate(server.dsn(TEMPLATE_DATABASE))

        run_in_thread(prepare)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: EmbeddedPostgres) -> str:
    """DSN of the session's shared, migrated ``energy`` database (tests share its rows)."""
    dsn = postgres_server.dsn()
    run_in_thread(lambda: migrate(dsn))
    return dsn


async def _new_database(server: EmbeddedPostgres, template: str | None) -> str:
    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(server.dsn("postgres"))
    try:
        clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        await admin.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await admin.close()
    return name


async def _drop_database(server: EmbeddedPostgres, name: str) -> None:
    admin = await asyncpg.connect(server.dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pg_database(postgres_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """DSN of a fresh, migrated database for this test only (dropped afterwards)."""
    name = await _new_database(postgres_server, TEMPLATE_DATABASE)
    try:
        yield postgres_server.dsn(name)
    finally:
        await _drop_database(postgres_server, name)


@pytest.fixture
async def pg_empty_database(postgres_server: EmbeddedPostgres) -> AsyncIterator[str]:
    """DSN of a fresh database with no tables at all (for migration tests)."""
    name = await _new_database(postgres_server, None)
    try:
        yield postgres_server.dsn(name)
    finally:
        await _drop_database(postgres_server, name)


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
def victoria_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[EmbeddedVictoriaMetrics]:
    """A started EmbeddedVictoriaMetrics on a free port for the session."""
    _require_victoria_metrics()
    server = EmbeddedVictoriaMetrics(tmp_path_factory.mktemp("victoria"), free_port())
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
    client = InfluxDBClientAsync(url=victoria_url, token="unused", org="energy")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def victoria_factory(tmp_path: Path) -> Iterator[Callable[[int], EmbeddedVictoriaMetrics]]:
    """Make (not start) VictoriaMetrics servers of this test's own; stopped afterwards."""
    _require_victoria_metrics()
    servers: list[EmbeddedVictoriaMetrics] = []

    def make(port: int) -> EmbeddedVictoriaMetrics:
        server = EmbeddedVictoriaMetrics(tmp_path / f"victoria-{len(servers)}", port)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def unique_prefix() -> str:
    """A device-id prefix unique to this test (shared servers without per-test databases)."""
    return f"t{uuid.uuid4().hex[:10]}-"
