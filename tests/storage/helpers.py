"""Builders of window aggregates and readers of what each store holds, for the storage tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from models.metrics import Period, WindowAggregate
from storage.influx import MEASUREMENT

T0 = datetime(2024, 3, 1, tzinfo=UTC)
_LENGTH = {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(days=7),
           "month": timedelta(days=31)}  # fmt: skip

WindowKey = tuple[str, str, datetime]
View = dict[WindowKey, dict[str, frozenset[Any]]]


def window(
    device_id: str = "dev-1",
    period: Period = "hour",
    index: int = 0,
    *,
    revision: int = 0,
    reading_count: int = 12,
    energy_kwh: float = 0.25,
    cost: str = "0.075000000",
    power: tuple[float, float, float] | None = (250.0, 100.0, 400.0),
    anomaly_score: float | None = None,
    is_anomaly: bool | None = None,
) -> WindowAggregate:
    """Window number ``index`` of ``period`` from T0, with plausible values."""
    start = T0 + _LENGTH[period] * index
    end = start + _LENGTH[period]
    length = (end - start).total_seconds()
    mean, low, high = power if power is not None else (None, None, None)
    return WindowAggregate(
        device_id=device_id,
        period=period,
        window_start=start,
        window_end=end,
        reading_count=reading_count,
        power_reading_count=reading_count if power is not None else 0,
        power_mean_w=mean,
        power_min_w=low,
        power_max_w=high,
        energy_kwh=energy_kwh,
        cost=Decimal(cost),
        currency="EUR",
        coverage=0.5,
        covered_seconds=length / 2,
        first_ts=start + timedelta(seconds=5) if reading_count else None,
        last_ts=start + timedelta(seconds=3000) if reading_count else None,
        anomaly_score=anomaly_score,
        is_anomaly=is_anomaly,
        revision=revision,
    )


def key_of(item: WindowAggregate) -> WindowKey:
    return (item.device_id, item.period, item.window_start)


def full_fields(item: WindowAggregate) -> dict[str, object]:
    """Every field of the window (PostgreSQL and memory keep them all)."""
    return item.model_dump()


def influx_fields(item: WindowAggregate) -> dict[str, object]:
    """The fields an InfluxDB point carries, as VictoriaMetrics returns them (floats)."""
    fields: dict[str, object] = {
        "reading_count": float(item.reading_count),
        "revision": float(item.revision),
        "energy_kwh": item.energy_kwh,
        "cost": float(item.cost),
        "coverage": item.coverage,
    }
    optional = {
        "power_mean_w": item.power_mean_w,
        "power_min_w": item.power_min_w,
        "power_max_w": item.power_max_w,
        "anomaly_score": item.anomaly_score,
        "is_anomaly": None if item.is_anomaly is None else float(item.is_anomaly),
    }
    fields.update({name: value for name, value in optional.items() if value is not None})
    return fields


def singleton_view(items: Iterable[WindowAggregate], project: Any) -> View:
    return {key_of(item): {k: frozenset([v]) for k, v in project(item).items()} for item in items}


def highest_revisions(writes: Iterable[Iterable[WindowAggregate]]) -> list[WindowAggregate]:
    """What an upsert store keeps after these writes: per key, the highest revision, the
    latest write among equal revisions (a stream that started over writes them again)."""
    kept: dict[WindowKey, WindowAggregate] = {}
    for batch in writes:
        best: dict[WindowKey, WindowAggregate] = {}
        for item in batch:  # within a batch the later of equal revisions wins
            current = best.get(key_of(item))
            if current is None or item.revision >= current.revision:
                best[key_of(item)] = item
        for key, item in best.items():
            if key not in kept or kept[key].revision <= item.revision:
                kept[key] = item
    return list(kept.values())


def every_write_view(writes: Iterable[Iterable[WindowAggregate]]) -> View:
    """What VictoriaMetrics shows after these writes: each distinct value written per field."""
    view: dict[WindowKey, dict[str, set[object]]] = {}
    for batch in writes:
        for item in batch:
            fields = view.setdefault(key_of(item), {})
            for name, value in influx_fields(item).items():
                fields.setdefault(name, set()).add(value)
    return {key: {k: frozenset(v) for k, v in fields.items()} for key, fields in view.items()}


async def victoria_view(url: str, device_prefix: str) -> View:
    """Every sample VictoriaMetrics holds for devices starting with ``device_prefix``."""
    assert re.fullmatch(r"[A-Za-z0-9-]+", device_prefix), "prefix must need no regex escaping"
    async with httpx.AsyncClient(base_url=url, trust_env=False, timeout=10) as client:
        # Written rows become searchable after a flush (about a second); force it now.
        (await client.get("/internal/force_flush")).raise_for_status()
        selector = f'{{__name__=~"{MEASUREMENT}_.*",device_id=~"{device_prefix}.*"}}'
        response = await client.post("/api/v1/export", data={"match[]": selector})
        response.raise_for_status()
    view: dict[WindowKey, dict[str, set[object]]] = {}
    for line in response.text.splitlines():
        series = json.loads(line)
        labels = series["metric"]
        field = labels["__name__"].removeprefix(f"{MEASUREMENT}_")
        for value, millis in zip(series["values"], series["timestamps"], strict=True):
            start = datetime.fromtimestamp(millis / 1000, tz=UTC)
            key = (labels["device_id"], labels["period"], start)
            view.setdefault(key, {}).setdefault(field, set()).add(float(value))
    return {key: {k: frozenset(v) for k, v in fields.items()} for key, fields in view.items()}
