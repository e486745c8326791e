"""The one small sink interface every store implements, plus the read side the API uses.

A sink driver only writes; retrying and buffering live in the caller (the worker's
emitter), so every driver behaves the same under outage. Writes are idempotent upserts
keyed by ``(device_id, period, window_start)``: a higher ``revision`` wins, a lower one
changes nothing, an equal one replaces the stored values only if they differ (the stream
started over, e.g. after the memory-only embedded broker restarted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from models.metrics import Period, WindowAggregate


class StorageError(Exception):
    """Base of every storage failure."""


class SinkUnavailable(StorageError):
    """The store cannot be reached or refused the write for a transient reason; retry later."""

    def __init__(self, sink: str, detail: str, retry_after: float | None = None) -> None:
        super().__init__(f"{sink} unavailable: {detail}")
        self.sink = sink
        self.detail = detail
        self.retry_after = retry_after


class SinkRejected(StorageError):
    """The store rejected the data itself (a bug or schema mismatch); retrying will not help."""

    def __init__(self, sink: str, detail: str) -> None:
        super().__init__(f"{sink} rejected the write: {detail}")
        self.sink = sink
        self.detail = detail


@runtime_checkable
class Sink(Protocol):
    """start, write a batch idempotently, close."""

    name: str

    async def start(self) -> None: ...

    async def write(self, batch: Sequence[WindowAggregate]) -> None:
        """Upsert the batch; raise SinkUnavailable (retryable) or SinkRejected."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class MetricsQuery:
    """Filters of ``GET /api/v1/metrics``. ``start``/``end`` bound ``window_start`` as [start, end)."""

    device_id: str | None = None
    period: Period | None = None
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 100
    cursor: str | None = None
    anomalies_only: bool = False


@dataclass(frozen=True)
class MetricsPage:
    items: list[WindowAggregate]
    next_cursor: str | None


class InvalidCursor(StorageError):
    """The cursor was not produced by this service (or is corrupt)."""


class MetricsReader(Protocol):
    async def query_metrics(self, query: MetricsQuery) -> MetricsPage:
        """Windows matching the query, ordered by (device_id, period, window_start); only
        windows with reading_count > 0 or energy_kwh > 0. Keyset pagination via an opaque
        cursor; raises InvalidCursor for a cursor it did not issue."""
        ...


class StatsStore(Protocol):
    """Each worker publishes its processing counters; the API sums them."""

    async def save_worker_stats(self, worker_id: str, stats: dict[str, Any]) -> None: ...

    async def load_worker_stats(self) -> list[dict[str, Any]]:
        """One dict per worker: ``{"worker_id", "updated_at", "stats"}``."""
        ...


@dataclass(frozen=True)
class DeviceSeen:
    """What a batch of readings says about one device: its earliest and latest reading time
    and (optionally) the latest reading. Stores keep the minimum ``first_seen``, the maximum
    ``last_seen`` and the ``last_reading`` that goes with it."""

    device_id: str
    first_seen: datetime
    last_seen: datetime
    last_reading: Mapping[str, Any] | None = None


class DeviceStore(Protocol):
    async def upsert_devices(self, rows: Sequence[DeviceSeen]) -> None: ...
