"""A report job's parameters: validated once, with errors that name the field.

``start`` and ``end`` are RFC 3339 timestamps (or datetimes); a value without an offset, or a
plain date such as ``2026-03-01``, is read as local time in ``TIMEZONE``. The report covers
whole local days: ``start`` is moved back to its local midnight and ``end`` forward to the
next one, so day and hour windows describe the same span.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal, cast
from zoneinfo import ZoneInfo

Format = Literal["csv", "json", "html"]
FORMATS: Final[tuple[Format, ...]] = ("csv", "json", "html")
MAX_DAYS: Final = 400
MAX_DEVICE_IDS: Final = 10_000


class ReportParameterError(ValueError):
    """A parameter is missing or has a bad value; ``field`` names it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class ReportParameters:
    device_ids: tuple[str, ...] | None
    """None means every device with data in the period."""
    requested_start: datetime
    requested_end: datetime
    start: datetime
    """Local midnight at or before ``requested_start`` (aware, in the report's zone)."""
    end: datetime
    """Local midnight at or after ``requested_end``."""
    formats: tuple[Format, ...]

    def as_dict(self) -> dict[str, Any]:
        """The parameters as shown in the report (JSON-ready)."""
        return {
            "device_ids": None if self.device_ids is None else list(self.device_ids),
            "start": _rfc3339(self.requested_start),
            "end": _rfc3339(self.requested_end),
            "formats": list(self.formats),
        }


def parse_parameters(raw: Mapping[str, Any], timezone: str) -> ReportParameters:
    """Validate a job's parameters; raise ReportParameterError naming the field."""
    unknown = sorted(set(raw) - {"device_ids", "start", "end", "formats"})
    if unknown:
        raise ReportParameterError(unknown[0], "unknown parameter")
    zone = ZoneInfo(timezone)
    requested_start = _moment(raw, "start", zone)
    requested_end = _moment(raw, "end", zone)
    if requested_end <= requested_start:
        raise ReportParameterError("end", "must be after start")
    start = _local_midnight(requested_start.astimezone(zone).date(), zone)
    end_day = requested_end.astimezone(zone).date()
    end = _local_midnight(end_day, zone)
    if end < requested_end:
        end = _local_midnight(end_day + timedelta(days=1), zone)
    if (end.date() - start.date()).days > MAX_DAYS:
        raise ReportParameterError("end", f"the period may span at most {MAX_DAYS} days")
    return ReportParameters(
        device_ids=_device_ids(raw.get("device_ids")),
        requested_start=requested_start,
        requested_end=requested_end,
        start=start,
        end=end,
        formats=_formats(raw.get("formats")),
    )


def _moment(raw: Mapping[str, Any], field: str, zone: ZoneInfo) -> datetime:
    value = raw.get(field)
    if value is None:
        raise ReportParameterError(field, "is required (an RFC 3339 timestamp or a date)")
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ReportParameterError(
                field, f"{value!r} is not an RFC 3339 timestamp or a date"
            ) from None
    else:
        raise ReportParameterError(field, "must be a string (RFC 3339 timestamp or date)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The first instant of a local date (normalised through UTC so DST gaps resolve)."""
    naive = datetime(day.year, day.month, day.day, tzinfo=zone)
    return naive.astimezone(UTC).astimezone(zone)


def _device_ids(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple):
        raise ReportParameterError("device_ids", "must be a list of device ids or null")
    if not value:
        raise ReportParameterError("device_ids", "must not be empty (null means all devices)")
    if len(value) > MAX_DEVICE_IDS:
        raise ReportParameterError("device_ids", f"at most {MAX_DEVICE_IDS} device ids")
    ids: dict[str, None] = {}
    for item in value:
        if not isinstance(item, str) or not item:
            raise ReportParameterError("device_ids", "every device id must be a non-empty string")
        ids[item] = None
    return tuple(ids)


def _formats(value: object) -> tuple[Format, ...]:
    if value is None:
        return FORMATS
    if not isinstance(value, list | tuple) or not value:
        raise ReportParameterError("formats", 'must be a non-empty list of "csv", "json", "html"')
    wanted = set()
    for item in value:
        if item not in FORMATS:
            raise ReportParameterError("formats", f'{item!r} is not one of "csv", "json", "html"')
        wanted.add(cast(Format, item))
    return tuple(name for name in FORMATS if name in wanted)


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
