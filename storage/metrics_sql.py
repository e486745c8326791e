"""The ``metrics`` table in SQL: its columns, the window upserts (from the COPY staging
table, one JSON text or one typed array per column), and a batch as those parameters."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import MAXYEAR, MINYEAR, timedelta, timezone, tzinfo
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any, cast

import orjson
from pydantic_core import TzInfo

from models.metrics import WindowAggregate
from storage.metrics_copy import STAGE_TABLE, decimal_fits

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
COLUMN_NAMES = [name for name, _ in _COLUMNS]
_ROW = attrgetter(*COLUMN_NAMES)
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
    kept = [name for name in COLUMN_NAMES if name not in _KEY]
    return f"""
INSERT INTO metrics ({", ".join(COLUMN_NAMES)})
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
    + ", ".join("cost::numeric" if name == "cost" else name for name in COLUMN_NAMES)
    + f" FROM {STAGE_TABLE}"
)
UPSERT_METRICS_STAGED = _upsert(f"({_STAGED}) AS staged")
# Windows emitted for the first time (revision 0) are usually not stored yet: a plain INSERT
# of them takes the server about half the time of ON CONFLICT's speculative insertion. If
# one is stored already (a replay after a restart, a rebalance), the INSERT fails as a whole
# and the batch goes through the upsert instead, from the same staged rows.
INSERT_NEW_STAGED = f"INSERT INTO metrics ({', '.join(COLUMN_NAMES)}) {_STAGED} WHERE revision = 0"
UPSERT_REVISED_STAGED = _upsert(f"({_STAGED} WHERE revision > 0) AS staged")

# The batch as one typed array per column: for the values JSON cannot carry exactly
# (non-finite floats, naive datetimes, odd UTC offsets; see ``metrics_json``).
UPSERT_METRICS = _upsert(
    f"unnest({', '.join(f'${i}::{kind}[]' for i, (_, kind) in enumerate(_COLUMNS, 1))})"
)


def metric_columns(rows: Sequence[WindowAggregate]) -> list[list[Any]]:
    """The metrics table's columns of ``rows``, in ``_COLUMNS`` order (the upsert's arrays)."""
    if not rows:
        return [[] for _ in COLUMN_NAMES]
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
