"""The embedded servers: deterministic addresses, data kept across restarts, busy ports named."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.embedded.postgres import MAX_SOCKET_PATH, EmbeddedPostgres
from service.embedded.victoria import EmbeddedVictoriaMetrics, EmbeddedVictoriaMetricsError
from service.ports import PortInUse, free_port
from tests.plugins.storage import FAST_SETTINGS


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


async def _fetch_one(dsn: str, sql: str) -> object:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def test_postgres_keeps_its_data_and_address_across_restarts(server_dir: Path) -> None:
    # A data folder too deep for a Unix socket path: the socket moves to a short folder.
    deep = server_dir / ("d" * 60) / ("e" * 40) / "pgdata"
    server = EmbeddedPostgres(deep, settings=FAST_SETTINGS)
    dsn_before_start = server.dsn()
    assert server.socket_dir != server.data_dir
    assert len(str(server.socket_dir / ".s.PGSQL.5432")) <= MAX_SOCKET_PATH
    try:
        assert await asyncio.to_thread(server.start) == dsn_before_start
        assert await _fetch_one(dsn_before_start, "SELECT current_database()") == "energy"
        await _fetch_one(dsn_before_start, "CREATE TABLE kept AS SELECT 42 AS answer")

        # Another process (here: object) on the same folder finds it running and reuses it;
        # stopping that handle leaves the server alone.
        other = EmbeddedPostgres(deep)
        assert other.dsn() == dsn_before_start
        assert await asyncio.to_thread(other.start) == dsn_before_start
        await asyncio.to_thread(other.stop)
        assert server.is_running()

        await asyncio.to_thread(server.stop)
        assert not server.is_running()
        assert await asyncio.to_thread(server.start) == dsn_before_start
        assert await _fetch_one(dsn_before_start, "SELECT answer FROM kept") == 42
    finally:
        await asyncio.to_thread(server.stop)
    assert not server.socket_dir.exists()


async def test_postgres_over_tcp(server_dir: Path) -> None:
    port = free_port()
    with EmbeddedPostgres(server_dir / "pgdata", port, settings=FAST_SETTINGS) as server:
        assert server.dsn() == f"postgresql://postgres@127.0.0.1:{port}/energy"
        assert await _fetch_one(server.dsn(), "SELECT 1") == 1
    assert not server.is_running()


def test_postgres_names_a_busy_port(server_dir: Path, busy_port: int) -> None:
    server = EmbeddedPostgres(server_dir / "pgdata", busy_port)
    with pytest.raises(PortInUse, match=str(busy_port)) as caught:
        server.start()
    assert "PostgreSQL" in str(caught.value)


async def test_victoria_metrics_keeps_data_across_restarts(
    victoria_factory: Callable[[int], EmbeddedVictoriaMetrics],
) -> None:
    server = victoria_factory(free_port())
    url = await asyncio.to_thread(server.start)
    line = "probe,device_id=d1 value=1.5 1709251200000000000"
    async with httpx.AsyncClient(base_url=url, trust_env=False) as client:
        write = await client.post("/api/v2/write", params={"org": "o", "bucket": "b"}, content=line)
        assert write.status_code == 204
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        await client.get("/internal/force_flush")
        export = await client.post("/api/v1/export", data={"match[]": '{__name__="probe_value"}'})
    assert '"values":[1.5]' in export.text


def test_victoria_metrics_names_a_busy_port(
    victoria_factory: Callable[[int], EmbeddedVictoriaMetrics], busy_port: int
) -> None:
    with pytest.raises(PortInUse, match=str(busy_port)):
        victoria_factory(busy_port).start()


def test_victoria_metrics_missing_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not EmbeddedVictoriaMetrics.available()
    with pytest.raises(EmbeddedVictoriaMetricsError, match="apt-get install victoria-metrics"):
        EmbeddedVictoriaMetrics(tmp_path / "vm", free_port()).start()
