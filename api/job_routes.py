"""The job endpoints' entries in the endpoint table (router and /openapi.json)."""

from __future__ import annotations

from typing import Any

from api.jobs import (
    cancel_job,
    create_aggregate,
    create_job,
    get_artifact,
    get_job,
    list_artifacts,
    list_jobs,
    retry_job,
)
from api.openapi import Endpoint, ResponseSpec, problem
from models.jobs import (
    ARTIFACT_NAME_PATTERN,
    DEVICE_BATCH_MAX_READINGS,
    JOB_PARAMETERS,
    AggregateParameters,
    ArtifactsResponse,
    Job,
    JobRequestSchema,
    JobsParams,
    JobsResponse,
)

JOB_ID: dict[str, Any] = {
    "job_id": {"schema": {"type": "string", "format": "uuid"}, "description": "The job's id."}
}
UNAVAILABLE = {503: "The database did not answer; retry after `Retry-After` seconds."}
NOT_FOUND = problem("No job has this id.")
KINDS = ", ".join(
    f"`{kind}` (parameters: schema `{model.__name__}`)" for kind, model in JOB_PARAMETERS.items()
)

JOB_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/api/v1/jobs",
        list_jobs,
        operation_id="listJobs",
        summary="Jobs, newest first",
        description="Every stored job, newest first, optionally only one status or kind. "
        "Paginate by passing `next_cursor` back as `cursor` with the same filters.",
        tag="jobs",
        query=JobsParams,
        responses={200: ResponseSpec("A page of jobs.", JobsResponse)},
        extra_problems=UNAVAILABLE,
    ),
    Endpoint(
        "POST",
        "/api/v1/jobs",
        create_job,
        operation_id="createJob",
        summary="Request a job",
        description=f"Kinds: {KINDS}. The job is recorded as `pending` and published to "
        "`energy.jobs`; a worker runs it. Poll `GET /api/v1/jobs/{job_id}` (the `Location` "
        f"header) for its status. `device_batch` takes at most {DEVICE_BATCH_MAX_READINGS} "
        "readings (and the body at most 1 MiB).",
        tag="jobs",
        body=JobRequestSchema,
        extra_models=tuple(JOB_PARAMETERS.values()),
        responses={202: ResponseSpec("The job, recorded as pending.", Job)},
        extra_problems=UNAVAILABLE,
    ),
    Endpoint(
        "GET",
        "/api/v1/jobs/{job_id}",
        get_job,
        operation_id="getJob",
        summary="One job: status, progress, result or error, timing",
        tag="jobs",
        path_params=JOB_ID,
        responses={200: ResponseSpec("The job.", Job), 404: NOT_FOUND},
        extra_problems=UNAVAILABLE,
    ),
    Endpoint(
        "POST",
        "/api/v1/jobs/{job_id}/cancel",
        cancel_job,
        operation_id="cancelJob",
        summary="Cancel a job that has not finished",
        description="A pending job is cancelled at once (200). A running job is asked to "
        "stop (202, `cancel_requested_at` set): it stops at its next progress report and "
        "ends `cancelled`.",
        tag="jobs",
        path_params=JOB_ID,
        responses={
            200: ResponseSpec("The job, now cancelled.", Job),
            202: ResponseSpec("The running job, asked to stop.", Job),
            404: NOT_FOUND,
            409: problem("The job already finished."),
        },
        extra_problems=UNAVAILABLE,
    ),
    Endpoint(
        "POST",
        "/api/v1/jobs/{job_id}/retry",
        retry_job,
        operation_id="retryJob",
        summary="Run a failed or cancelled job again",
        description="Records a new job with the same kind and parameters (status "
        "`pending`, a new id; the `Location` header points to it) and publishes it, as "
        "`POST /api/v1/jobs` would. The failed or cancelled job stays as it was.",
        tag="jobs",
        path_params=JOB_ID,
        responses={
            202: ResponseSpec("The new job, recorded as pending.", Job),
            404: NOT_FOUND,
            409: problem("The job is pending, running or succeeded: nothing to retry."),
        },
        extra_problems=UNAVAILABLE,
    ),
    Endpoint(
        "GET",
        "/api/v1/jobs/{job_id}/artifacts",
        list_artifacts,
        operation_id="listJobArtifacts",
        summary="Files a job produced (e.g. report CSV, JSON, HTML)",
        tag="jobs",
        path_params=JOB_ID,
        responses={200: ResponseSpec("The job's artifacts.", ArtifactsResponse), 404: NOT_FOUND},
        extra_problems=UNAVAILABLE,
    ),
    Endpoint(
        "GET",
        "/api/v1/jobs/{job_id}/artifacts/{name}",
        get_artifact,
        operation_id="getJobArtifact",
        summary="Download one artifact",
        description="The file as stored, with its content type and "
        "`Content-Disposition: attachment`.",
        tag="jobs",
        path_params={
            **JOB_ID,
            "name": {
                "schema": {"type": "string", "pattern": ARTIFACT_NAME_PATTERN},
                "description": "The artifact's name, as listed.",
            },
        },
        responses={
            200: ResponseSpec(
                "The file.", media_type="application/octet-stream", schema={"type": "string"}
            ),
            404: problem("No such job, or the job has no artifact of this name."),
        },
        extra_problems=UNAVAILABLE,
    ),
    Endpoint(
        "POST",
        "/api/v1/aggregate",
        create_aggregate,
        operation_id="createAggregateJob",
        summary="Recompute windows for a time range (an `aggregate` job)",
        description="Same as `POST /api/v1/jobs` with kind `aggregate`: re-reads the readings "
        "topic and rewrites the windows that intersect `[start, end)` of the given devices "
        "and periods (default all), with a higher revision.",
        tag="jobs",
        body=AggregateParameters,
        responses={202: ResponseSpec("The aggregate job, recorded as pending.", Job)},
        extra_problems=UNAVAILABLE,
    ),
)
