"""Window aggregates as PostgreSQL binary COPY data, for the metrics upsert's staging table.

PostgreSQL reads binary COPY rows with almost no parsing: half the server CPU of expanding
the same batch from JSON (``json_to_recordset``), which was most of the database's share of
the worker's load. The rows land in a temporary staging table, and one INSERT ... SELECT
upserts them into ``metrics`` with the same conflict rule as the other paths
(storage/metrics_sql.py). Values are written in their columns' binary forms, so they arrive
exactly: float8 bit for bit (NaN and infinities too), timestamptz as microseconds since
2000-01-01 UTC, integers, booleans; the cost travels as its decimal text (numeric's text
input reads back the same value and scale, as on the JSON path).

``copy_data`` returns None for what it does not write exactly the way asyncpg's typed
arrays would store it; the sink then takes one of the other paths: naive datetimes (asyncpg
reads them as local time), instants in the years 1 and 9999 (asyncpg stores the ends of its
range as infinities), integers beyond int4, decimals beyond numeric's text input, strings
that are not Unicode.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import MAXYEAR, MINYEAR, UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from models.metrics import WindowAggregate

# The staging table's columns: the always-present fixed-width ones, then the nullable ones,
# then the texts (so that one struct per row writes most of it).
_FIXED: Final = (
    ("window_start", "timestamptz"),
    ("window_end", "timestamptz"),
    ("reading_count", "int4"),
    ("power_reading_count", "int4"),
    ("energy_kwh", "float8"),
    ("coverage", "float8"),
    ("covered_seconds", "float8"),
    ("revision", "int4"),
)
_NULLABLE: Final = (
    ("power_mean_w", "float8"),
    ("power_min_w", "float8"),
    ("power_max_w", "float8"),
    ("first_ts", "timestamptz"),
    ("last_ts", "timestamptz"),
    ("anomaly_score", "float8"),
    ("is_anomaly", "bool"),
)
_TEXTS: Final = (("device_id", "text"), ("period", "text"), ("cost", "text"), ("currency", "text"))
STAGE_COLUMNS: Final = tuple(name for name, _ in _FIXED + _NULLABLE + _TEXTS)

STAGE_TABLE: Final = "metrics_stage"
# Per session (each pool connection has its own); emptied when each transaction commits.
CREATE_STAGE: Final = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} ("
    + ", ".join(f"{name} {kind}" for name, kind in _FIXED + _NULLABLE + _TEXTS)
    + ") ON COMMIT DELETE ROWS"
)

_HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no extension
_TRAILER: Final = b"\xff\xff"
# numeric's text input takes at most 131072 digits before the point (its binary input more)
NUMERIC_TEXT_DIGITS: Final = 131072
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)

# field count, then (length, value) of each fixed column
_ROW: Final = struct.Struct(">h iq iq ii ii id id id ii".replace(" ", ""))
# ... and of every column but the texts, when none is null (an hour or day window's usual case)
_WHOLE: Final = struct.Struct(">h iq iq ii ii id id id ii id id id iq iq id i?".replace(" ", ""))
_FLOAT8: Final = struct.Struct(">id")
_TIMESTAMP: Final = struct.Struct(">iq")
_LENGTH: Final = struct.Struct(">i")
_NULL: Final = _LENGTH.pack(-1)
_TRUE: Final = _LENGTH.pack(1) + b"\x01"
_FALSE: Final = _LENGTH.pack(1) + b"\x00"
_FIELDS: Final = len(STAGE_COLUMNS)


def decimal_fits(value: object) -> bool:
    """A finite decimal within the digits numeric's text input takes (so its ``str`` is
    read back as the same value and scale)."""
    return type(value) is Decimal and value.is_finite() and value.adjusted() < NUMERIC_TEXT_DIGITS


class _Unfit(Exception):
    """A value this path does not write the way the typed arrays store it."""


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None or moment.year == MINYEAR or moment.year == MAXYEAR:
        raise _Unfit
    return (moment - _PG_EPOCH) // _US


class _Texts(dict[str, bytes]):
    """Length-prefixed UTF-8 of texts that repeat (device ids, periods, currencies)."""

    def __missing__(self, text: str) -> bytes:
        data = text.encode()  # UnicodeEncodeError for lone surrogates
        value = _LENGTH.pack(len(data)) + data
        if len(self) >= 1 << 16:
            self.clear()
        self[text] = value
        return value


class _Moments(dict[datetime, int]):
    """Microseconds since PostgreSQL's epoch of window bounds (shared by many windows)."""

    def __missing__(self, moment: datetime) -> int:
        value = _micros(moment)
        if len(self) >= 1 << 14:
            self.clear()
        self[moment] = value
        return value


_texts = _Texts()
_bounds = _Moments()


def copy_data(rows: Sequence[WindowAggregate]) -> bytes | None:
    """The binary COPY data of ``rows`` for ``STAGE_COLUMNS``, or None (see module doc)."""
    try:
        return b"".join(_encode(rows))
    except (_Unfit, struct.error, OverflowError, UnicodeEncodeError, TypeError, AttributeError):
        return None


def _encode(rows: Sequence[WindowAggregate]) -> list[bytes]:
    parts = [_HEADER]
    append = parts.append
    row = _ROW.pack
    whole = _WHOLE.pack
    float8 = _FLOAT8.pack
    timestamp = _TIMESTAMP.pack
    length = _LENGTH.pack
    texts = _texts
    bounds = _bounds
    for window in rows:
        values: dict[str, Any] = window.__dict__
        mean = values["power_mean_w"]
        low = values["power_min_w"]
        high = values["power_max_w"]
        first = values["first_ts"]
        last = values["last_ts"]
        score = values["anomaly_score"]
        flag = values["is_anomaly"]
        fixed = (
            _FIELDS,
            8,
            bounds[values["window_start"]],
            8,
            bounds[values["window_end"]],
            4,
            values["reading_count"],  # beyond int4: struct.error, so None
            4,
            values["power_reading_count"],
            8,
            values["energy_kwh"],
            8,
            values["coverage"],
            8,
            values["covered_seconds"],
            4,
            values["revision"],
        )
        if (
            mean is not None
            and low is not None
            and high is not None
            and first is not None
            and last is not None
            and score is not None
            and flag is not None
        ):
            # the usual hour or day window: every column in one call
            first_us = _micros(first)
            last_us = first_us if last is first else _micros(last)
            append(
                whole(*fixed, 8, mean, 8, low, 8, high, 8, first_us, 8, last_us, 8, score, 1, flag)
            )
        else:
            append(row(*fixed))
            append(_NULL if mean is None else float8(8, mean))
            append(_NULL if low is None else float8(8, low))
            append(_NULL if high is None else float8(8, high))
            append(_NULL if first is None else timestamp(8, _micros(first)))
            append(_NULL if last is None else timestamp(8, _micros(last)))
            append(_NULL if score is None else float8(8, score))
            append(_NULL if flag is None else _TRUE if flag else _FALSE)
        cost = values["cost"]
        if not decimal_fits(cost):
            raise _Unfit
        data = str(cost).encode()
        append(texts[values["device_id"]])
        append(texts[values["period"]])
        append(length(len(data)))
        append(data)
        append(texts[values["currency"]])
    append(_TRAILER)
    return parts
