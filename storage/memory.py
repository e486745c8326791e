"""In-memory driver for tests and demos: the same upsert rule and the same reads as PostgreSQL.

It can also pretend to be down (``unavailable``) or to refuse data (``reject_next``), so the
retry and outage paths are testable without a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from models.metrics import WindowAggregate
from storage.base import (
    DeviceSeen,
    MetricsPage,
    MetricsQuery,
    SinkRejected,
    SinkUnavailable,
)
from storage.cursor import decode_cursor, metrics_page

WindowKey = tuple[str, str, datetime]


def window_key(window: WindowAggregate) -> WindowKey:
    return (window.device_id, window.period, window.window_start)


class MemorySink:
    """A dict keyed by ``(device_id, period, window_start)``; a higher revision wins."""

    name = "memory"

    def __init__(self) -> None:
        self.windows: dict[WindowKey, WindowAggregate] = {}
        self.devices: dict[str, DeviceSeen] = {}
        self.worker_stats: dict[str, dict[str, Any]] = {}
        self.writes = 0
        self.started = False
        self.closed = False
        self.unavailable: str | None = None
        """When set, every call raises SinkUnavailable with this reason."""
        self.retry_after: float | None = None
        self.reject_next: str | None = None
        """When set, the next write raises SinkRejected with this reason (once)."""

    def _check(self) -> None:
        if self.unavailable is not None:
            raise SinkUnavailable(self.name, self.unavailable, self.retry_after)

    async def start(self) -> None:
        self._check()
        self.started = True

    async def write(self, batch: Sequence[WindowAggregate]) -> None:
        self._check()
        if self.reject_next is not None:
            reason, self.reject_next = self.reject_next, None
            raise SinkRejected(self.name, reason)
        self.writes += 1
        for window in batch:
            key = window_key(window)
            stored = self.windows.get(key)
            # Equal revision, other values: the stream started over (see PostgresSink).
            if stored is None or stored.revision <= window.revision:
                self.windows[key] = window

    async def close(self) -> None:
        self.closed = True

    # -- reads ------------------------------------------------------------------------------

    async def ping(self) -> bool:
        return self.unavailable is None

    async def query_metrics(self, query: MetricsQuery) -> MetricsPage:
        after = decode_cursor(query.cursor) if query.cursor is not None else None
        self._check()
        limit = max(1, query.limit)
        matching = sorted(
            (
                window
                for key, window in self.windows.items()
                if _matches(window, query) and (after is None or key > tuple(after))
            ),
            key=window_key,
        )
        return metrics_page(matching[:limit], len(matching) > limit)

    # -- worker stats and devices -----------------------------------------------------------

    async def save_worker_stats(self, worker_id: str, stats: dict[str, Any]) -> None:
        self._check()
        self.worker_stats[worker_id] = {
            "worker_id": worker_id,
            "updated_at": datetime.now(UTC),
            "stats": dict(stats),
        }

    async def load_worker_stats(self) -> list[dict[str, Any]]:
        self._check()
        return [self.worker_stats[worker_id] for worker_id in sorted(self.worker_stats)]

    async def upsert_devices(self, rows: Sequence[DeviceSeen]) -> None:
        self._check()
        for row in rows:
            kept = self.devices.get(row.device_id)
            if kept is None:
                self.devices[row.device_id] = row
                continue
            newer, older = (row, kept) if row.last_seen >= kept.last_seen else (kept, row)
            self.devices[row.device_id] = DeviceSeen(
                device_id=row.device_id,
                first_seen=min(row.first_seen, kept.first_seen),
                last_seen=newer.last_seen,
                last_reading=newer.last_reading
                if newer.last_reading is not None
                else older.last_reading,
            )


def _matches(window: WindowAggregate, query: MetricsQuery) -> bool:
    if not (window.reading_count > 0 or window.energy_kwh > 0):
        return False
    if query.device_id is not None and window.device_id != query.device_id:
        return False
    if query.period is not None and window.period != query.period:
        return False
    if query.start is not None and window.window_start < query.start:
        return False
    if query.end is not None and window.window_start >= query.end:
        return False
    return not (query.anomalies_only and not window.is_anomaly)
