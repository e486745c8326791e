"""Strict parsing of query parameters; every broken rule becomes a FieldError naming it.

The rules mirror the constraints declared on models.api.MetricsParams (which documents
them in /openapi.json); tests check the two agree. All problems of a request are reported
together, not just the first.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar
from uuid import UUID

from starlette.datastructures import QueryParams

from api.errors import InvalidParameters
from models.api import CURSOR_MAX_LENGTH, LIMIT_DEFAULT, LIMIT_MAX, LIMIT_MIN, FieldError
from models.jobs import JOB_STATUSES, KIND_PATTERN, JobStatus
from models.metrics import PERIODS, Period
from storage.base import MetricsQuery
from storage.jobs import JobsQuery

T = TypeVar("T")
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_DIGITS = re.compile(r"[0-9]{1,9}")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:(?P<zulu>[Zz])|(?P<sign>[+-])(\d{2}):(\d{2}))"
)
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")
# "+01:00" sent unencoded arrives as " 01:00": a query string decodes "+" to a space.
_PLUS_AS_SPACE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)? \d{2}:\d{2}")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

DATETIME_RULE = "must be an RFC 3339 date-time with Z or a UTC offset, e.g. 2024-05-01T00:00:00Z"


class _Collector:
    """Reads single-valued parameters and gathers every problem."""

    def __init__(self, params: QueryParams) -> None:
        self.params = params
        self.errors: list[FieldError] = []

    def get(self, name: str) -> str | None:
        values = self.params.getlist(name)
        if not values:
            return None
        if len(values) > 1:
            self.fail(name, "must be given at most once")
            return None
        return values[0]

    def fail(self, name: str, message: str) -> None:
        self.errors.append(FieldError(field=name, message=message))


def parse_device_id(value: str) -> str:
    if _DEVICE_ID.fullmatch(value) is None:
        raise ValueError("must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return value


def parse_period(value: str) -> Period:
    for period in PERIODS:
        if value == period:
            return period
    raise ValueError(f"must be one of {', '.join(PERIODS)}")


def parse_datetime(value: str) -> datetime:
    """RFC 3339 with ``Z`` or an offset -> aware UTC datetime (fractions past µs truncated)."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        if _PLUS_AS_SPACE.fullmatch(value):
            raise ValueError(f"{DATETIME_RULE} (send '+' as %2B in a query string)")
        if _NAIVE.fullmatch(value):
            raise ValueError(f"has no UTC offset, which is ambiguous; {DATETIME_RULE}")
        raise ValueError(DATETIME_RULE)
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = match[7] or ""
    microsecond = int((fraction + "000000")[:6])
    if match["zulu"]:
        zone: timezone = UTC
    else:
        off_h, off_m = int(match[10]), int(match[11])
        if off_h > 23 or off_m > 59:
            raise ValueError(f"has a UTC offset out of range; {DATETIME_RULE}")
        sign = 1 if match["sign"] == "+" else -1
        zone = timezone(sign * timedelta(hours=off_h, minutes=off_m))
    try:
        moment = datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"is not a valid date-time ({exc})") from exc


def parse_limit(value: str) -> int:
    rule = f"must be an integer between {LIMIT_MIN} and {LIMIT_MAX}"
    if _DIGITS.fullmatch(value) is None:
        raise ValueError(rule)
    limit = int(value)
    if not LIMIT_MIN <= limit <= LIMIT_MAX:
        raise ValueError(f"must be between {LIMIT_MIN} and {LIMIT_MAX}")
    return limit


def parse_cursor(value: str) -> str:
    if not 1 <= len(value) <= CURSOR_MAX_LENGTH:
        raise ValueError("is not a cursor issued by this service")
    return value


def parse_bool(value: str) -> bool:
    try:
        return _BOOLEANS[value]
    except KeyError:
        raise ValueError("must be one of true, false, 1, 0") from None


def metrics_query(params: QueryParams) -> MetricsQuery:
    """The validated filters of ``GET /api/v1/metrics``; InvalidParameters lists every fault."""
    collector = _Collector(params)
    device_id = _parse(collector, "device_id", parse_device_id)
    period = _parse(collector, "period", parse_period)
    start = _parse(collector, "start", parse_datetime)
    end = _parse(collector, "end", parse_datetime)
    limit = _parse(collector, "limit", parse_limit)
    cursor = _parse(collector, "cursor", parse_cursor)
    anomalies_only = _parse(collector, "anomalies_only", parse_bool)
    if start is not None and end is not None and start > end:
        collector.fail("start", "must not be after end")
    if collector.errors:
        raise InvalidParameters(collector.errors)
    return MetricsQuery(
        device_id=device_id,
        period=period,
        start=start,
        end=end,
        limit=LIMIT_DEFAULT if limit is None else limit,
        cursor=cursor,
        anomalies_only=bool(anomalies_only),
    )


def parse_job_status(value: str) -> JobStatus:
    for status in JOB_STATUSES:
        if value == status:
            return status
    raise ValueError(f"must be one of {', '.join(JOB_STATUSES)}")


def parse_job_kind(value: str) -> str:
    if re.fullmatch(KIND_PATTERN, value) is None:
        raise ValueError("must be a job kind: a-z, 0-9 and _, starting with a letter")
    return value


def parse_uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ValueError("must be a UUID, e.g. 0b0e9c2e-6f53-4c47-9a8e-0c3f3c1f2d4a") from None


def jobs_query(params: QueryParams) -> JobsQuery:
    """The validated filters of ``GET /api/v1/jobs``; InvalidParameters lists every fault."""
    collector = _Collector(params)
    status = _parse(collector, "status", parse_job_status)
    kind = _parse(collector, "kind", parse_job_kind)
    limit = _parse(collector, "limit", parse_limit)
    cursor = _parse(collector, "cursor", parse_cursor)
    if collector.errors:
        raise InvalidParameters(collector.errors)
    return JobsQuery(
        status=status,
        kind=kind,
        limit=LIMIT_DEFAULT if limit is None else limit,
        cursor=cursor,
    )


def _parse(collector: _Collector, name: str, parse: Callable[[str], T]) -> T | None:
    raw = collector.get(name)
    if raw is None:
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        collector.fail(name, str(exc))
        return None
