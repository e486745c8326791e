"""PostgreSQL driver: the metrics sink, the reader the API uses, worker stats and devices.

Both classes take a built asyncpg pool (``create_pool``) and never close it: its owner does.
Failures are mapped once, in ``map_error``: anything that says "the server is not reachable
right now" becomes ``SinkUnavailable`` (retry), anything that says "this data is wrong"
becomes ``SinkRejected``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import MAXYEAR, MINYEAR, datetime, timedelta, timezone, tzinfo
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, cast

import asyncpg
import orjson
from pydantic_core import TzInfo

from models.metrics import WindowAggregate
from storage.base import (
    DeviceSeen,
    MetricsPage,
    MetricsQuery,
    SinkRejected,
    SinkUnavailable,
    StorageError,
)
from storage.cursor import CursorKey, decode_cursor, encode_cursor
from storage.metrics_copy import (
    CREATE_STAGE,
    STAGE_COLUMNS,
    STAGE_TABLE,
    copy_data,
    decimal_fits,
)

logger = logging.getLogger(__name__)

SINK_NAME = "postgres"
MAX_PAGE_SIZE = 10_000

# Column order of the metrics table as written and read; the unnest casts follow it.
_COLUMNS: tuple[tuple[str, str], ...] = (
    ("device_id", "text"),
    ("period", "text"),
    ("window_start", "timestamptz"),
    ("window_end", "timestamptz"),
    ("reading_count", "int4"),
    ("power_reading_count", "int4"),
    ("power_mean_w", "float8"),
    ("power_min_w", "float8"),
    ("power_max_w", "float8"),
    ("energy_kwh", "float8"),
    ("cost", "numeric"),
    ("currency", "text"),
    ("coverage", "float8"),
    ("covered_seconds", "float8"),
    ("first_ts", "timestamptz"),
    ("last_ts", "timestamptz"),
    ("anomaly_score", "float8"),
    ("is_anomaly", "bool"),
    ("revision", "int4"),
)
_KEY = ("device_id", "period", "window_start")
_NAMES = [name for name, _ in _COLUMNS]
_ROW = attrgetter(*_NAMES)
_MINUTE = timedelta(minutes=1)
_MAX_OFFSET = timedelta(hours=16)


def _upsert(source: str) -> str:
    """The upsert of the rows ``source`` yields (the metrics columns, in ``_COLUMNS`` order).

    One statement, one round trip. The WHERE makes replays no-ops and lets a higher revision
    replace a stored window. An equal revision with other values also replaces it: that
    happens only when the stream's state started over (e.g. the memory-only embedded broker
    restarted while PostgreSQL kept its data), and the newer computation is the one that
    matches the readings now in the log.
    """
    kept = [name for name in _NAMES if name not in _KEY]
    return f"""
INSERT INTO metrics ({", ".join(_NAMES)})
SELECT * FROM {source}
ON CONFLICT (device_id, period, window_start) DO UPDATE SET
    {", ".join(f"{name} = EXCLUDED.{name}" for name in kept)},
    updated_at = now()
WHERE metrics.revision < EXCLUDED.revision
   OR (metrics.revision = EXCLUDED.revision
       AND ({", ".join(f"metrics.{n}" for n in kept)})
           IS DISTINCT FROM ({", ".join(f"EXCLUDED.{n}" for n in kept)}))
"""


# The batch as one JSON array of row objects (``metrics_json``), expanded by the server: each
# value reaches its column through the column type's text input, which reads back exactly
# what ``metrics_json`` writes. About a fifth of the client CPU of typed arrays (asyncpg
# encodes those element by element, ~11 us a row), for ~6 us a row more on the server.
# Passed as text and cast in SQL, so it works whatever JSON codec the pool has.
UPSERT_METRICS_JSON = _upsert(
    "json_to_recordset($1::text::json) AS batch("
    + ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
    + ")"
)

# The batch as binary COPY rows in a per-session staging table (storage/metrics_copy.py):
# the cheapest for the server (about half the CPU of expanding JSON), exact for every float.
_STAGED = (
    "SELECT "
    + ", ".join("cost::numeric" if name == "cost" else name for name in _NAMES)
    + f" FROM {STAGE_TABLE}"
)
UPSERT_METRICS_STAGED = _upsert(f"({_STAGED}) AS staged")
# Windows emitted for the first time (revision 0) are usually not stored yet: a plain INSERT
# of them takes the server about half the time of ON CONFLICT's speculative insertion. If
# one is stored already (a replay after a restart, a rebalance), the INSERT fails as a whole
# and the batch goes through the upsert instead, from the same staged rows.
INSERT_NEW_STAGED = f"INSERT INTO metrics ({', '.join(_NAMES)}) {_STAGED} WHERE revision = 0"
UPSERT_REVISED_STAGED = _upsert(f"({_STAGED} WHERE revision > 0) AS staged")

# The batch as one typed array per column: for the values JSON cannot carry exactly
# (non-finite floats, naive datetimes, odd UTC offsets; see ``metrics_json``).
UPSERT_METRICS = _upsert(
    f"unnest({', '.join(f'${i}::{kind}[]' for i, (_, kind) in enumerate(_COLUMNS, 1))})"
)


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


# asyncpg.DataError is the server's class 22; the client's encoding error is this one.
_ClientDataError: type[Exception] = asyncpg.exceptions._base.DataError

# Transient by nature: the server is away, restarting, overloaded, or chose a victim.
_TRANSIENT_POSTGRES_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a failover left us on a replica
)


def map_error(exc: BaseException, sink: str = SINK_NAME) -> StorageError | None:
    """The storage error ``exc`` stands for, or None when it is not a database failure."""
    if isinstance(exc, StorageError):
        return exc
    detail = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, _TRANSIENT_POSTGRES_ERRORS):
        return SinkUnavailable(sink, detail)
    if isinstance(exc, _ClientDataError | asyncpg.PostgresError):
        # Values the client cannot encode, and everything else the server refused (classes
        # 22, 23, 42: bad values, constraint violations, a schema that is not migrated).
        return SinkRejected(sink, detail)
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        # Connection closed mid-operation, pool closed or closing.
        return SinkUnavailable(sink, detail)
    if isinstance(exc, OSError | TimeoutError):
        return SinkUnavailable(sink, detail)
    return None


@contextmanager
def _mapped_errors(sink: str = SINK_NAME) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = map_error(exc, sink)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, connect_timeout: float = 10.0
) -> Any:
    """An asyncpg pool for ``dsn``; ``SinkUnavailable`` if the server cannot be reached."""
    with _mapped_errors():
        return await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, timeout=connect_timeout
        )


def metric_columns(rows: Sequence[WindowAggregate]) -> list[list[Any]]:
    """The metrics table's columns of ``rows``, in ``_COLUMNS`` order (the upsert's arrays)."""
    if not rows:
        return [[] for _ in _NAMES]
    return [list(column) for column in zip(*map(_ROW, rows), strict=True)]


_FLOATS = itemgetter(*(name for name, kind in _COLUMNS if kind == "float8"))
_DATETIMES = itemgetter(*(name for name, kind in _COLUMNS if kind == "timestamptz"))
_TZINFO = attrgetter("tzinfo")
_COST = itemgetter("cost")
# Zones of one fixed offset, which orjson writes as +HH:MM (it drops seconds of an offset).
_FIXED_ZONES: tuple[type[tzinfo], ...] = (timezone, TzInfo)


def _json_zone(zone: tzinfo | None) -> bool:
    """Whether orjson writes the offset of ``zone`` exactly and PostgreSQL reads it back:
    a fixed offset of whole minutes below 16 hours (timestamptz input refuses +16:00)."""
    if type(zone) not in _FIXED_ZONES:
        return False  # naive (asyncpg reads it as local time), or a zone of varying offset
    offset = cast(tzinfo, zone).utcoffset(None)
    return offset is not None and not offset % _MINUTE and abs(offset) < _MAX_OFFSET


def _decimal_text(value: object) -> str:
    if decimal_fits(value):
        return str(value)
    raise TypeError(f"{type(value).__name__} {value!r} does not travel as JSON")


def _all_finite(fields: list[dict[str, Any]]) -> bool:
    """Whether the float columns hold no NaN or infinity: their sum is finite (a C loop), or
    it overflowed and each one is."""
    if math.isfinite(sum(filter(None, chain.from_iterable(map(_FLOATS, fields))))):
        return True
    return all(map(math.isfinite, filter(None, chain.from_iterable(map(_FLOATS, fields)))))


def metrics_json(
    rows: Sequence[WindowAggregate], encoded: Sequence[bytes] | None = None
) -> str | None:
    """``rows`` as the JSON parameter of ``UPSERT_METRICS_JSON``, or None when a value cannot
    travel exactly that way (``UPSERT_METRICS`` then takes the batch, as asyncpg encodes it).

    orjson writes the shortest text that reads back as the same float, decimals as their
    ``str``, aware datetimes with their UTC offset to the microsecond. Left to the arrays:
    NaN and infinities (orjson writes null), naive datetimes (asyncpg reads them as local
    time), offsets with seconds, of 16 hours or more, or of zones that vary, instants in the
    years 1 and 9999 (asyncpg refuses those an offset moves out of Python's range, and stores
    the ends of it as -infinity and infinity), numbers of more digits than numeric's text
    input takes, integers beyond 64 bits, strings that are not Unicode (lone surrogates).

    ``encoded``: each row's ``json_bytes()``, when the caller made them already (for the
    metrics topic): the same text but for UTC written as ``Z``, which PostgreSQL reads as
    the same instant. They are joined instead of serialising the rows again.
    """
    fields = [window.__dict__ for window in rows]
    if not _all_finite(fields):
        return None
    moments = list(filter(None, chain.from_iterable(map(_DATETIMES, fields))))
    if not all(map(_json_zone, set(map(_TZINFO, moments)))):
        return None
    if moments and (min(moments).year == MINYEAR or max(moments).year == MAXYEAR):
        return None
    if encoded is not None:
        if not all(map(decimal_fits, map(_COST, fields))):
            return None
        return (b"[" + b",".join(encoded) + b"]").decode()
    try:
        return orjson.dumps(fields, default=_decimal_text).decode()
    except orjson.JSONEncodeError:
        return None


def _row_count(status: Any) -> int:
    """The row count of a command status (``INSERT 0 12``)."""
    return int(str(status).rsplit(" ", 1)[-1])


def _dedupe(batch: Sequence[WindowAggregate]) -> list[WindowAggregate]:
    """One row per key (the highest revision; the later one on a tie), in key order.

    ON CONFLICT cannot touch a row twice in one statement, and a fixed order means two
    workers upserting overlapping batches lock rows in the same order (no deadlock).
    """
    latest: dict[tuple[str, str, Any], WindowAggregate] = {}
    for window in batch:
        key = (window.device_id, window.period, window.window_start)
        kept = latest.get(key)
        if kept is None or window.revision >= kept.revision:
            latest[key] = window
    return [latest[key] for key in sorted(latest)]


class PostgresSink:
    """Upserts window aggregates into ``metrics``, one transaction per batch: binary COPY into
    a temporary staging table, then a plain INSERT of the new windows (revision 0) and
    INSERT ... ON CONFLICT for the revised ones, or for all of them when a new one is
    stored already (else one statement with the batch as JSON or typed arrays)."""

    name = SINK_NAME

    def __init__(self, pool: Any, *, timeout: float = 30.0) -> None:
        self._pool = pool
        self._timeout = timeout
        self.rows_changed = 0
        """Rows inserted or replaced by a higher revision (replays do not count)."""
        self.staging = True
        """Whether batches go through the COPY staging table (off once the server refuses
        to create it)."""

    async def start(self) -> None:
        """Check that the server answers and the schema is migrated."""
        with _mapped_errors():
            await self._pool.fetchval("SELECT 1 FROM metrics LIMIT 1", timeout=self._timeout)

    async def write(self, batch: Sequence[WindowAggregate]) -> None:
        rows = _dedupe(batch)
        if not rows:
            return
        with _mapped_errors():
            changed = await self._staged_upsert(rows) if self.staging else None
            if changed is None:
                changed = await self._parameter_upsert(batch, rows)
        self.rows_changed += changed

    async def _staged_upsert(self, rows: list[WindowAggregate]) -> int | None:
        """The COPY path: rows inserted or replaced; None when it cannot carry ``rows`` (or
        the role cannot use it)."""
        data = copy_data(rows)
        if data is None:
            return None
        revisions = {window.revision == 0 for window in rows}
        try:
            return await self._copy_upsert(data, True in revisions, False in revisions)
        except asyncpg.exceptions.InsufficientPrivilegeError as exc:
            # A role without the TEMP privilege on the database: the other paths need no
            # temporary table (and report any other missing privilege).
            self.staging = False
            logger.warning("metrics upsert without a staging table from now on: %s", exc)
            return None

    async def _parameter_upsert(
        self, batch: Sequence[WindowAggregate], rows: list[WindowAggregate]
    ) -> int:
        """One statement with the rows as a JSON parameter, else as typed arrays: rows
        inserted or replaced."""
        encoded = getattr(batch, "json", None)  # EncodedWindows: each one's json_bytes()
        if encoded is not None:
            by_window = {id(window): data for window, data in zip(batch, encoded, strict=True)}
            encoded = [by_window[id(window)] for window in rows]
        payload = metrics_json(rows, encoded)
        if payload is not None:
            status = await self._pool.execute(UPSERT_METRICS_JSON, payload, timeout=self._timeout)
        else:
            columns = metric_columns(rows)
            status = await self._pool.execute(UPSERT_METRICS, *columns, timeout=self._timeout)
        return _row_count(status)

    async def _copy_upsert(self, data: bytes, new: bool, revised: bool) -> int:
        """COPY ``data`` (``copy_data``) into the session's staging table and upsert it, in
        one transaction: the staged rows go at commit, or with a rollback. ``new``: some
        rows have revision 0; ``revised``: some have a higher one."""
        acquire = getattr(self._pool, "acquire", None)
        if acquire is None:  # a connection rather than a pool
            return await self._copy_on(self._pool, data, new, revised)
        async with acquire(timeout=self._timeout) as connection:
            return await self._copy_on(connection, data, new, revised)

    async def _copy_on(self, connection: Any, data: bytes, new: bool, revised: bool) -> int:
        timeout = self._timeout
        async with connection.transaction():
            await connection.execute(CREATE_STAGE, timeout=timeout)
            await connection.copy_to_table(  # a memoryview: asyncpg reads bytes as a path
                STAGE_TABLE,
                source=memoryview(data),
                columns=STAGE_COLUMNS,
                format="binary",
                timeout=timeout,
            )
            if new:
                try:
                    async with connection.transaction():  # a savepoint
                        inserted = await connection.execute(INSERT_NEW_STAGED, timeout=timeout)
                except asyncpg.exceptions.UniqueViolationError:
                    pass  # some are stored already: the upsert decides, row by row
                else:
                    if not revised:
                        return _row_count(inserted)
                    upserted = await connection.execute(UPSERT_REVISED_STAGED, timeout=timeout)
                    return _row_count(inserted) + _row_count(upserted)
            return _row_count(await connection.execute(UPSERT_METRICS_STAGED, timeout=timeout))

    async def close(self) -> None:
        """Nothing to release: the pool belongs to whoever built it."""


class PostgresRepository:
    """Reads for the API (metrics pages), worker stats, and device sightings."""

    name = SINK_NAME

    def __init__(self, pool: Any, *, timeout: float = 30.0) -> None:
        self._pool = pool
        self._timeout = timeout

    async def ping(self) -> bool:
        """Whether the server answers a trivial query right now."""
        try:
            with _mapped_errors():
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
            f"SELECT {', '.join(_NAMES)} FROM metrics WHERE {' AND '.join(where)}"
            f" ORDER BY device_id, period, window_start LIMIT {param(limit + 1)}"
        )
        with _mapped_errors():
            rows = await self._pool.fetch(sql, *args, timeout=self._timeout)
        items = [WindowAggregate.model_validate(dict(row)) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = encode_cursor(CursorKey(last.device_id, last.period, last.window_start))
        return MetricsPage(items=items, next_cursor=next_cursor)

    async def save_worker_stats(self, worker_id: str, stats: dict[str, Any]) -> None:
        # Passed as text and cast in SQL, so it works whatever JSON codec the pool has.
        with _mapped_errors():
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
        with _mapped_errors():
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
        with _mapped_errors():
            rows = await self._pool.fetch(
                "SELECT kind, status, count(*) AS count,"
                " coalesce(sum(duration_s), 0) AS duration_sum,"
                " count(duration_s) AS duration_count FROM jobs GROUP BY kind, status",
                timeout=self._timeout,
            )
        return [dict(r) for r in rows]

    async def load_anomaly_model(self, app_id: str, partition: int) -> bytes | None:
        """The latest checkpoint of a partition's anomaly model, if any."""
        with _mapped_errors():
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
        with _mapped_errors():
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
        with _mapped_errors():
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
        with _mapped_errors():
            await self._pool.execute(
                UPSERT_DEVICES,
                [row.device_id for row in ordered],
                [row.first_seen for row in ordered],
                [row.last_seen for row in ordered],
                [_json_text(row.last_reading) for row in ordered],
                timeout=self._timeout,
            )
