"""The OpenAPI 3.1 document, built from the endpoint table and the pydantic models.

Each Endpoint names its handler, query-parameter model and response models; the router
(api.routes) and this document are both made from the same table, so what is documented
is what is served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import Response

from api.auth import READ_SCOPE, WRITE_SCOPE, required_scope
from api.errors import PROBLEM_TYPES
from api.responses import PROBLEM_MEDIA_TYPE
from api.state import AppState
from models.api import Problem

Handler = Callable[[Request[AppState]], Awaitable[Response]]
REF_TEMPLATE = "#/components/schemas/{model}"
TITLE = "Energy data processing API"
DESCRIPTION = (
    "Hourly, daily, weekly and monthly consumption per device with cost and anomaly score, "
    "computed from the `energy.readings` Kafka topic; processing statistics; health. "
    "Every error is `application/problem+json` (schema `Problem`) naming each field at fault. "
    "Times are RFC 3339; responses use UTC with `Z`. Unknown query parameters are ignored. "
    "Everything under `/api/v1` needs a JWT bearer token (`Authorization: Bearer <JWT>`) "
    f"whose scopes include `{READ_SCOPE}` for GET and HEAD, `{WRITE_SCOPE}` for POST; "
    "health, readiness and documentation are open."
)
SECURITY_SCHEME = "bearerAuth"
SECURITY_SCHEMES: Mapping[str, Any] = {
    SECURITY_SCHEME: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT signed with the configured key (HS256 secret or RS256 public "
        "key), with `exp` and, when configured, the expected `iss` and `aud`. Scopes are read "
        "from `scope` (space-separated, OAuth 2 style), `scp` and `scopes` (a string or a list "
        f"of strings): `{READ_SCOPE}` for GET and HEAD, `{WRITE_SCOPE}` for any other method. "
        "Missing or rejected token: 401; valid token without the scope: 403.",
    }
}
WWW_AUTHENTICATE = {"WWW-Authenticate": "The Bearer challenge (RFC 6750) and why it failed."}
RETRY_AFTER = {"Retry-After": "Seconds to wait before retrying."}


@dataclass(frozen=True)
class ResponseSpec:
    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"
    schema: Mapping[str, Any] | None = None
    """A literal JSON Schema for bodies that are not one of the pydantic models."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Response headers this answer always carries, by name, with a description."""


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    responses: Mapping[int, ResponseSpec]
    description: str = ""
    query: type[BaseModel] | None = None
    extra_problems: Mapping[int, str] = field(default_factory=dict)
    body: type[BaseModel] | None = None
    """The JSON request body's model (validation schema)."""
    body_description: str = ""
    path_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Path parameter name -> {"schema": ..., "description": ...}."""
    extra_models: tuple[type[BaseModel], ...] = ()
    """Further models listed under components (e.g. the parameters of each job kind)."""


def problem(description: str, headers: Mapping[str, str] | None = None) -> ResponseSpec:
    return ResponseSpec(description, Problem, PROBLEM_MEDIA_TYPE, headers=headers or {})


def all_responses(endpoint: Endpoint) -> dict[int, ResponseSpec]:
    """The endpoint's own responses plus the errors any request can meet."""
    responses = dict(endpoint.responses)
    if endpoint.query is not None or endpoint.path_params:
        responses.setdefault(400, problem("A parameter is invalid; `errors` names each."))
    if endpoint.body is not None:
        responses.setdefault(
            400, problem("The body or a parameter is invalid; `errors` names each.")
        )
    for status, description in endpoint.extra_problems.items():
        responses.setdefault(status, problem(description, RETRY_AFTER if status == 503 else None))
    scope = required_scope(endpoint.method, endpoint.path)
    if scope is not None:
        responses.setdefault(
            401,
            problem(
                "No bearer token, or the token was rejected (signature, expiry, issuer, "
                "audience or algorithm).",
                WWW_AUTHENTICATE,
            ),
        )
        responses.setdefault(
            403, problem(f"The token is valid but lacks the scope `{scope}`.", WWW_AUTHENTICATE)
        )
    responses.setdefault(413, problem("The request body is larger than the limit."))
    responses.setdefault(500, problem("Unexpected server error (logged; no internals shown)."))
    return dict(sorted(responses.items()))


def build_openapi(endpoints: Iterable[Endpoint]) -> dict[str, Any]:
    endpoints = list(endpoints)
    keys: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(Problem, "serialization"): None}
    for endpoint in endpoints:
        for spec in all_responses(endpoint).values():
            if spec.model is not None:
                keys[(spec.model, "serialization")] = None
        if endpoint.body is not None:
            keys[(endpoint.body, "validation")] = None
        for model in endpoint.extra_models:
            keys[(model, "validation")] = None
    refs, top = models_json_schema(list(keys), ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        operation: dict[str, Any] = {
            "operationId": endpoint.operation_id,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
        }
        if endpoint.description:
            operation["description"] = endpoint.description
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": dict(spec["schema"]),
                "description": spec.get("description", ""),
            }
            for name, spec in endpoint.path_params.items()
        ]
        if endpoint.query is not None:
            parameters.extend(query_parameters(endpoint.query))
        if parameters:
            operation["parameters"] = parameters
        if endpoint.body is not None:
            operation["requestBody"] = {
                "required": True,
                "description": endpoint.body_description or endpoint.body.__doc__ or "",
                "content": {"application/json": {"schema": refs[(endpoint.body, "validation")]}},
            }
        scope = required_scope(endpoint.method, endpoint.path)
        operation["security"] = [{SECURITY_SCHEME: [scope]}] if scope is not None else []
        operation["responses"] = {
            str(status): _response(spec, refs) for status, spec in all_responses(endpoint).items()
        }
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": _version(), "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": dict(SECURITY_SCHEMES),
        },
        "tags": [{"name": tag} for tag in dict.fromkeys(e.tag for e in endpoints)],
        "x-problem-types": dict(PROBLEM_TYPES),
    }


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One OpenAPI query parameter per field; optional ones lose the ``null`` branch."""
    schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = _without_null(dict(prop))
        prop.pop("title", None)
        description = prop.pop("description", "")
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    branches = prop.get("anyOf")
    if isinstance(branches, list):
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1 and len(rest) < len(branches):
            del prop["anyOf"]
            merged = dict(rest[0])
            merged.update(prop)
            if merged.get("default", ...) is None:
                del merged["default"]
            return merged
    return prop


def _response(spec: ResponseSpec, refs: Mapping[Any, dict[str, Any]]) -> dict[str, Any]:
    if spec.model is None:
        schema: dict[str, Any] = dict(spec.schema or {"type": "string"})
    else:
        schema = dict(refs[(spec.model, "serialization")])
    response: dict[str, Any] = {
        "description": spec.description,
        "content": {spec.media_type: {"schema": schema}},
    }
    if spec.headers:
        response["headers"] = {
            name: {"description": text, "required": True, "schema": {"type": "string"}}
            for name, text in spec.headers.items()
        }
    return response


def _version() -> str:
    try:
        return metadata.version("energy-processing")
    except metadata.PackageNotFoundError:
        return "0.0.0+source"
