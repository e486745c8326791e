"""``make load``: the API under 200 concurrent clients over a million stored windows.

Starts an embedded PostgreSQL, loads ``LOAD_DEVICES`` x ``LOAD_HOURS`` hour windows (plus
their day windows) with one ``INSERT ... SELECT`` over ``generate_series``, serves the API
with ``energy-processing api`` (real uvicorn, JWT auth on), and runs ``LOAD_CLIENTS``
concurrent httpx clients for ``LOAD_SECONDS`` with a mix of ``/api/v1/metrics`` queries: by
device, by device and time range, by period and time range over all devices, cursor
pagination, anomalies only, day windows. Prints p50/p95/p99 latency, throughput and errors
per query shape and overall, then ``EXPLAIN (ANALYZE, BUFFERS)`` of each shape's SQL as the
repository builds it, and exits 1 on any error or a plan that scans ``metrics`` without an
index.

Settings (environment): LOAD_DEVICES (1000), LOAD_HOURS (1000), LOAD_CLIENTS (200),
LOAD_SECONDS (60).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.embedded.postgres import EmbeddedPostgres
from service.ports import free_port
from storage.base import MetricsQuery
from storage.migrations import migrate
from storage.postgres_repository import PostgresRepository
from tests.api.tokens import AUTH_ENV, issue

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)

LOAD_SQL = """
INSERT INTO metrics (device_id, period, window_start, window_end, reading_count,
    power_reading_count, power_mean_w, power_min_w, power_max_w, energy_kwh, cost, currency,
    coverage, covered_seconds, first_ts, last_ts, anomaly_score, is_anomaly, revision)
SELECT 'load-' || lpad(d::text, 5, '0'), $1::text, s, s + $2::interval, 60, 60,
    500 + 400 * sin(d + h), 100, 2000, 0.5 + 0.4 * sin(d + h), 0.15 + 0.12 * sin(d + h),
    'EUR', 1.0, extract(epoch FROM $2::interval), s, s + $2::interval - interval '1 second',
    abs(sin(d * 7 + h)), abs(sin(d * 7 + h)) > 0.995, 0
FROM generate_series(0, $3::int - 1) AS d,
     generate_series(0, $4::int - 1) AS h,
     LATERAL (SELECT $5::timestamptz + h * $2::interval AS s) AS w
"""


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


async def load_windows(dsn: str, devices: int, hours: int) -> tuple[int, float]:
    started = time.monotonic()
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("SET synchronous_commit = off")
        await connection.execute(LOAD_SQL, "hour", timedelta(hours=1), devices, hours, T0)
        await connection.execute(
            LOAD_SQL, "day", timedelta(days=1), devices, max(1, hours // 24), T0
        )
        await connection.execute("VACUUM ANALYZE metrics")
        count = await connection.fetchval("SELECT count(*) FROM metrics")
    finally:
        await connection.close()
    return int(count), time.monotonic() - started


class Shapes:
    """The query mix: name -> (weight, a function making the query parameters)."""

    def __init__(self, devices: int, hours: int, rng: random.Random) -> None:
        self.devices = devices
        self.hours = hours
        self.rng = rng

    def device(self) -> str:
        return f"load-{self.rng.randrange(self.devices):05d}"

    def instant(self, margin_h: int = 0) -> datetime:
        return T0 + timedelta(hours=self.rng.randrange(max(1, self.hours - margin_h)))

    def by_device(self) -> dict[str, Any]:
        return {"device_id": self.device(), "period": "hour", "limit": 100}

    def by_device_range(self) -> dict[str, Any]:
        start = self.instant(24)
        return {
            "device_id": self.device(),
            "period": "hour",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=24)).isoformat(),
        }

    def by_period_range(self) -> dict[str, Any]:
        start = self.instant(1)
        return {
            "period": "hour",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
            "limit": 100,
        }

    def anomalies(self) -> dict[str, Any]:
        start = self.instant(24)
        return {
            "period": "hour",
            "anomalies_only": "true",
            "start": start.isoformat(),
            "end": (start + timedelta(days=1)).isoformat(),
        }

    def days(self) -> dict[str, Any]:
        return {"device_id": self.device(), "period": "day"}

    def pages(self) -> dict[str, Any]:
        return {"device_id": self.device(), "period": "hour", "limit": 200}

    def table(self) -> dict[str, tuple[int, Callable[[], dict[str, Any]]]]:
        return {
            "by_device": (30, self.by_device),
            "by_device_range": (20, self.by_device_range),
            "by_period_range": (15, self.by_period_range),
            "paginate_cursor": (15, self.pages),
            "anomalies_only": (10, self.anomalies),
            "day_by_device": (10, self.days),
        }


async def client_loop(
    client: httpx.AsyncClient,
    shapes: Shapes,
    deadline: float,
    latencies: dict[str, list[float]],
    errors: dict[str, int],
) -> None:
    table = shapes.table()
    names = list(table)
    weights = [table[name][0] for name in names]
    while time.monotonic() < deadline:
        name = shapes.rng.choices(names, weights)[0]
        params = table[name][1]()
        pages = 3 if name == "paginate_cursor" else 1
        for _ in range(pages):
            started = time.perf_counter()
            try:
                response = await client.get("/api/v1/metrics", params=params)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies[name].append(time.perf_counter() - started)
            if not ok:
                errors[name] += 1
                break
            cursor = response.json().get("next_cursor")
            if not cursor:
                break
            params = {**params, "cursor": cursor}


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


class RecordingPool:
    """Stands in for the asyncpg pool to capture the SQL the repository builds."""

    def __init__(self) -> None:
        self.sql = ""
        self.args: tuple[Any, ...] = ()

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Any]:  # noqa: ASYNC109 - asyncpg's signature
        self.sql, self.args = sql, args
        return []


async def explain(dsn: str, shapes: Shapes) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each shape's SQL; the shapes whose plan reads
    ``metrics`` without an index."""
    from storage.cursor import CursorKey, encode_cursor

    cursor = encode_cursor(CursorKey("load-00010", "hour", T0 + timedelta(hours=200)))
    queries = {
        "by_device": MetricsQuery(device_id="load-00010", period="hour", limit=100),
        "by_device_range": MetricsQuery(
            device_id="load-00010",
            period="hour",
            start=T0 + timedelta(hours=100),
            end=T0 + timedelta(hours=124),
        ),
        "by_period_range": MetricsQuery(
            period="hour", start=T0 + timedelta(hours=500), end=T0 + timedelta(hours=501), limit=100
        ),
        "paginate_cursor": MetricsQuery(
            device_id="load-00010", period="hour", limit=200, cursor=cursor
        ),
        "anomalies_only": MetricsQuery(
            period="hour",
            anomalies_only=True,
            start=T0 + timedelta(hours=300),
            end=T0 + timedelta(hours=324),
        ),
        "day_by_device": MetricsQuery(device_id="load-00010", period="day"),
        "no_filter_first_page": MetricsQuery(limit=100),
    }
    unindexed = []
    connection = await asyncpg.connect(dsn)
    try:
        for name, query in queries.items():
            pool = RecordingPool()
            await PostgresRepository(pool).query_metrics(query)
            rows = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {pool.sql}", *pool.args)
            plan = "\n".join(row[0] for row in rows)
            print(f"\n-- {name}\n{pool.sql}\n{plan}")
            if "Seq Scan on metrics" in plan:
                unindexed.append(name)
    finally:
        await connection.close()
    return unindexed


def start_api(dsn: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **AUTH_ENV,
        "DATABASE_URL": dsn,
        "KAFKA_BROKER_URL": f"127.0.0.1:{free_port()}",  # not needed by /api/v1/metrics
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "api", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
        for _ in range(300):
            if process.poll() is not None:
                text = await asyncio.to_thread(log.read_text)
                raise RuntimeError(f"the API exited:\n{text[-3000:]}")
            try:
                if (await client.get("/health")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the API did not answer /health within 30 s")


async def run(folder: Path) -> int:
    devices = env_int("LOAD_DEVICES", 1000)
    hours = env_int("LOAD_HOURS", 1000)
    clients = env_int("LOAD_CLIENTS", 200)
    seconds = env_int("LOAD_SECONDS", 60)
    server = EmbeddedPostgres(folder / "pg", port=free_port())
    dsn = await asyncio.to_thread(server.start)
    api: subprocess.Popen[bytes] | None = None
    try:
        await migrate(dsn)
        count, took = await load_windows(dsn, devices, hours)
        print(f"load: {count} windows stored in {took:.1f} s ({devices} devices)", flush=True)
        port = free_port()
        log = folder / "api.log"
        api = start_api(dsn, port, log)
        base = f"http://127.0.0.1:{port}"
        await wait_healthy(base, api, log)
        latencies: dict[str, list[float]] = defaultdict(list)
        errors: dict[str, int] = defaultdict(int)
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {"Authorization": f"Bearer {issue(lifetime_s=seconds + 600)}"}
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=60, trust_env=False
        ) as client:
            began = time.monotonic()
            deadline = began + seconds
            await asyncio.gather(
                *(
                    client_loop(
                        client,
                        Shapes(devices, hours, random.Random(n)),
                        deadline,
                        latencies,
                        errors,
                    )
                    for n in range(clients)
                )
            )
            elapsed = time.monotonic() - began
        unindexed = await explain(dsn, Shapes(devices, hours, random.Random(0)))
    finally:
        if api is not None and api.poll() is None:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(30)
        server.stop()
    every = [value for values in latencies.values() for value in values]
    total_errors = sum(errors.values())
    print(f"\nload summary: {clients} clients for {elapsed:.0f} s over {count} windows")
    print(f"  {'shape':<18}{'requests':>9}{'errors':>7}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for name in sorted(latencies):
        values = latencies[name]
        print(
            f"  {name:<18}{len(values):>9}{errors[name]:>7}{percentile(values, 0.5):>9.1f}"
            f"{percentile(values, 0.95):>9.1f}{percentile(values, 0.99):>9.1f}"
        )
    print(
        f"  {'all':<18}{len(every):>9}{total_errors:>7}{percentile(every, 0.5):>9.1f}"
        f"{percentile(every, 0.95):>9.1f}{percentile(every, 0.99):>9.1f}\n"
        f"  throughput {len(every) / elapsed:.0f} requests/s; mean"
        f" {statistics.fmean(every) * 1000:.1f} ms; errors {total_errors}; plans without an"
        f" index on metrics: {', '.join(unindexed) or 'none'}",
        flush=True,
    )
    return 1 if total_errors or unindexed else 0


def main() -> int:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the servers and the worker are stopped.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda received, frame: sys.exit(128 + received))
    folder = Path(tempfile.mkdtemp(prefix="energy-load-"))
    try:
        return asyncio.run(run(folder))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
