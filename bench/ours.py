"""Our worker, the real process (``python -m agents.app worker``), timed end to end: from
the first batch consumed to the last final window of the data stored in PostgreSQL.

With ``workers`` > 1 that many worker processes of one app split a topic of as many
partitions, as a deployment with a worker per core runs them."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg

from bench.process import peak_rss_mb, spawn, stop, tail
from bench.progress import RunResult, note
from bench.servers import Servers
from bench.workload import Workload
from streams.timeparse import us_to_datetime

# Logged by agents/resources.py when the first batch arrives (before it is folded).
FIRST_BATCH = b"worker ready"
COUNT_FINAL = """
SELECT count(*) FROM metrics WHERE period IN ('hour', 'day') AND window_end <= $1
"""


async def run_ours(
    servers: Servers,
    topic: str,
    workload: Workload,
    folder: Path,
    *,
    time_limit: float,
    workers: int = 1,
    extra_env: dict[str, str] | None = None,
) -> tuple[RunResult, float | None]:
    """(result, peak RSS of the workers in MB, summed). ``topic`` has ``workers`` partitions."""
    dsn = await servers.fresh_database()
    suffix = uuid.uuid4().hex[:8]
    env = {
        "KAFKA_BROKER_URL": servers.bootstrap,
        "DATABASE_URL": dsn,
        "APP_ID": f"bench-{suffix}",
        "READINGS_TOPIC": topic,
        "DLQ_TOPIC": f"bench-{suffix}.dlq",
        "METRICS_TOPIC": f"bench-{suffix}.metrics",
        "ANOMALIES_TOPIC": f"bench-{suffix}.anomalies",
        "JOBS_TOPIC": f"bench-{suffix}.jobs",
        "INFLUXDB_URL": "",
        "TOPIC_PARTITIONS": str(workers),
        "LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    logs = [folder / f"ours-{suffix}-{n}.log" for n in range(workers)]
    processes = [
        spawn(
            ["-m", "agents.app", "worker", "-l", "info"],
            {**env, "DATA_DIR": str(folder / f"data-{suffix}-{n}")},
            log_path,
        )
        for n, log_path in enumerate(logs)
    ]
    cutoff = us_to_datetime(workload.cutoff_us)
    connection = await asyncpg.connect(dsn)
    peak: float | None = None
    try:
        started = time.monotonic()
        first: float | None = None
        while first is None:
            await asyncio.sleep(0.02)
            if any(FIRST_BATCH in log_path.read_bytes() for log_path in logs):
                first = time.time()
            elif time.monotonic() - started > 120:
                raise RuntimeError(f"worker consumed nothing in 120 s:\n{tail(logs[0])}")
            _check_alive(processes, logs)
        stored = 0
        shown = time.monotonic()
        while True:
            await asyncio.sleep(_poll_interval(stored, workload.final_windows, time.time() - first))
            stored = int(await connection.fetchval(COUNT_FINAL, cutoff))
            now = time.time()
            if stored >= workload.final_windows:
                result = RunResult(workload.readings, now - first)
                break
            _check_alive(processes, logs)
            if now - first >= time_limit:
                # Rated on the share of the windows it stored (they grow with the readings).
                done = workload.readings * stored / max(workload.final_windows, 1)
                result = RunResult(int(done), now - first, capped=True)
                break
            if time.monotonic() - shown > 10:
                shown = time.monotonic()
                note(
                    f"  ours: {stored:,} of {workload.final_windows:,} windows stored "
                    f"in {now - first:.0f} s"
                )
        peaks = [peak_rss_mb(process.pid) for process in processes]
        peak = sum(p for p in peaks if p is not None) if None not in peaks else None
    finally:
        await connection.close()
        for process in processes:
            stop(process)
        await servers.drop_database(dsn)
    return result, peak


def _poll_interval(stored: int, final: int, elapsed: float) -> float:
    """Seconds until the next count. The count scans the growing metrics table on the cores
    the workers need (about 40 ms of a server process at 150,000 rows; counting every 0.25 s
    was 30 % of PostgreSQL's time in a 300,000-reading run), so wait half the time the rate
    so far says is left: few counts early, tighter ones (down to 0.1 s) as the end nears."""
    if stored <= 0:
        return min(2.0, max(0.25, elapsed / 10))
    left = max(final - stored, 0) * elapsed / stored
    return min(2.0, max(0.1, left / 2))


def _check_alive(processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    for process, log_path in zip(processes, logs, strict=True):
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}:\n{tail(log_path)}")
