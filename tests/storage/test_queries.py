"""``query_metrics``: filters, zero windows hidden, keyset pagination, cursors; the in-memory
reader and the PostgreSQL repository must answer identically."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from models.metrics import WindowAggregate
from storage.base import InvalidCursor, MetricsQuery, MetricsReader, Sink
from storage.cursor import CursorKey, decode_cursor, encode_cursor
from storage.memory import MemorySink
from storage.postgres_repository import PostgresRepository
from storage.postgres_sink import PostgresSink
from tests.storage.helpers import T0, key_of, window


@dataclass
class Store:
    sink: Sink
    reader: MetricsReader


@pytest.fixture(params=["memory", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        memory = MemorySink()
        return Store(memory, memory)
    pool = request.getfixturevalue("pg_pool")
    return Store(PostgresSink(pool), PostgresRepository(pool))


# Mixed case and punctuation: byte order ("B" < "a" < "a-1" < "a_1") must hold in both stores.
DEVICES = ["a", "B", "a_1", "a-1"]


def dataset() -> list[WindowAggregate]:
    items: list[WindowAggregate] = []
    for device in DEVICES:
        for i in range(5):
            items.append(window(device, "hour", i, energy_kwh=0.1 * (i + 1)))
        items.append(window(device, "day", 0, anomaly_score=0.99, is_anomaly=True))
        items.append(window(device, "day", 1, anomaly_score=0.1, is_anomaly=False))
    # Zero windows: stored, never served.
    items.append(window("a", "hour", 5, reading_count=0, energy_kwh=0.0, power=None))
    items.append(window("zero", "month", 0, reading_count=0, energy_kwh=0.0, power=None))
    # Energy without readings in the window (an interval spanning it) is served.
    items.append(window("span", "hour", 0, reading_count=0, energy_kwh=0.4, power=None))
    return items


def visible(items: list[WindowAggregate]) -> list[WindowAggregate]:
    shown = [item for item in items if item.reading_count > 0 or item.energy_kwh > 0]
    return sorted(shown, key=key_of)


async def loaded(store: Store) -> list[WindowAggregate]:
    items = dataset()
    await store.sink.write(items)
    return items


async def all_pages(
    read: Callable[[MetricsQuery], Awaitable[Any]], query: MetricsQuery
) -> tuple[list[WindowAggregate], int]:
    items: list[WindowAggregate] = []
    pages = 0
    cursor = query.cursor
    while True:
        page = await read(dataclasses.replace(query, cursor=cursor))
        pages += 1
        items.extend(page.items)
        if page.next_cursor is None:
            return items, pages
        cursor = page.next_cursor
        assert pages < 100, "pagination does not end"


async def test_everything_visible_in_key_order(store: Store) -> None:
    items = await loaded(store)
    page = await store.reader.query_metrics(MetricsQuery(limit=1000))
    assert page.items == visible(items)
    assert page.next_cursor is None
    assert [item.device_id for item in page.items][:1] == ["B"]


async def test_zero_windows_are_hidden(store: Store) -> None:
    await loaded(store)
    page = await store.reader.query_metrics(MetricsQuery(device_id="zero"))
    assert page.items == []
    [span] = (await store.reader.query_metrics(MetricsQuery(device_id="span"))).items
    assert span.energy_kwh == 0.4


@pytest.mark.parametrize(
    ("query", "predicate"),
    [
        (MetricsQuery(device_id="a_1"), lambda w: w.device_id == "a_1"),
        (MetricsQuery(period="day"), lambda w: w.period == "day"),
        (
            MetricsQuery(start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=3)),
            lambda w: T0 + timedelta(hours=1) <= w.window_start < T0 + timedelta(hours=3),
        ),
        (MetricsQuery(anomalies_only=True), lambda w: w.is_anomaly is True),
        (
            MetricsQuery(device_id="a", period="hour", start=T0 + timedelta(hours=2)),
            lambda w: (
                w.device_id == "a"
                and w.period == "hour"
                and w.window_start >= T0 + timedelta(hours=2)
            ),
        ),
    ],
    ids=["device", "period", "start-end", "anomalies", "combined"],
)
async def test_filters(
    store: Store, query: MetricsQuery, predicate: Callable[[WindowAggregate], bool]
) -> None:
    items = await loaded(store)
    expected = [item for item in visible(items) if predicate(item)]
    assert expected, "the filter should match something"
    page = await store.reader.query_metrics(dataclasses.replace(query, limit=1000))
    assert page.items == expected


async def test_end_is_exclusive(store: Store) -> None:
    await loaded(store)
    query = MetricsQuery(device_id="a", period="hour", end=T0 + timedelta(hours=1))
    page = await store.reader.query_metrics(query)
    assert [item.window_start for item in page.items] == [T0]


@pytest.mark.parametrize("limit", [1, 3, 7, 1000])
async def test_pages_cover_everything_exactly_once(store: Store, limit: int) -> None:
    items = await loaded(store)
    got, pages = await all_pages(store.reader.query_metrics, MetricsQuery(limit=limit))
    assert got == visible(items)
    expected_pages = max(1, -(-len(visible(items)) // limit))
    # Readers fetch one row beyond the limit, so a full last page needs no empty follow-up.
    assert pages == expected_pages


async def test_pagination_with_filters(store: Store) -> None:
    items = await loaded(store)
    query = MetricsQuery(period="hour", limit=4)
    got, _ = await all_pages(store.reader.query_metrics, query)
    assert got == [item for item in visible(items) if item.period == "hour"]


async def test_a_cursor_stays_valid_when_rows_are_added(store: Store) -> None:
    await loaded(store)
    first = await store.reader.query_metrics(MetricsQuery(limit=3))
    assert first.next_cursor is not None
    await store.sink.write([window("0-first", "hour", 0)])  # sorts before every page
    second = await store.reader.query_metrics(MetricsQuery(limit=3, cursor=first.next_cursor))
    assert key_of(second.items[0]) > key_of(first.items[-1])


async def test_cost_comes_back_as_exact_decimal(store: Store) -> None:
    await store.sink.write([window("money", "month", 0, cost="123456.123456789")])
    [item] = (await store.reader.query_metrics(MetricsQuery(device_id="money"))).items
    assert isinstance(item.cost, Decimal)
    assert item.cost == Decimal("123456.123456789")


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage!",
        "bm90IGpzb24",  # "not json"
        _b64({"device_id": "a"}),
        _b64(["m0", "a", "hour", "2024-03-01T00:00:00+00:00"]),
        _b64(["m1", "a", "fortnight", "2024-03-01T00:00:00+00:00"]),
        _b64(["m1", "a", "hour", "2024-03-01T00:00:00"]),  # no offset
        _b64(["m1", "a", "hour", "yesterday"]),
        _b64(["m1", 7, "hour", "2024-03-01T00:00:00+00:00"]),
        "A" * 5000,
        # Crafted keys no stored row can have; PostgreSQL used to fail on them (500).
        _b64(["m1", "a\u0000b", "hour", "2024-03-01T00:00:00+00:00"]),
        _b64(["m1", "\ud800", "hour", "2024-03-01T00:00:00+00:00"]),
        _b64(["m1", "dev 1", "hour", "2024-03-01T00:00:00+00:00"]),
        _b64(["m1", "a" * 129, "hour", "2024-03-01T00:00:00+00:00"]),
        _b64(["m1", "a", "hour", "0001-01-01T00:00:00+14:00"]),
        _b64(["m1", "a", "hour", "9999-12-31T23:59:59-14:00"]),
        # Nesting deeper than the recursion limit: json raised RecursionError (a 500).
        base64.urlsafe_b64encode(b"[" * 1500).decode(),
    ],
)
async def test_bad_cursor_is_refused(store: Store, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await store.reader.query_metrics(MetricsQuery(cursor=cursor))


def test_cursor_round_trip() -> None:
    key = CursorKey("dev:1", "week", T0 + timedelta(days=3))
    assert decode_cursor(encode_cursor(key)) == key
