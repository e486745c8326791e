"""The PostgreSQL reader and bookkeeping: metrics pages for the API, worker stats, anomaly
model checkpoints, job counts and device sightings."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import orjson

from models.metrics import WindowAggregate
from storage.base import DeviceSeen, MetricsPage, MetricsQuery, SinkUnavailable
from storage.cursor import decode_cursor, metrics_page
from storage.metrics_sql import COLUMN_NAMES
from storage.postgres import SINK_NAME, mapped_errors

MAX_PAGE_SIZE = 10_000

UPSERT_DEVICES = """
INSERT INTO devices (device_id, first_seen, last_seen, last_reading)
SELECT device_id, first_seen, last_seen, last_reading::jsonb
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::text[])
    AS batch(device_id, first_seen, last_seen, last_reading)
ON CONFLICT (device_id) DO UPDATE SET
    first_seen = LEAST(devices.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen),
    last_reading = CASE
        WHEN EXCLUDED.last_seen >= devices.last_seen AND EXCLUDED.last_reading IS NOT NULL
        THEN EXCLUDED.last_reading
        ELSE devices.last_reading
    END
"""


def _json_text(value: Any) -> str | None:
    """JSON text for a jsonb parameter (orjson; the stdlib for what orjson refuses, such as
    integers beyond 64 bits)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return json.dumps(value, default=str)


class PostgresRepository:
    """Reads for the API (metrics pages), worker stats, and device sightings."""

    name = SINK_NAME

    def __init__(self, pool: Any, *, timeout: float = 30.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def ping(self) -> bool:
        """Whether the server answers a trivial query right now."""
        try:
            with mapped_errors():
                await self._pool.fetchval("SELECT 1", timeout=min(self._timeout, 5.0))
        except SinkUnavailable:
            return False
        return True

    async def query_metrics(self, query: MetricsQuery) -> MetricsPage:
        after = decode_cursor(query.cursor) if query.cursor is not None else None
        limit = max(1, min(query.limit, MAX_PAGE_SIZE))
        args: list[object] = []

        def param(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        where = ["(reading_count > 0 OR energy_kwh > 0)"]
        if query.device_id is not None:
            where.append(f"device_id = {param(query.device_id)}")
        if query.period is not None:
            where.append(f"period = {param(query.period)}")
        if query.start is not None:
            where.append(f"window_start >= {param(query.start)}")
        if query.end is not None:
            where.append(f"window_start < {param(query.end)}")
        if query.anomalies_only:
            where.append("is_anomaly")
        if after is not None:
            key = f"({param(after.device_id)}, {param(after.period)}, {param(after.window_start)})"
            where.append(f"(device_id, period, window_start) > {key}")
        sql = (
            f"SELECT {', '.join(COLUMN_NAMES)} FROM metrics WHERE {' AND '.join(where)}"
            f" ORDER BY device_id, period, window_start LIMIT {param(limit + 1)}"
        )
        with mapped_errors():
            rows = await self._pool.fetch(sql, *args, timeout=self._timeout)
        items = [WindowAggregate.model_validate(dict(row)) for row in rows[:limit]]
        return metrics_page(items, len(rows) > limit)

    async def save_worker_stats(self, worker_id: str, stats: dict[str, Any]) -> None:
        # Passed as text and cast in SQL, so it works whatever JSON codec the pool has.
        with mapped_errors():
            await self._pool.execute(
                "INSERT INTO worker_stats (worker_id, updated_at, stats)"
                " VALUES ($1, now(), $2::text::jsonb)"
                " ON CONFLICT (worker_id) DO UPDATE"
                " SET updated_at = EXCLUDED.updated_at, stats = EXCLUDED.stats",
                worker_id,
                json.dumps(stats, default=str),
                timeout=self._timeout,
            )

    async def anomaly_review_rows(
        self, start: datetime, end: datetime, history_start: datetime
    ) -> tuple[list[dict[str, Any]], int]:
        """For the daily anomaly review: the hour and day windows from ``history_start`` to
        ``end`` of every device with a flagged window in [start, end), and how many hour and
        day windows were scored in [start, end)."""
        with mapped_errors():
            rows = await self._pool.fetch(
                "WITH flagged AS (SELECT DISTINCT device_id FROM metrics"
                "  WHERE is_anomaly AND period IN ('hour', 'day')"
                "  AND window_start >= $1 AND window_start < $2)"
                " SELECT m.device_id, m.period, m.window_start, m.energy_kwh, m.coverage,"
                " m.anomaly_score, m.is_anomaly FROM metrics m JOIN flagged USING (device_id)"
                " WHERE m.period IN ('hour', 'day') AND m.window_start >= $3"
                " AND m.window_start < $2",
                start,
                end,
                history_start,
                timeout=self._timeout,
            )
            scored = await self._pool.fetchval(
                "SELECT count(*) FROM metrics WHERE period IN ('hour', 'day')"
                " AND window_start >= $1 AND window_start < $2 AND anomaly_score IS NOT NULL",
                start,
                end,
                timeout=self._timeout,
            )
        return [dict(r) for r in rows], int(scored or 0)

    async def job_metrics(self) -> list[dict[str, Any]]:
        """Jobs by kind and status, with the summed execution time of finished ones."""
        with mapped_errors():
            rows = await self._pool.fetch(
                "SELECT kind, status, count(*) AS count,"
                " coalesce(sum(duration_s), 0) AS duration_sum,"
                " count(duration_s) AS duration_count FROM jobs GROUP BY kind, status",
                timeout=self._timeout,
            )
        return [dict(r) for r in rows]

    async def load_anomaly_model(self, app_id: str, partition: int) -> bytes | None:
        """The latest checkpoint of a partition's anomaly model, if any."""
        with mapped_errors():
            value = await self._pool.fetchval(
                "SELECT model FROM anomaly_models WHERE app_id = $1 AND partition = $2",
                app_id,
                partition,
                timeout=self._timeout,
            )
        return bytes(value) if value is not None else None

    async def save_anomaly_model(
        self, app_id: str, partition: int, model: bytes, windows: int
    ) -> None:
        with mapped_errors():
            await self._pool.execute(
                "INSERT INTO anomaly_models (app_id, partition, model, windows, updated_at)"
                " VALUES ($1, $2, $3, $4, now())"
                " ON CONFLICT (app_id, partition) DO UPDATE SET model = EXCLUDED.model,"
                " windows = EXCLUDED.windows, updated_at = EXCLUDED.updated_at",
                app_id,
                partition,
                model,
                windows,
                timeout=self._timeout,
            )

    async def load_worker_stats(self) -> list[dict[str, Any]]:
        with mapped_errors():
            rows = await self._pool.fetch(
                "SELECT worker_id, updated_at, stats::text AS stats"
                " FROM worker_stats ORDER BY worker_id",
                timeout=self._timeout,
            )
        return [
            {
                "worker_id": row["worker_id"],
                "updated_at": row["updated_at"],
                "stats": cast(dict[str, Any], json.loads(row["stats"])),
            }
            for row in rows
        ]

    async def upsert_devices(self, rows: Sequence[DeviceSeen]) -> None:
        """Record sightings: ``first_seen`` keeps the minimum, ``last_seen`` the maximum."""
        merged: dict[str, DeviceSeen] = {}
        for row in rows:
            kept = merged.get(row.device_id)
            if kept is None:
                merged[row.device_id] = row
                continue
            newer, older = (row, kept) if row.last_seen >= kept.last_seen else (kept, row)
            merged[row.device_id] = DeviceSeen(
                device_id=row.device_id,
                first_seen=min(row.first_seen, kept.first_seen),
                last_seen=newer.last_seen,
                last_reading=newer.last_reading
                if newer.last_reading is not None
                else older.last_reading,
            )
        if not merged:
            return
        ordered = [merged[device_id] for device_id in sorted(merged)]
        with mapped_errors():
            await self._pool.execute(
                UPSERT_DEVICES,
                [row.device_id for row in ordered],
                [row.first_seen for row in ordered],
                [row.last_seen for row in ordered],
                [_json_text(row.last_reading) for row in ordered],
                timeout=self._timeout,
            )
