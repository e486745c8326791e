"""Timestamps as integer microseconds since the Unix epoch (UTC), parsed strictly.

SEMANTICS.md section 1: RFC 3339 with an explicit offset or ``Z``, or a JSON number of
seconds since the epoch. Timestamps are compared at microsecond precision: extra
fractional digits of a string are truncated, a number is rounded to the nearest microsecond.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

US_PER_S = 1_000_000
US_PER_HOUR = 3_600 * US_PER_S
US_PER_DAY = 86_400 * US_PER_S

# Supported instants: 1900-01-01 .. 9999-12-01 UTC (time-zone arithmetic needs a margin).
MIN_TS_US = -2_208_988_800 * US_PER_S
MAX_TS_US = 253_399_622_400 * US_PER_S

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class TimestampError(ValueError):
    """The timestamp is not a valid instant; the message says why."""


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339(text: str) -> int:
    """``2026-03-29T01:30:00.5+02:00`` -> microseconds since the epoch."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        if _looks_naive(text):
            raise TimestampError(
                f"timestamp {text!r} has no UTC offset (ambiguous); add Z or +HH:MM"
            )
        raise TimestampError(
            f"timestamp {text!r} is not RFC 3339 (YYYY-MM-DDTHH:MM:SS[.f](Z|+HH:MM))"
        )
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    hour, minute, second = int(match[4]), int(match[5]), int(match[6])
    if not 1 <= month <= 12:
        raise TimestampError(f"timestamp {text!r}: month {month} out of range")
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS_IN_MONTH[month - 1] + (1 if month == 2 and leap else 0):
        raise TimestampError(f"timestamp {text!r}: day {day} out of range")
    if hour > 23 or minute > 59 or second > 59:
        raise TimestampError(f"timestamp {text!r}: time of day out of range")
    fraction = match[7]
    micros = int((fraction + "00000")[:6]) if fraction else 0
    offset_s = 0
    if match[8] is None:
        off_h, off_m = int(match[10]), int(match[11])
        if off_h > 23 or off_m > 59:
            raise TimestampError(f"timestamp {text!r}: UTC offset out of range")
        offset_s = (off_h * 3600 + off_m * 60) * (1 if match[9] == "+" else -1)
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    ts = (seconds - offset_s) * US_PER_S + micros
    _check_range(ts, text)
    return ts


def _looks_naive(text: str) -> bool:
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?", text) is not None


def epoch_seconds_to_us(value: float | int) -> int:
    """A JSON number of seconds since the epoch -> microseconds (nearest)."""
    if isinstance(value, float) and not MIN_TS_US / US_PER_S - 1 <= value <= MAX_TS_US / US_PER_S:
        raise TimestampError(f"timestamp {value!r} is outside the supported range 1900..9999")
    ts = value * US_PER_S if isinstance(value, int) else round(value * US_PER_S)
    _check_range(ts, value)
    return ts


def _check_range(ts: int, original: object) -> None:
    if not MIN_TS_US <= ts < MAX_TS_US:
        raise TimestampError(f"timestamp {original!r} is outside the supported range 1900..9999")


def us_to_datetime(ts: int) -> datetime:
    """Microseconds since the epoch -> aware UTC datetime (exact)."""
    return _EPOCH + timedelta(microseconds=ts)


def datetime_to_us(value: datetime) -> int:
    """Aware datetime -> microseconds since the epoch (exact)."""
    if value.tzinfo is None:
        raise TimestampError("naive datetime has no UTC offset")
    delta = value - _EPOCH
    return (delta.days * 86400 + delta.seconds) * US_PER_S + delta.microseconds


def format_us(ts: int) -> str:
    """RFC 3339 UTC with ``Z``; microseconds only when non-zero."""
    seconds, micros = divmod(ts, US_PER_S)
    days, second_of_day = divmod(seconds, 86_400)
    hour, minute, second = second_of_day // 3600, second_of_day // 60 % 60, second_of_day % 60
    text = f"{_date_text(days)}T{hour:02d}:{minute:02d}:{second:02d}"
    return f"{text}.{micros:06d}Z" if micros else f"{text}Z"


@lru_cache(maxsize=4096)
def _date_text(days: int) -> str:
    """``YYYY-MM-DD`` of a day since the epoch (few distinct days per batch: cached)."""
    return (_EPOCH + timedelta(days=days)).date().isoformat()
