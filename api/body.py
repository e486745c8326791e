"""Request bodies and path identifiers, validated into problems naming each field and rule.

For a POST handler: ``await json_body(request, Model)`` answers 415 unless the body is JSON
(``application/json`` or ``application/*+json``, UTF-8), 400 naming ``body`` for malformed
JSON, and 400 naming every field (a dotted path such as ``devices.2``) that breaks the
model's rules. A body over the size limit is 413 (api.middleware). ``parse_uuid`` gives an
identifier in the path the same treatment. Nothing here answers 500 for bad input.
"""

from __future__ import annotations

import re
import uuid
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from api.errors import UNSUPPORTED_MEDIA_TYPE, ApiError, InvalidParameters
from models.api import FieldError

M = TypeVar("M", bound=BaseModel)
JSON_MEDIA_TYPE = "application/json"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_RULE = "must be a UUID such as 3f2b8c9e-6d1a-4c3b-9e7f-0a1b2c3d4e5f"
# pydantic's wording for the commonest errors, in the "is/must" style of the query rules.
_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
}


class UnsupportedMediaType(ApiError):
    """415: the body is not JSON."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            415,
            "Unsupported Media Type",
            detail,
            errors=[FieldError(field="Content-Type", message=detail)],
            type_=UNSUPPORTED_MEDIA_TYPE,
        )


def is_json_media_type(content_type: str | None) -> bool:
    """True for ``application/json`` and ``application/*+json``, in UTF-8 if a charset is set."""
    if not content_type:
        return False
    media_type, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if media_type != JSON_MEDIA_TYPE and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        return False
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip() == "charset" and value.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


async def json_body(request: Request, model: type[M]) -> M:
    """The request body as ``model``; ApiError (415 or 400, naming the fields) otherwise."""
    content_type = request.headers.get("content-type")
    if not is_json_media_type(content_type):
        raise UnsupportedMediaType(
            f"must be {JSON_MEDIA_TYPE} (UTF-8); got {content_type or 'none'}"[:200]
        )
    raw = await request.body()
    if not raw.strip():
        raise InvalidParameters([FieldError(field="body", message="is empty; must be JSON")])
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidParameters(
            [FieldError(field="body", message=f"is not valid JSON ({exc})")]
        ) from exc
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidParameters(field_errors(exc)) from exc


def field_errors(exc: ValidationError) -> list[FieldError]:
    """One FieldError per pydantic error, named by its dotted location (``body`` if none)."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = _MESSAGES.get(error["type"]) or error["msg"].removeprefix("Value error, ")
        errors.append(FieldError(field=field, message=message[:1].lower() + message[1:]))
    return errors


def parse_uuid(value: str, field: str) -> uuid.UUID:
    """A UUID in its canonical 8-4-4-4-12 form; InvalidParameters naming ``field`` otherwise."""
    if _UUID.fullmatch(value) is None:
        raise InvalidParameters([FieldError(field=field, message=_UUID_RULE)])
    return uuid.UUID(value)
