"""Errors as exceptions carrying data, and the handlers that turn them into problem details.

Every error the API answers has one shape (models.api.Problem, ``application/problem+json``).
Unexpected exceptions never reach here: the request middleware logs them and answers 500.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from http import HTTPStatus

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.responses import problem_response
from models.api import FieldError
from storage.base import SinkUnavailable

# Problem types with their own section in /docs; anything else is ``about:blank``.
INVALID_PARAMETERS = "/docs#problem-invalid-parameters"
UNAVAILABLE = "/docs#problem-unavailable"
UNAUTHORIZED = "/docs#problem-unauthorized"
FORBIDDEN = "/docs#problem-forbidden"
UNSUPPORTED_MEDIA_TYPE = "/docs#problem-unsupported-media-type"
PROBLEM_TYPES: Mapping[str, str] = {
    INVALID_PARAMETERS: "A query parameter (or body field) broke a rule. `errors` lists each "
    "field with the rule; nothing was done. Fix the request before retrying.",
    UNAVAILABLE: "A dependency (the database) did not answer. Retry after the number of "
    "seconds in the `Retry-After` header.",
    UNAUTHORIZED: "401: the request under `/api/v1` has no bearer token, or the token was "
    "rejected (bad signature, expired, wrong issuer, audience or algorithm); `detail` and the "
    "`WWW-Authenticate` header say which. Get a new token and retry.",
    FORBIDDEN: "403: the token is valid but lacks the scope the operation needs "
    "(`processing:read` for GET and HEAD, `processing:write` for POST); the "
    "`WWW-Authenticate` header names it. Retrying with the same token will not help.",
    UNSUPPORTED_MEDIA_TYPE: "415: the request body is not `application/json`. Send JSON with "
    "`Content-Type: application/json`.",
    "/docs#problem-job-not-found": "No job has this id (it never existed, or it finished "
    "longer than `JOB_RETENTION_DAYS` ago and was cleaned up).",
    "/docs#problem-job-finished": "The job already finished (succeeded, failed or "
    "cancelled), so it cannot be cancelled.",
    "/docs#problem-job-not-retryable": "Only a failed or cancelled job can be retried; this "
    "one is pending, running or succeeded.",
}
RETRY_AFTER_S = 5


class ApiError(Exception):
    """An error answer: status, title and detail, plus the fields at fault."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors)
        self.type_ = type_
        self.headers = dict(headers) if headers else {}


class InvalidParameters(ApiError):
    """400: one or more parameters broke their rules."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        detail = "; ".join(f"{error.field}: {error.message}" for error in errors)
        # The title is fixed per problem type (RFC 9457); the detail names the fields.
        super().__init__(
            400,
            "Invalid parameters",
            detail,
            errors=errors,
            type_=INVALID_PARAMETERS,
        )


class DependencyUnavailable(ApiError):
    """503: a store the answer needs did not respond."""

    def __init__(self, dependency: str, detail: str, retry_after: float | None = None) -> None:
        seconds = RETRY_AFTER_S if retry_after is None else max(1, math.ceil(retry_after))
        super().__init__(
            503,
            f"{dependency.capitalize()} unavailable",
            detail,
            type_=UNAVAILABLE,
            headers={"Retry-After": str(seconds)},
        )
        self.dependency = dependency


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        errors=exc.errors,
        type_=exc.type_,
        headers=exc.headers,
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    title = HTTPStatus(status).phrase
    headers = dict(exc.headers or {})
    if status == 404:
        detail = f"no resource at {request.url.path}; the endpoints are listed at /docs"
    elif status == 405:
        # Starlette keeps a route's methods in a set; a stable order reads better.
        methods = (headers.pop("Allow", None) or headers.pop("allow", "")).split(",")
        allowed = ", ".join(sorted(m.strip() for m in methods if m.strip()))
        headers["Allow"] = allowed
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
    else:
        detail = exc.detail if exc.detail != title else title
    return problem_response(status, title, detail, headers=headers)


async def _sink_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SinkUnavailable)
    return await _api_error(request, DependencyUnavailable("database", exc.detail, exc.retry_after))


EXCEPTION_HANDLERS = {
    ApiError: _api_error,
    HTTPException: _http_error,
    SinkUnavailable: _sink_unavailable,
}
