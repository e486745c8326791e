"""Job endpoints: request, list, show and cancel jobs, and download what they produced.

A request is validated against its kind's parameters model (models.jobs.JOB_PARAMETERS),
recorded as ``pending`` in PostgreSQL, then published to ``energy.jobs``; when publishing
fails the job stays pending and a worker picks it up after ``JOB_PENDING_TIMEOUT``.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from api.errors import ApiError, InvalidParameters
from api.params import jobs_query, parse_uuid
from api.responses import JSONResponse
from api.state import AppState
from models.api import FieldError
from models.jobs import (
    ARTIFACT_NAME_PATTERN,
    JOB_PARAMETERS,
    AggregateParameters,
    ArtifactsResponse,
    Job,
    JobRequest,
    JobsResponse,
)
from storage.base import InvalidCursor
from storage.jobs import JobAlreadyFinished, JobNotFound

JOB_NOT_FOUND = "/docs#problem-job-not-found"
JOB_FINISHED = "/docs#problem-job-finished"
JOB_NOT_RETRYABLE = "/docs#problem-job-not-retryable"
RETRYABLE_STATUSES = frozenset({"failed", "cancelled"})


class JobNotFoundError(ApiError):
    def __init__(self, job_id: UUID) -> None:
        super().__init__(404, "Job not found", f"no job {job_id}", type_=JOB_NOT_FOUND)


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    """One FieldError per pydantic error, the field named by its dotted location."""
    errors = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        field = ".".join(part for part in (prefix, location) if part) or "body"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "is not a known field"
        elif error["type"] == "missing":
            message = "is required"
        errors.append(FieldError(field=field, message=message))
    return errors


async def json_body(request: Request[AppState]) -> dict[str, Any]:
    """The request body as a JSON object (strict JSON: no NaN or Infinity)."""
    raw = await request.body()
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidParameters(
            [FieldError(field="body", message="must be a JSON object (strict RFC 8259 JSON)")]
        ) from None
    if not isinstance(doc, dict):
        raise InvalidParameters([FieldError(field="body", message="must be a JSON object")])
    return doc


def job_json(job: Job) -> dict[str, Any]:
    return job.model_dump(mode="json")


async def _submit(request: Request[AppState], kind: str, parameters: BaseModel) -> Response:
    state = request.state
    job = await state["jobs"].create(kind, parameters.model_dump(mode="json"))
    await state["job_publisher"].publish(job.id, kind)
    return JSONResponse(
        job_json(job), status_code=202, headers={"Location": f"/api/v1/jobs/{job.id}"}
    )


def storable_text_errors(doc: Any, path: str = "") -> list[FieldError]:
    """PostgreSQL's jsonb cannot hold NUL characters or unpaired surrogates: name where the
    document has one, so the request is refused (400) instead of failing to store."""
    errors: list[FieldError] = []

    def bad(text: str) -> bool:
        return "\x00" in text or any(0xD800 <= ord(c) <= 0xDFFF for c in text)

    def walk(value: Any, where: str) -> None:
        if len(errors) >= 10:
            return
        if isinstance(value, str):
            if bad(value):
                errors.append(FieldError(field=where or "body", message=_UNSTORABLE))
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{where}.{key}" if where else str(key)
                if bad(str(key)):
                    errors.append(FieldError(field=where or "body", message=_UNSTORABLE))
                    continue
                walk(item, child)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{where}.{index}" if where else str(index))

    walk(doc, path)
    return errors


_UNSTORABLE = "must not contain NUL characters or unpaired surrogates"


async def create_job(request: Request[AppState]) -> Response:
    doc = await json_body(request)
    unstorable = storable_text_errors(doc)
    if unstorable:
        raise InvalidParameters(unstorable)
    try:
        body = JobRequest.model_validate(doc)
    except ValidationError as exc:
        raise InvalidParameters(field_errors(exc)) from exc
    model = JOB_PARAMETERS.get(body.kind)
    if model is None:
        raise InvalidParameters(
            [FieldError(field="kind", message=f"must be one of {', '.join(JOB_PARAMETERS)}")]
        )
    try:
        parameters = model.model_validate(body.parameters)
    except ValidationError as exc:
        raise InvalidParameters(field_errors(exc, "parameters")) from exc
    return await _submit(request, body.kind, parameters)


async def create_aggregate(request: Request[AppState]) -> Response:
    doc = await json_body(request)
    try:
        parameters = AggregateParameters.model_validate(doc)
    except ValidationError as exc:
        raise InvalidParameters(field_errors(exc)) from exc
    return await _submit(request, "aggregate", parameters)


async def list_jobs(request: Request[AppState]) -> Response:
    query = jobs_query(request.query_params)
    try:
        page = await request.state["jobs"].list_jobs(query)
    except InvalidCursor as exc:
        raise InvalidParameters(
            [FieldError(field="cursor", message="is not a cursor issued by this service")]
        ) from exc
    body = JobsResponse(items=page.items, next_cursor=page.next_cursor)
    return JSONResponse(body.model_dump(mode="json"))


def _job_id(request: Request[AppState]) -> UUID:
    try:
        return parse_uuid(request.path_params["job_id"])
    except ValueError as exc:
        raise InvalidParameters([FieldError(field="job_id", message=str(exc))]) from exc


async def get_job(request: Request[AppState]) -> Response:
    job_id = _job_id(request)
    job = await request.state["jobs"].get(job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    return JSONResponse(job_json(job))


async def cancel_job(request: Request[AppState]) -> Response:
    job_id = _job_id(request)
    try:
        job = await request.state["jobs"].cancel(job_id)
    except JobNotFound as exc:
        raise JobNotFoundError(job_id) from exc
    except JobAlreadyFinished as exc:
        raise ApiError(
            409,
            "Job already finished",
            f"job {job_id} already finished with status {exc.job.status}; nothing to cancel",
            type_=JOB_FINISHED,
        ) from exc
    return JSONResponse(job_json(job), status_code=200 if job.finished else 202)


async def retry_job(request: Request[AppState]) -> Response:
    """A new job with the kind and parameters of a failed or cancelled one (the old job
    stays as it is, for the record)."""
    job_id = _job_id(request)
    job = await request.state["jobs"].get(job_id)
    if job is None:
        raise JobNotFoundError(job_id)
    if job.status not in RETRYABLE_STATUSES:
        raise _not_retryable(f"job {job_id} is {job.status}; only a failed or cancelled job")
    model = JOB_PARAMETERS.get(job.kind)
    if model is None:
        raise _not_retryable(f"job {job_id} is of kind {job.kind!r}, which cannot be requested")
    try:
        parameters = model.model_validate(job.parameters)
    except ValidationError as exc:
        raise _not_retryable(f"job {job_id} has parameters no longer valid") from exc
    return await _submit(request, job.kind, parameters)


def _not_retryable(why: str) -> ApiError:
    return ApiError(409, "Job not retryable", f"{why} can be retried", type_=JOB_NOT_RETRYABLE)


async def list_artifacts(request: Request[AppState]) -> Response:
    job_id = _job_id(request)
    jobs = request.state["jobs"]
    items = await jobs.list_artifacts(job_id)
    if not items and await jobs.get(job_id) is None:
        raise JobNotFoundError(job_id)
    return JSONResponse(ArtifactsResponse(items=items).model_dump(mode="json"))


async def get_artifact(request: Request[AppState]) -> Response:
    job_id = _job_id(request)
    name = request.path_params["name"]
    if re.fullmatch(ARTIFACT_NAME_PATTERN, name) is None:
        raise InvalidParameters(
            [FieldError(field="name", message="must be 1-128 characters of A-Z a-z 0-9 . _ -")]
        )
    jobs = request.state["jobs"]
    artifact = await jobs.get_artifact(job_id, name)
    if artifact is None:
        if await jobs.get(job_id) is None:
            raise JobNotFoundError(job_id)
        raise ApiError(404, "Artifact not found", f"job {job_id} has no artifact {name!r}")
    return Response(
        artifact.data,
        media_type=artifact.info.content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
