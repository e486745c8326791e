"""The COPY and JSON upserts store exactly what the typed-array upsert stores, bit for bit.

``PostgresSink.write`` sends a batch as binary COPY rows into a staging table
(``storage.metrics_copy``, ``UPSERT_METRICS_STAGED``), else as one JSON parameter
(``UPSERT_METRICS_JSON``), and falls back to one typed array per column (``UPSERT_METRICS``,
asyncpg's binary encoding) for values neither carries exactly. Whatever the model accepts,
every path must leave the same row (compared through the column types' binary send
functions, so -0.0, a numeric's scale and a microsecond all count) or be refused alike.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_core import TzInfo

from models.metrics import PERIODS, EncodedWindows, WindowAggregate
from storage.base import StorageError
from storage.metrics_copy import copy_data
from storage.metrics_sql import (
    _COLUMNS,
    UPSERT_METRICS,
    UPSERT_METRICS_JSON,
    metric_columns,
    metrics_json,
)
from storage.postgres import map_error
from storage.postgres_sink import PostgresSink, dedupe_windows
from tests.storage.helpers import window

T = TypeVar("T")

_SEND = {"text": "textsend", "timestamptz": "timestamptz_send", "int4": "int4send",
         "float8": "float8send", "numeric": "numeric_send", "bool": "boolsend"}  # fmt: skip
# Every column as the bytes of its binary form, in key order.
_READ = (
    f"SELECT {', '.join(f'{_SEND[kind]}({name})' for name, kind in _COLUMNS)}"
    " FROM metrics ORDER BY device_id, period, window_start"
)

Outcome = list[tuple[bytes | None, ...]] | type[StorageError]

# Values each path has its own way with: signed zero, subnormals, the ends of the range.
_EDGE_FLOATS = [-0.0, 0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308,
                1.7976931348623157e308, -1.7976931348623157e308, 0.1, 1e16, 1e-7, 1 / 3]  # fmt: skip
_NON_FINITE = [math.nan, math.inf, -math.inf]
_EDGE_DECIMALS = [Decimal(text) for text in (
    "0.037037036700000000", "1E+30", "-0.000000001", "-0", "0E-10", "0E+10", "1.500",
    "123456789012345678901234567890.123456789012345678901234567890", "1E+1000", "1E-1000",
    "1E+131071", "1E-16383", "0E+200000",
)]  # fmt: skip
# Beyond what numeric's text input takes (the arrays store these).
_HUGE_DECIMALS = [Decimal("1E+131072"), Decimal("-" + "9" * 131073)]
# Any exponent numeric holds (not more than 16383 decimal places).
_STORABLE_DECIMALS = st.decimals(allow_nan=False, allow_infinity=False).filter(
    lambda d: int(d.as_tuple().exponent) >= -16383 and d.adjusted() < 131072
)
_EDGE_TEXTS = ["EUR", "", "\\", '"', "'", "{a,b}", "(1,2)", "NULL", "null", "\n\t\x01",
               "\u2028\ufeff", "\U0001f600", "é", "\x7f"]  # fmt: skip
_INT4 = st.integers(0, 2**31 - 1) | st.sampled_from([0, 1, 2**31 - 1])
_BEYOND_INT4 = st.sampled_from([2**31, 2**63, 2**64 + 1])


def _fixed_minutes(hours: int = 16) -> st.SearchStrategy[tzinfo]:
    """Fixed offsets of whole minutes under ``hours`` (16: what timestamptz input reads)."""
    minutes = st.integers(-(hours * 60 - 1), hours * 60 - 1)
    return st.one_of(
        st.just(UTC),
        minutes.map(lambda m: timezone(timedelta(minutes=m))),
        minutes.map(lambda m: TzInfo(m * 60)),
    )


def _any_zone() -> st.SearchStrategy[tzinfo | None]:
    """Zones the fast path leaves to the arrays too: naive, seconds in the offset, varying."""
    seconds = st.integers(-(24 * 3600 - 1), 24 * 3600 - 1)
    return st.one_of(
        st.none(),
        _fixed_minutes(24),
        seconds.map(lambda s: timezone(timedelta(seconds=s))),
        st.timedeltas(-timedelta(hours=23), timedelta(hours=23)).map(timezone),
        seconds.map(TzInfo),
        st.timezones(),
    )


@st.composite
def _windows(draw: st.DrawFn, mode: str) -> WindowAggregate:
    """A window the model accepts. ``plain``: values JSON carries and the table takes;
    ``exotic``: also what only the arrays store; ``bad``: also what the table refuses (NUL,
    beyond int4) or asyncpg cannot encode (lone surrogates)."""
    floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(_EDGE_FLOATS)
    zones: st.SearchStrategy[tzinfo | None] = _fixed_minutes()
    years = {"min_value": datetime(2, 1, 1), "max_value": datetime(9998, 12, 31)}
    decimals = _STORABLE_DECIMALS | st.sampled_from(_EDGE_DECIMALS)
    texts = st.text(st.characters(exclude_characters="\x00")) | st.sampled_from(_EDGE_TEXTS)
    ints = _INT4
    if mode != "plain":
        floats = floats | st.sampled_from(_NON_FINITE)
        zones = _any_zone()
        years = {}
        decimals = decimals | st.sampled_from(_HUGE_DECIMALS)
    if mode == "bad":
        texts = texts | st.sampled_from(["a\x00b", "\x00", "\ud800", "a\udfffb"])
        decimals = decimals | st.sampled_from([Decimal("1E-16384")])
        ints = ints | _BEYOND_INT4
        decimals = decimals | st.decimals(allow_nan=False, allow_infinity=False)
    moments = st.datetimes(timezones=zones, **years)
    if mode != "plain":
        moments = (
            moments
            | st.sampled_from([datetime.min, datetime.max])
            | st.sampled_from([datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)])
        )
    start = draw(moments)
    try:
        end = start + draw(st.timedeltas(timedelta(microseconds=1), timedelta(days=40)))
    except OverflowError:
        end = draw(moments)
    try:
        return WindowAggregate(
            device_id=draw(texts),
            period=draw(st.sampled_from(PERIODS)),
            window_start=start,
            window_end=end,
            reading_count=draw(ints),
            power_reading_count=draw(ints),
            power_mean_w=draw(st.none() | floats),
            power_min_w=draw(st.none() | floats),
            power_max_w=draw(st.none() | floats),
            energy_kwh=draw(floats),
            cost=draw(decimals),
            currency=draw(texts),
            coverage=draw(floats),
            covered_seconds=draw(floats),
            first_ts=draw(st.none() | moments),
            last_ts=draw(st.none() | moments),
            anomaly_score=draw(st.none() | floats),
            is_anomaly=draw(st.none() | st.booleans()),
            revision=draw(ints),
        )
    except ValidationError:
        assume(False)
        raise


@st.composite
def _batches(draw: st.DrawFn) -> list[WindowAggregate]:
    mode = draw(st.sampled_from(["plain", "plain", "plain", "plain", "exotic", "exotic", "bad"]))
    return draw(st.lists(_windows(mode), min_size=1, max_size=4))


async def _outcome(pool: Any, write: Callable[[], Coroutine[Any, Any, Any]]) -> Outcome:
    """What ``write`` leaves in an emptied metrics table, or the storage error it maps to."""
    await pool.execute("TRUNCATE metrics")
    try:
        await write()
    except Exception as exc:
        mapped = map_error(exc)
        if mapped is None:
            raise
        return type(mapped)
    return [tuple(row) for row in await pool.fetch(_READ)]


def _blocking(loop: asyncio.AbstractEventLoop) -> Callable[[Coroutine[Any, Any, T]], T]:
    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    return run


async def test_json_and_arrays_store_the_same_bits(pg_pool: Any) -> None:
    run = _blocking(asyncio.get_running_loop())
    paths = {"json": 0, "arrays": 0, "rejected": 0, "encoded": 0, "copy": 0}

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(_batches())
    def check(batch: list[WindowAggregate]) -> None:
        try:
            rows = dedupe_windows(batch)
        except TypeError:
            # Naive and aware starts of one device and period cannot be ordered: the sink
            # refuses such a batch with that TypeError whichever path it would take.
            assume(False)
        payload = metrics_json(rows)

        async def arrays() -> None:
            await pg_pool.execute(UPSERT_METRICS, *metric_columns(rows))

        expected = run(_outcome(pg_pool, arrays))
        # What the sink stores (through JSON or, for what JSON cannot carry, the arrays).
        assert run(_outcome(pg_pool, lambda: PostgresSink(pg_pool).write(batch))) == expected
        # ... also when the worker hands it the windows' JSON made for the metrics topic
        encoded = _encoded(batch)
        if encoded is not None:
            paths["encoded"] += 1
            sink = PostgresSink(pg_pool)
            assert run(_outcome(pg_pool, lambda: sink.write(encoded))) == expected
        if not isinstance(expected, list):
            paths["rejected"] += 1
            return
        paths["json" if payload is not None else "arrays"] += 1
        if copy_data(rows) is not None:
            paths["copy"] += 1
            # the sink took the COPY path: writing the batch again through it is a replay
            sink = PostgresSink(pg_pool)
            run(sink.write(batch))
            assert sink.rows_changed == 0
            assert [tuple(row) for row in run(pg_pool.fetch(_READ))] == expected
        if payload is not None:
            # The same rows through the other path are a replay: IS DISTINCT FROM finds
            # nothing to replace, and nothing changes.
            status = run(pg_pool.execute(UPSERT_METRICS_JSON, payload))
            assert status == "INSERT 0 0"
            assert [tuple(row) for row in run(pg_pool.fetch(_READ))] == expected

    await asyncio.to_thread(check)
    print(f"batches by path: {paths}")
    assert paths["json"] >= 40, paths
    assert paths["arrays"] >= 5, paths
    assert paths["rejected"] >= 5, paths
    assert paths["encoded"] >= 100, paths
    assert paths["copy"] >= 60, paths


async def test_usual_windows_travel_as_json() -> None:
    batch = [window("a", "hour", 0), window("b", "day", 3, power=None, anomaly_score=0.5)]
    assert metrics_json(batch) is not None
    encoded = _encoded(batch)
    assert encoded is not None
    text = metrics_json(encoded, encoded.json)
    assert text is not None and text.startswith('[{"device_id":"a"')
    assert orjson.loads(text) == [orjson.loads(w.json_bytes()) for w in batch]


def _encoded(batch: list[WindowAggregate]) -> EncodedWindows | None:
    """The batch as the worker hands it to the sinks, if its topic JSON can be made."""
    try:
        return EncodedWindows(batch, [w.json_bytes() for w in batch])
    except orjson.JSONEncodeError:  # the worker's publish fails the same way, before the sink
        return None


@pytest.mark.parametrize(
    "update",
    [
        {"energy_kwh": math.nan},
        {"power_max_w": math.inf},
        {"anomaly_score": -math.inf},
        {"first_ts": datetime(2024, 3, 1, 0, 0, 5)},  # naive: asyncpg reads local time
        {"last_ts": datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(seconds=30)))},
        {"window_end": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)},  # infinity
        {"cost": Decimal("1E+131072")},
        {"revision": 2**64},
        {"currency": "\ud800"},
    ],
)
async def test_what_json_cannot_carry_takes_the_arrays(
    pg_pool: Any, update: dict[str, Any]
) -> None:
    batch = [window("a", "hour", 0), window("a", "hour", 1).model_copy(update=update)]
    assert metrics_json(batch) is None
    encoded = _encoded(batch)
    if encoded is not None:  # the topic's JSON is no way round
        assert metrics_json(encoded, encoded.json) is None

    async def arrays() -> None:
        await pg_pool.execute(UPSERT_METRICS, *metric_columns(batch))

    sink = PostgresSink(pg_pool)
    expected = await _outcome(pg_pool, arrays)
    assert await _outcome(pg_pool, lambda: sink.write(batch)) == expected


async def test_a_non_finite_float_is_stored_as_such(pg_pool: Any) -> None:
    sink = PostgresSink(pg_pool)
    await sink.write([window().model_copy(update={"energy_kwh": math.nan, "coverage": -math.inf})])
    row = await pg_pool.fetchrow("SELECT energy_kwh, coverage FROM metrics")
    assert math.isnan(row["energy_kwh"]) and row["coverage"] == -math.inf
    assert sink.rows_changed == 1


_COPIED = [
    {"energy_kwh": math.nan},
    {"power_max_w": math.inf, "power_min_w": None},
    {"anomaly_score": -math.inf, "is_anomaly": None},
    {"last_ts": datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(seconds=30)))},
    {"first_ts": datetime(2024, 3, 1, 0, 30, tzinfo=ZoneInfo("Europe/Berlin"))},
    {"cost": Decimal("-0E-12"), "currency": "\U0001f600\n"},
]


@pytest.mark.parametrize("update", _COPIED)
async def test_copy_carries_what_json_cannot(pg_pool: Any, update: dict[str, Any]) -> None:
    batch = [window("a", "hour", 0), window("a", "hour", 1).model_copy(update=update)]
    assert copy_data(batch) is not None

    async def arrays() -> None:
        await pg_pool.execute(UPSERT_METRICS, *metric_columns(batch))

    sink = PostgresSink(pg_pool)
    expected = await _outcome(pg_pool, arrays)
    assert await _outcome(pg_pool, lambda: sink.write(batch)) == expected
    assert sink.rows_changed == 2


@pytest.mark.parametrize(
    "update",
    [
        {"first_ts": datetime(2024, 3, 1, 0, 0, 5)},  # naive: asyncpg reads local time
        {"window_end": datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)},  # infinity
        {"last_ts": datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC)},
        {"cost": Decimal("1E+131072")},
        {"revision": 2**31},
        {"reading_count": 2**64},
        {"device_id": "a\ud800"},
    ],
)
def test_what_copy_leaves_to_the_other_paths(update: dict[str, Any]) -> None:
    batch = [window("a", "hour", 0), window("a", "hour", 1).model_copy(update=update)]
    assert copy_data(batch[:1]) is not None
    assert copy_data(batch) is None


async def test_a_role_without_temporary_tables_upserts_from_json(
    pg_pool: Any, pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Where the role may not create temporary tables (TEMP revoked from PUBLIC, as some
    hardened servers do), the sink turns to the JSON upsert instead of failing every batch."""
    name = await pg_pool.fetchval("SELECT current_database()")
    await pg_pool.execute(f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC')
    await pg_pool.execute("DROP ROLE IF EXISTS no_temp")
    await pg_pool.execute("CREATE ROLE no_temp LOGIN")
    await pg_pool.execute("GRANT SELECT, INSERT, UPDATE ON metrics TO no_temp")
    dsn = pg_database.replace("postgres@", "no_temp@", 1)
    assert dsn != pg_database
    limited = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        sink = PostgresSink(limited)
        batch = [window("a", "hour", 0), window("a", "hour", 1)]
        assert copy_data(batch) is not None
        await sink.write(batch)
        assert sink.staging is False
        assert "without a staging table" in caplog.text
        await sink.write([window("a", "hour", 2)])
        assert sink.rows_changed == 3
        assert await pg_pool.fetchval("SELECT count(*) FROM metrics") == 3
    finally:
        await limited.close()
        await pg_pool.execute(f'GRANT TEMPORARY ON DATABASE "{name}" TO PUBLIC')
        await pg_pool.execute("DROP OWNED BY no_temp")
        await pg_pool.execute("DROP ROLE no_temp")
