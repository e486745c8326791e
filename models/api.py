"""Schemas of the HTTP API: query parameters, response bodies and the error shape.

The handlers build their responses from these models and ``/openapi.json`` is generated
from their JSON Schemas, so the documented shape and the served one are the same objects.
"""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.jobs import JobCounts
from models.metrics import Period, WindowAggregate

DEVICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
LIMIT_DEFAULT = 100
LIMIT_MIN = 1
LIMIT_MAX = 1000
CURSOR_MAX_LENGTH = 2048  # as storage.cursor accepts
COST_PATTERN = r"^-?[0-9]+\.[0-9]{6,}$"
COST_MIN_DECIMALS = 6

_SIX_PLACES = Decimal(1).scaleb(-COST_MIN_DECIMALS)


# --- errors -------------------------------------------------------------------------------


class FieldError(BaseModel):
    """One rejected input: which field and which rule it broke."""

    field: str = Field(description="Name of the query parameter (or body field) at fault.")
    message: str = Field(description="The rule it broke, e.g. `must be between 1 and 1000`.")


class Problem(BaseModel):
    """Every error response: RFC 9457 problem details, media type `application/problem+json`."""

    type: str = Field(
        description="URI reference naming the kind of problem; `about:blank` for plain HTTP "
        "errors, else a fragment of `/docs` that describes it."
    )
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, for a human.")
    errors: list[FieldError] = Field(
        default_factory=list,
        description="One entry per rejected field; empty when the problem is not about input.",
    )


# --- metrics ------------------------------------------------------------------------------


class MetricsParams(BaseModel):
    """Query parameters of `GET /api/v1/metrics`. Unknown parameters are ignored."""

    device_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=DEVICE_ID_PATTERN,
        description="Only this device: 1-128 characters of `A-Z a-z 0-9 . _ : -`.",
    )
    period: Period | None = Field(default=None, description="Only windows of this period.")
    start: AwareDatetime | None = Field(
        default=None,
        description="Only windows with `window_start >= start`. RFC 3339 with `Z` or an offset "
        "(a `+` must be sent as `%2B`); a time without offset is rejected as ambiguous.",
    )
    end: AwareDatetime | None = Field(
        default=None,
        description="Only windows with `window_start < end` (exclusive). Same format as "
        "`start`; `start` must not be after `end`.",
    )
    limit: int = Field(
        default=LIMIT_DEFAULT,
        ge=LIMIT_MIN,
        le=LIMIT_MAX,
        description="Page size: at most this many items.",
    )
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=CURSOR_MAX_LENGTH,
        description="Opaque `next_cursor` of the previous page, with the same filters.",
    )
    anomalies_only: bool = Field(
        default=False,
        description="Only windows flagged anomalous. Exactly one of `true`, `false`, `1`, `0`.",
    )


class MetricItem(BaseModel):
    """One device's aggregate over one window `[window_start, window_end)` (SEMANTICS.md 4)."""

    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    period: Period
    window_start: AwareDatetime = Field(description="Inclusive start, RFC 3339 UTC with `Z`.")
    window_end: AwareDatetime = Field(description="Exclusive end, RFC 3339 UTC with `Z`.")
    reading_count: int = Field(ge=0, description="Accepted readings with timestamp in the window.")
    power_reading_count: int = Field(
        ge=0, description="Those readings that carried `power_w` (the weight of `power_mean_w`)."
    )
    power_mean_w: float | None = Field(description="Mean `power_w`; null if no reading had it.")
    power_min_w: float | None
    power_max_w: float | None
    energy_kwh: float = Field(description="Energy attributed to the window, kWh.")
    cost: str = Field(
        pattern=COST_PATTERN,
        description="Cost of `energy_kwh` in `currency`, as a JSON string holding the full "
        "decimal value (at least 6 decimal places, never rounded to binary floating point), "
        'e.g. `"1.234567890"`.',
        examples=["1.234567890"],
    )
    currency: str = Field(description="ISO 4217 code of the tariff, e.g. `EUR`.")
    coverage: float = Field(
        ge=0, description="Share of the window covered by counter or power intervals (0..1)."
    )
    covered_seconds: float = Field(ge=0, description="Numerator of `coverage`, seconds.")
    first_ts: AwareDatetime | None = Field(description="First accepted reading in the window.")
    last_ts: AwareDatetime | None = Field(description="Last accepted reading in the window.")
    anomaly_score: float | None = Field(description="Anomaly detector score (hour and day).")
    is_anomaly: bool | None
    revision: int = Field(ge=0, description="0 when first emitted, +1 per changed re-emission.")

    @staticmethod
    def payload(window: WindowAggregate) -> dict[str, Any]:
        """This model's JSON object for ``window``, ready for orjson with ``OPT_UTC_Z``.

        Built straight from the stored aggregate (pydantic's Rust ``model_dump`` plus two
        fixes) because validating a thousand items per page through Python serializers costs
        about six times as much; tests check every payload validates against this model.
        """
        item = window.model_dump()
        item["cost"] = decimal_text(window.cost)
        for key in ("window_start", "window_end", "first_ts", "last_ts"):
            moment = item[key]
            if moment is not None and moment.utcoffset():
                item[key] = moment.astimezone(UTC)
        return item


def decimal_text(value: Decimal) -> str:
    """Plain decimal notation with at least 6 decimal places, never dropping a digit."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -COST_MIN_DECIMALS:
        value = value.quantize(_SIX_PLACES)
    return format(value, "f")


class MetricsResponse(BaseModel):
    """A page of windows ordered by `(device_id, period, window_start)`."""

    items: list[MetricItem]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


# --- health -------------------------------------------------------------------------------


class HealthResponse(BaseModel):
    """The process is alive (no dependency is checked)."""

    status: Literal["ok"] = "ok"


class CheckResult(BaseModel):
    """The outcome of one readiness check."""

    status: Literal["up", "down"]
    latency_ms: float = Field(ge=0, description="How long the check took.")
    error: str | None = Field(default=None, description="Why it is down; null when up.")


class ReadyResponse(BaseModel):
    """Readiness: 200 when every check is up, else 503 with the same body naming what is down."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult] = Field(
        description="One entry per dependency: `broker` (Kafka metadata request) and "
        "`database` (`SELECT 1`)."
    )
    down: list[str] = Field(default_factory=list, description="Names of the checks that failed.")


# --- stats --------------------------------------------------------------------------------


class StatsTotals(BaseModel):
    """Counters summed over every worker that ever reported (cumulative since each started).

    Rates (`rate_*`) are summed over fresh workers only. Counters a worker reports beyond the
    ones listed here are summed the same way and appear as extra members.
    """

    model_config = ConfigDict(extra="allow")

    readings_received: int | float = 0
    readings_accepted: int | float = 0
    readings_rejected: int | float = Field(default=0, description="Sum of `rejected_by_reason`.")
    rejected_by_reason: dict[str, int | float] = Field(default_factory=dict)
    duplicates: int | float = 0
    spikes: int | float = 0
    windows_emitted: int | float = 0
    windows_revised: int | float = 0
    rate_per_s_1m: int | float = Field(default=0, description="Readings per second, last minute.")


class WorkerStats(BaseModel):
    """What one worker last published."""

    worker_id: str
    updated_at: AwareDatetime
    age_s: float = Field(description="Seconds since `updated_at`.")
    stale: bool = Field(description="True when older than `stale_after_s`: likely stopped.")
    stats: dict[str, Any] = Field(description="The worker's own counters, as published.")


class PartitionLag(BaseModel):
    partition: int = Field(ge=0)
    end_offset: int = Field(ge=0, description="Offset of the next message to be written.")
    committed_offset: int | None = Field(
        description="The group's committed offset; null when it never committed."
    )
    lag: int = Field(ge=0, description="Messages not yet processed by the group.")


class ConsumerLag(BaseModel):
    """Lag of the workers' consumer group on the readings topic, measured by the API."""

    group: str
    topic: str
    partitions: list[PartitionLag] = Field(default_factory=list)
    total_lag: int | None = Field(description="Sum over partitions; null when not measured.")
    error: str | None = Field(default=None, description="Why lag could not be measured.")


class StatsResponse(BaseModel):
    """Processing statistics of all workers plus the consumer lag."""

    generated_at: AwareDatetime
    stale_after_s: float
    workers_total: int = Field(ge=0)
    workers_fresh: int = Field(ge=0)
    totals: StatsTotals
    workers: list[WorkerStats]
    consumer_lag: ConsumerLag
    jobs: JobCounts | None = Field(
        default=None,
        description="Jobs by status and kind; null when they could not be counted.",
    )
