"""JSON bodies and UUIDs in paths: 4xx problems naming the field and rule, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from api.body import is_json_media_type, json_body, parse_uuid
from api.errors import EXCEPTION_HANDLERS
from api.middleware import RequestMiddleware
from models.api import Problem

JOB_ID = "3f2b8c9e-6d1a-4c3b-9e7f-0a1b2c3d4e5f"


class AggregateRequest(BaseModel):
    """A body shaped like the jobs endpoints' (the real ones live on their own branch)."""

    model_config = ConfigDict(extra="forbid")

    start: AwareDatetime
    end: AwareDatetime
    devices: list[str] = Field(default_factory=list, max_length=3)
    periods: list[Literal["hour", "day"]] = Field(default_factory=lambda: ["hour"])

    @model_validator(mode="after")
    def _ordered(self) -> AggregateRequest:
        if self.start > self.end:
            raise ValueError("start must not be after end")
        return self


async def aggregate(request: Request) -> Response:
    body = await json_body(request, AggregateRequest)
    return JSONResponse({"start": body.start.isoformat(), "devices": body.devices})


async def job(request: Request) -> Response:
    job_id = parse_uuid(request.path_params["job_id"], "job_id")
    return JSONResponse({"job_id": str(job_id)})


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = Starlette(
        routes=[
            Route("/aggregate", aggregate, methods=["POST"]),
            Route("/jobs/{job_id}", job),
        ],
        middleware=[Middleware(RequestMiddleware, max_body_bytes=1000)],
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def problem(response: object, status: int) -> Problem:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"] == "application/problem+json"  # type: ignore[attr-defined]
    return Problem.model_validate_json(response.content)  # type: ignore[attr-defined]


def fields(found: Problem) -> dict[str, str]:
    return {error.field: error.message for error in found.errors}


GOOD = {"start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00+01:00", "devices": ["m-1"]}


def test_valid_body_is_accepted(client: TestClient) -> None:
    response = client.post("/aggregate", json=GOOD)
    assert response.status_code == 200
    assert response.json() == {"start": "2024-03-01T00:00:00+00:00", "devices": ["m-1"]}


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"],
)
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/aggregate", content=json.dumps(GOOD), headers={"Content-Type": content_type}
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_wrong_content_type_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/aggregate", content=b'{"start": 1}', headers=headers)
    found = problem(response, 415)
    assert found.type == "/docs#problem-unsupported-media-type"
    assert "Content-Type" in fields(found)
    assert "application/json" in found.detail


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"", "is empty"),
        (b"   ", "is empty"),
        (b"{", "is not valid JSON"),
        (b'{"start": NaN}', "is not valid JSON"),
        (b"\xff\xfe", "is not valid JSON"),
        (b'{"a": 1} trailing', "is not valid JSON"),
    ],
)
def test_bad_json_is_400_naming_the_body(client: TestClient, body: bytes, rule: str) -> None:
    response = client.post("/aggregate", content=body, headers={"Content-Type": "application/json"})
    found = problem(response, 400)
    assert found.type == "/docs#problem-invalid-parameters"
    assert rule in fields(found)["body"]


def test_every_bad_field_is_named_with_its_rule(client: TestClient) -> None:
    body = {
        "start": "2024-03-01T00:00:00",  # no offset
        "devices": ["a", "b", "c", "d"],
        "periods": ["hour", "fortnight"],
        "colour": "blue",
    }
    found = fields(problem(client.post("/aggregate", json=body), 400))
    assert set(found) == {"start", "end", "devices", "periods.1", "colour"}
    assert found["end"] == "is required"
    assert found["colour"] == "is not a known field"
    assert "timezone" in found["start"]
    assert "at most 3" in found["devices"]
    assert "'hour' or 'day'" in found["periods.1"]


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"7", b"null"])
def test_body_that_is_not_an_object_is_400(client: TestClient, body: bytes) -> None:
    response = client.post("/aggregate", content=body, headers={"Content-Type": "application/json"})
    assert list(fields(problem(response, 400))) == ["body"]


def test_cross_field_rule_is_400(client: TestClient) -> None:
    body = {**GOOD, "start": "2024-03-03T00:00:00Z"}
    found = fields(problem(client.post("/aggregate", json=body), 400))
    assert found == {"body": "start must not be after end"}


def test_oversized_body_is_413(client: TestClient) -> None:
    body = {**GOOD, "devices": ["x" * 2000]}
    found = problem(client.post("/aggregate", json=body), 413)
    assert "1000 bytes" in found.detail


def test_uuid_in_path(client: TestClient) -> None:
    assert client.get(f"/jobs/{JOB_ID}").json() == {"job_id": JOB_ID}
    assert client.get(f"/jobs/{JOB_ID.upper()}").json() == {"job_id": JOB_ID}
    for bad in ("42", JOB_ID.replace("-", ""), f"{{{JOB_ID}}}", f"urn:uuid:{JOB_ID}", "x" * 36):
        found = problem(client.get(f"/jobs/{bad}"), 400)
        assert list(fields(found)) == ["job_id"]
        assert "UUID" in found.detail


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/json", True),
        ("Application/JSON ; Charset=UTF-8", True),
        ('application/json; charset="utf-8"', True),
        ("application/problem+json", True),
        ("application/jsonx", False),
        ("text/json", False),
        ("", False),
        (None, False),
    ],
)
def test_is_json_media_type(content_type: str | None, expected: bool) -> None:
    assert is_json_media_type(content_type) is expected
