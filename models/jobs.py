"""Jobs: the stored record, the parameters of each kind, and the API's job schemas.

A job is requested over the API, recorded in PostgreSQL as ``pending``, published to
``energy.jobs`` and run by a worker. ``JOB_PARAMETERS`` maps each kind to the model its
parameters must satisfy; the API validates against it before recording the job, and the
worker hands the validated model to the kind's runner (agents/jobs/registry.py).
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationInfo,
    field_validator,
)

from models.metrics import Period

JobStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = ("pending", "running", "succeeded", "failed", "cancelled")
FINISHED_STATUSES: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")
ReportFormat = Literal["csv", "json", "html"]
REPORT_FORMATS: tuple[ReportFormat, ...] = ("csv", "json", "html")

DEVICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
ARTIFACT_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
DEVICE_BATCH_MAX_READINGS = 10_000
MAX_DEVICE_IDS = 1000

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
RFC3339_RULE = "must be an RFC 3339 date-time with Z or a UTC offset, e.g. 2024-05-01T00:00:00Z"


def _strict_rfc3339(value: object) -> object:
    """Only strings in RFC 3339 with an offset: no epoch numbers, no naive times."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
        raise ValueError(RFC3339_RULE)
    return value


class JobParameters(BaseModel):
    """Base of every kind's parameters: unknown fields are rejected. Fields read both as
    attributes (``parameters.start``) and by name (``parameters["start"]``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __getitem__(self, name: str) -> Any:
        if name not in type(self).model_fields:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name) if name in type(self).model_fields else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in type(self).model_fields


class TimeRange(JobParameters):
    """``[start, end)`` as RFC 3339 date-times with an offset; ``start`` before ``end``."""

    start: AwareDatetime = Field(description="Inclusive start, RFC 3339 with `Z` or an offset.")
    end: AwareDatetime = Field(description="Exclusive end, RFC 3339 with `Z` or an offset.")

    _rfc3339 = field_validator("start", "end", mode="before")(_strict_rfc3339)

    @field_validator("end")
    @classmethod
    def _ordered(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("start")
        if isinstance(start, datetime) and value <= start:
            raise ValueError("must be after start")
        return value


def _document_array(
    schema: dict[str, Any], *, unique: bool, items_pattern: str | None = None
) -> None:
    """Say in the schema what the validators check: items unique, each matching a pattern
    (on the array branch of an optional field's ``anyOf``)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "array":
            branch["uniqueItems"] = unique
            if items_pattern is not None:
                branch.setdefault("items", {})["pattern"] = items_pattern


def _unique(values: list[Any] | None, what: str) -> list[Any] | None:
    if values is not None and len(set(values)) != len(values):
        raise ValueError(f"{what} must not repeat")
    return values


class DeviceFilter(JobParameters):
    """An optional list of devices to restrict a job to."""

    device_ids: list[Annotated[str, Field(pattern=DEVICE_ID_PATTERN)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_DEVICE_IDS,
        description="Only these devices (default: every device).",
        json_schema_extra=lambda schema: _document_array(
            schema, unique=True, items_pattern=DEVICE_ID_PATTERN
        ),
    )

    @field_validator("device_ids")
    @classmethod
    def _devices(cls, value: list[str] | None) -> list[str] | None:
        for device_id in value or []:
            if re.fullmatch(DEVICE_ID_PATTERN, device_id) is None:
                raise ValueError(f"{device_id!r} is not 1-128 characters of A-Z a-z 0-9 . _ : -")
        return _unique(value, "device_ids")


class AggregateParameters(TimeRange, DeviceFilter):
    """Recompute the windows that intersect ``[start, end)`` from the readings topic."""

    periods: list[Period] | None = Field(
        default=None,
        min_length=1,
        description="Only these periods, a subset of hour, day, week, month (default: all).",
        json_schema_extra=lambda schema: _document_array(schema, unique=True),
    )

    @field_validator("periods")
    @classmethod
    def _periods(cls, value: list[Period] | None) -> list[Period] | None:
        return _unique(value, "periods")


class DeviceBatchParameters(JobParameters):
    """Readings of one device, judged and folded like the stream does, from a fresh state."""

    device_id: str = Field(pattern=DEVICE_ID_PATTERN, description="The device of every reading.")
    readings: list[Any] = Field(
        min_length=1,
        max_length=DEVICE_BATCH_MAX_READINGS,
        description="Reading objects as on `energy.readings` (SEMANTICS.md section 1), in "
        f"arrival order; at most {DEVICE_BATCH_MAX_READINGS}. A reading without `device_id` "
        "gets the job's; one naming another device is rejected (`invalid_schema`). Each is "
        "validated by the worker: rejected readings are reported in the result by reason.",
    )


class CleanupParameters(JobParameters):
    """Retention: no parameters; the retention periods come from the settings."""


class ReportParameters(TimeRange, DeviceFilter):
    """A consumption report for devices over ``[start, end)``."""

    formats: list[ReportFormat] = Field(
        default_factory=lambda: list(REPORT_FORMATS),
        min_length=1,
        description="Artifacts to produce, a subset of csv, json, html (default: all).",
        json_schema_extra={"uniqueItems": True},
    )

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[ReportFormat]) -> list[ReportFormat]:
        unique = _unique(value, "formats")
        assert unique is not None
        return unique


class AnomalyReviewParameters(JobParameters):
    """Summarise the anomalies of one local day: counts per device, the top windows, and
    each flagged device's day against its usual day."""

    date: dt.date | None = Field(
        default=None,
        description="The local calendar day in `TIMEZONE`, `YYYY-MM-DD` (default: yesterday).",
    )

    @field_validator("date", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        if value is None or isinstance(value, dt.date):
            return value
        if not isinstance(value, str) or re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is None:
            raise ValueError("must be a date as YYYY-MM-DD")
        return value


class RollupParameters(JobParameters):
    """Fleet figures of one closed hour: devices reporting and silent, energy, cost,
    flagged windows."""

    hour: AwareDatetime | None = Field(
        default=None,
        description="Start of the UTC hour, RFC 3339 with `Z` or an offset, on the hour "
        "(default: the last hour closed more than `GRACE` ago).",
    )

    @field_validator("hour", mode="before")
    @classmethod
    def _strict(cls, value: object) -> object:
        return value if value is None else _strict_rfc3339(value)

    @field_validator("hour")
    @classmethod
    def _on_the_hour(cls, value: datetime | None) -> datetime | None:
        if value is not None:
            utc = value.astimezone(UTC)
            if (utc.minute, utc.second, utc.microsecond) != (0, 0, 0):
                raise ValueError("must be the start of a UTC hour")
        return value


# kind -> parameters model. Adding a kind: one entry here and one in agents/jobs/registry.py.
JOB_PARAMETERS: dict[str, type[JobParameters]] = {
    "aggregate": AggregateParameters,
    "device_batch": DeviceBatchParameters,
    "cleanup": CleanupParameters,
    "report": ReportParameters,
    "anomaly_review": AnomalyReviewParameters,
    "rollup": RollupParameters,
}


# --- records and API schemas --------------------------------------------------------------


class Job(BaseModel):
    """A job as stored and served."""

    id: UUID
    kind: str = Field(
        description="What the job does: " + ", ".join(f"`{k}`" for k in JOB_PARAMETERS)
    )
    status: JobStatus
    parameters: dict[str, Any] = Field(description="The validated parameters of the kind.")
    progress: int = Field(ge=0, le=100, description="Percent done, 0-100.")
    result: dict[str, Any] | None = Field(
        description="What the job produced; null until it succeeds."
    )
    error: str | None = Field(description="Why it failed (exception type and message); else null.")
    created_at: AwareDatetime
    started_at: AwareDatetime | None = Field(description="When a worker claimed it.")
    finished_at: AwareDatetime | None
    duration_s: float | None = Field(description="Seconds from start to finish.")
    worker_id: str | None = Field(description="The worker that ran (or runs) it.")
    heartbeat_at: AwareDatetime | None = Field(
        description="Last sign of life of the running worker."
    )
    cancel_requested_at: AwareDatetime | None = Field(
        default=None, description="When cancellation of a running job was asked for."
    )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class JobRequest(BaseModel):
    """Body of `POST /api/v1/jobs`."""

    model_config = ConfigDict(extra="forbid")

    # The enum is for the schema only: an unknown kind is refused by the handler, which
    # names the kinds in its answer.
    kind: str = Field(
        description="One of " + ", ".join(f"`{k}`" for k in JOB_PARAMETERS) + ".",
        json_schema_extra={"enum": list(JOB_PARAMETERS)},
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The parameters of the kind (see its schema)."
    )


def _request_variant(kind: str, model: type[JobParameters]) -> type[BaseModel]:
    required = any(f.is_required() for f in model.model_fields.values())
    annotations = {"kind": Literal[kind], "parameters": model}  # type: ignore[valid-type]
    namespace: dict[str, Any] = {
        "__annotations__": annotations,
        "__doc__": f"A `{kind}` job: {model.__doc__ or ''}".strip(),
        "model_config": ConfigDict(extra="forbid"),
    }
    if not required:
        namespace["parameters"] = Field(default_factory=model)
    return type(f"{model.__name__.removesuffix('Parameters')}JobRequest", (BaseModel,), namespace)


# The body of `POST /api/v1/jobs` as documented: one variant per kind, told apart by `kind`.
# The handler validates with JobRequest and the kind's model, which accept exactly the same.
_VARIANTS = tuple(_request_variant(k, m) for k, m in JOB_PARAMETERS.items())


class JobRequestBody(RootModel[Annotated[Union[_VARIANTS], Field(discriminator="kind")]]):  # type: ignore[misc,valid-type]  # noqa: UP007
    """Body of `POST /api/v1/jobs`: a kind and its parameters."""


JobRequestSchema: type[BaseModel] = JobRequestBody


class JobsParams(BaseModel):
    """Query parameters of `GET /api/v1/jobs`. Unknown parameters are ignored."""

    status: JobStatus | None = Field(default=None, description="Only jobs in this status.")
    kind: str | None = Field(
        default=None, pattern=KIND_PATTERN, description="Only jobs of this kind."
    )
    limit: int = Field(default=100, ge=1, le=1000, description="Page size.")
    cursor: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Opaque `next_cursor` of the previous page, with the same filters.",
    )


class JobsResponse(BaseModel):
    """A page of jobs, newest first (ordered by `created_at` then `id`, descending)."""

    items: list[Job]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class ArtifactInfo(BaseModel):
    """A file a job produced (e.g. a report), downloadable from the API."""

    name: str = Field(pattern=ARTIFACT_NAME_PATTERN)
    content_type: str
    size: int = Field(ge=0, description="Bytes.")
    created_at: AwareDatetime


class ArtifactsResponse(BaseModel):
    items: list[ArtifactInfo]


class JobCounts(BaseModel):
    """How many jobs are in each status, and of each kind (all jobs still stored)."""

    total: int = Field(ge=0)
    by_status: dict[str, int] = Field(description="Every status, 0 when none.")
    by_kind: dict[str, int]
    by_kind_and_status: dict[str, dict[str, int]] = Field(
        description="kind -> status -> count (only statuses that occur)."
    )
