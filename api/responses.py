"""Response classes: JSON rendered with orjson, and RFC 9457 problem details."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

from models.api import FieldError, Problem, decimal_text

PROBLEM_MEDIA_TYPE = "application/problem+json"
_ORJSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _default(value: object) -> object:
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, BaseModel):
        return value.model_dump()
    raise TypeError(f"cannot serialize {type(value).__name__} as JSON")


def dumps(content: object) -> bytes:
    """JSON bytes; datetimes as RFC 3339 with ``Z`` for UTC, decimals as exact strings."""
    try:
        return orjson.dumps(content, default=_default, option=_ORJSON_OPTIONS)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
    # An integer beyond 64 bits (echoed client data, e.g. a device_batch reading): valid
    # JSON that orjson cannot write; the standard library can.
    return json.dumps(
        content, default=_default_stdlib, ensure_ascii=False, separators=(",", ":")
    ).encode()


def _default_stdlib(value: object) -> object:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return _default(value)


class JSONResponse(Response):
    """``application/json`` rendered by orjson (several times faster than the stdlib)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def model_response(model: BaseModel, status_code: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(), status_code=status_code)


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = Problem(type=type_, title=title, status=status, detail=detail, errors=list(errors))
    return Response(
        dumps(body.model_dump()),
        status_code=status,
        headers=dict(headers) if headers else None,
        media_type=PROBLEM_MEDIA_TYPE,
    )
