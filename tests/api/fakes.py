"""Test doubles for the API's collaborators: list-backed reader and stats store, scripted broker."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from api.kafka import KafkaUnavailable, PartitionOffsets
from models.metrics import Period, WindowAggregate
from storage.base import InvalidCursor, MetricsPage, MetricsQuery

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def window(
    device_id: str = "dev-1",
    period: Period = "hour",
    start: datetime = T0,
    *,
    hours: int = 1,
    energy_kwh: float = 0.5,
    cost: str = "0.150000000",
    is_anomaly: bool | None = False,
    revision: int = 0,
) -> WindowAggregate:
    return WindowAggregate(
        device_id=device_id,
        period=period,
        window_start=start,
        window_end=start + timedelta(hours=hours),
        reading_count=12,
        power_reading_count=10,
        power_mean_w=500.0,
        power_min_w=120.5,
        power_max_w=900.0,
        energy_kwh=energy_kwh,
        cost=Decimal(cost),
        currency="EUR",
        coverage=1.0,
        covered_seconds=3600.0 * hours,
        first_ts=start + timedelta(minutes=1),
        last_ts=start + timedelta(minutes=56, microseconds=250),
        anomaly_score=0.25,
        is_anomaly=is_anomaly,
        revision=revision,
    )


def _key(w: WindowAggregate) -> tuple[str, str, datetime]:
    return (w.device_id, w.period, w.window_start)


class FakeReader:
    """MetricsReader over a list, with the keyset cursor the contract describes."""

    def __init__(self, windows: list[WindowAggregate] | None = None) -> None:
        self.windows = sorted(windows or [], key=_key)
        self.queries: list[MetricsQuery] = []
        self.ping_error: Exception | None = None
        self.query_error: Exception | None = None
        self.pings = 0

    async def ping(self) -> None:
        self.pings += 1
        if self.ping_error is not None:
            raise self.ping_error

    async def query_metrics(self, query: MetricsQuery) -> MetricsPage:
        self.queries.append(query)
        if self.query_error is not None:
            raise self.query_error
        after = _decode(query.cursor) if query.cursor is not None else None
        matching = [
            w
            for w in self.windows
            if (query.device_id is None or w.device_id == query.device_id)
            and (query.period is None or w.period == query.period)
            and (query.start is None or w.window_start >= query.start)
            and (query.end is None or w.window_start < query.end)
            and (not query.anomalies_only or w.is_anomaly is True)
            and (after is None or _key(w) > after)
        ]
        items = matching[: query.limit]
        more = len(matching) > query.limit
        return MetricsPage(items=items, next_cursor=_encode(_key(items[-1])) if more else None)


def _encode(key: tuple[str, str, datetime]) -> str:
    text = f"{key[0]}|{key[1]}|{key[2].isoformat()}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def _decode(cursor: str) -> tuple[str, str, datetime]:
    try:
        device_id, period, start = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return (device_id, period, datetime.fromisoformat(start))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor(cursor) from exc


@dataclass
class FakeStatsStore:
    records: list[dict[str, Any]] = field(default_factory=list)
    error: Exception | None = None

    async def save_worker_stats(self, worker_id: str, stats: dict[str, Any]) -> None:
        self.records = [r for r in self.records if r["worker_id"] != worker_id]
        self.records.append(
            {"worker_id": worker_id, "updated_at": datetime.now(UTC), "stats": stats}
        )

    async def load_worker_stats(self) -> list[dict[str, Any]]:
        if self.error is not None:
            raise self.error
        return list(self.records)


@dataclass
class FakeKafka:
    offsets: list[PartitionOffsets] = field(default_factory=list)
    down: bool = False
    closed: bool = False
    asked: list[tuple[str, str]] = field(default_factory=list)

    async def check(self) -> None:
        if self.down:
            raise KafkaUnavailable("fake:9092", "connection refused")

    async def group_offsets(self, group: str, topic: str) -> list[PartitionOffsets]:
        self.asked.append((group, topic))
        if self.down:
            raise KafkaUnavailable("fake:9092", "connection refused")
        return list(self.offsets)

    async def close(self) -> None:
        self.closed = True
