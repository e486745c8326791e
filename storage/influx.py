"""InfluxDB driver: each window aggregate becomes one point of measurement ``energy_window``.

A point's identity is (measurement, tags ``device_id`` and ``period``, timestamp
``window_start``), the same identity as the PostgreSQL row. InfluxDB keeps the last point
written for an identity, so writing a window again is harmless, and because the emitter only
ever writes increasing revisions of a window the last write is also the highest revision.
(Unlike PostgreSQL, a lower revision written later would win here; nothing writes one.)
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from models.metrics import WindowAggregate
from storage.base import SinkRejected, SinkUnavailable, StorageError

SINK_NAME = "influxdb"
MEASUREMENT = "energy_window"
DEFAULT_CHUNK_SIZE = 5000

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\\": "\\\\"})


def _timestamp_ns(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _float(value: float) -> str | None:
    # Line protocol has no NaN or infinity; such a value cannot be stored, so it is left out.
    return repr(float(value)) if math.isfinite(value) else None


def to_line(window: WindowAggregate) -> str:
    """The window as one line of InfluxDB line protocol (nanosecond timestamp)."""
    fields: list[str] = [
        f"reading_count={window.reading_count}i",
        f"revision={window.revision}i",
    ]
    floats: list[tuple[str, float | None]] = [
        ("energy_kwh", window.energy_kwh),
        ("cost", float(window.cost)),
        ("coverage", window.coverage),
        ("power_mean_w", window.power_mean_w),
        ("power_min_w", window.power_min_w),
        ("power_max_w", window.power_max_w),
        ("anomaly_score", window.anomaly_score),
    ]
    for name, value in floats:
        text = None if value is None else _float(value)
        if text is not None:
            fields.append(f"{name}={text}")
    if window.is_anomaly is not None:
        fields.append(f"is_anomaly={'true' if window.is_anomaly else 'false'}")
    tags = (
        f"device_id={window.device_id.translate(_TAG_ESCAPES)},"
        f"period={window.period.translate(_TAG_ESCAPES)}"
    )
    return f"{MEASUREMENT},{tags} {','.join(fields)} {_timestamp_ns(window.window_start)}"


READINGS_MEASUREMENT = "energy_reading"


def reading_line(
    device_id: str, ts_us: int, power_w: float | None, energy_kwh: float | None
) -> str | None:
    """An accepted raw reading as a line of measurement ``energy_reading`` (tag device_id,
    fields power_w and/or energy_kwh, microsecond timestamp as nanoseconds)."""
    fields = []
    for name, value in (("power_w", power_w), ("energy_kwh", energy_kwh)):
        text = None if value is None else _float(value)
        if text is not None:
            fields.append(f"{name}={text}")
    if not fields:
        return None
    return f"{READINGS_MEASUREMENT},device_id={device_id.translate(_TAG_ESCAPES)} {','.join(fields)} {ts_us * 1000}"


class InfluxReadingsSink:
    """Accepted raw readings (INFLUXDB_RAW_READINGS=true) as ``energy_reading`` points; the
    identity (device_id, timestamp) makes a rewrite harmless. ``write`` takes tuples
    ``(device_id, ts_us, power_w, energy_kwh)``."""

    name = "influxdb-readings"

    def __init__(self, windows: InfluxSink) -> None:
        self._windows = windows

    async def start(self) -> None:
        return None

    async def write(self, batch: Sequence[tuple[str, int, float | None, float | None]]) -> None:
        lines = [line for line in (reading_line(*row) for row in batch) if line is not None]
        await self._windows.write_lines(lines)

    async def close(self) -> None:
        return None


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def map_error(exc: BaseException, sink: str = SINK_NAME) -> StorageError | None:
    """5xx, 429 and connection failures are transient; any other 4xx is a rejection."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        headers: Any = exc.headers or {}
        reason = str(getattr(exc, "message", None) or exc.reason or "").strip()
        detail = f"HTTP {status} {reason}".strip()
        if status == 429 or status >= 500:
            retry_after = getattr(exc, "retry_after", None) or headers.get("Retry-After")
            return SinkUnavailable(sink, detail, retry_after_seconds(retry_after))
        return SinkRejected(sink, detail)
    if isinstance(exc, aiohttp.ClientError | OSError | TimeoutError):
        return SinkUnavailable(sink, f"{type(exc).__name__}: {exc}".strip())
    return None


class InfluxSink:
    """Writes window aggregates as points, one request per chunk of ``chunk_size`` points.

    ``client`` is a built ``InfluxDBClientAsync``; the sink does not close it.
    """

    name = SINK_NAME

    def __init__(
        self, client: Any, org: str, bucket: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        self._client = client
        self._write_api = client.write_api()
        self.org = org
        self.bucket = bucket
        self.chunk_size = chunk_size

    async def start(self) -> None:
        """Nothing to prepare: the first write shows whether the server is there."""

    async def write(self, batch: Sequence[WindowAggregate]) -> None:
        await self.write_lines([to_line(window) for window in batch])

    async def write_lines(self, lines: Sequence[str]) -> None:
        """Write line-protocol lines in chunks; errors mapped as for ``write``."""
        for offset in range(0, len(lines), self.chunk_size):
            # A chunk that failed is written again in full on retry; re-writing the points
            # of the chunks before it is harmless (same identity, same values).
            chunk = lines[offset : offset + self.chunk_size]
            try:
                await self._write_api.write(
                    bucket=self.bucket,
                    org=self.org,
                    record=chunk,
                    write_precision=WritePrecision.NS,
                )
            except Exception as exc:
                mapped = map_error(exc)
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc

    async def close(self) -> None:
        """Nothing to release: the client belongs to whoever built it."""
