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


def fast_rfc3339(text: str) -> int | None:
    """``parse_rfc3339(text)`` for a valid ASCII timestamp, else None (then call that for
    the result or the error). The minute prefix ``YYYY-MM-DDTHH:MM:`` is checked once and
    cached: readings of one batch share a handful of minutes."""
    if len(text) < 20 or not text.isascii():
        return None
    base = _MINUTES.get(text[:17])
    if base is None:
        base = _minute_seconds(text[:17])
        if base is None:
            return None
        if len(_MINUTES) >= _MINUTES_LIMIT:
            _MINUTES.clear()
        _MINUTES[text[:17]] = base
    second = text[17:19]
    if not second.isdigit() or second > "59":
        return None
    last = text[-1]
    if last == "Z" or last == "z":
        body = text[19:-1]
        offset_s = 0
    elif len(text) >= 25 and text[-3] == ":" and (text[-6] == "+" or text[-6] == "-"):
        off_h, off_m = text[-5:-3], text[-2:]
        if not off_h.isdigit() or not off_m.isdigit() or off_h > "23" or off_m > "59":
            return None
        offset_s = int(off_h) * 3600 + int(off_m) * 60
        if text[-6] == "-":
            offset_s = -offset_s
        body = text[19:-6]
    else:
        return None
    if body:
        if body[0] != "." or not body[1:].isdigit():
            return None
        micros = int((body[1:] + "00000")[:6])
    else:
        micros = 0
    ts = (base + int(second) - offset_s) * US_PER_S + micros
    return ts if MIN_TS_US <= ts < MAX_TS_US else None


_MINUTES: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:" -> seconds since the epoch (valid ones)
_MINUTES_LIMIT = 100_000


def _minute_seconds(prefix: str) -> int | None:
    """Seconds since the epoch of an ASCII ``YYYY-MM-DDTHH:MM:`` that parse_rfc3339 accepts."""
    if (
        prefix[4] != "-"
        or prefix[7] != "-"
        or prefix[10] not in ("T", "t", " ")
        or prefix[13] != ":"
        or prefix[16] != ":"
    ):
        return None
    fields = (prefix[0:4], prefix[5:7], prefix[8:10], prefix[11:13], prefix[14:16])
    if not all(field.isdigit() for field in fields):
        return None
    year, month, day, hour, minute = (int(field) for field in fields)
    if not 1 <= month <= 12 or hour > 23 or minute > 59:
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS_IN_MONTH[month - 1] + (1 if month == 2 and leap else 0):
        return None
    return _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60


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


_timedelta = timedelta


def us_to_datetime(ts: int) -> datetime:
    """Microseconds since the epoch -> aware UTC datetime (exact)."""
    return _EPOCH + _timedelta(0, 0, ts)  # (days, seconds, microseconds): faster than by name


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
