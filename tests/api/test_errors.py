"""Every error is one problem+json shape: unknown route, wrong method, big body, crash."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from api.app import create_app
from api.middleware import RequestMiddleware
from models.api import Problem
from service.settings import Settings
from tests.api.fakes import FakeKafka, FakeReader, FakeStatsStore


def problem(response: object, status: int) -> Problem:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert list(body) == ["type", "title", "status", "detail", "errors"]
    parsed = Problem.model_validate(body)
    assert parsed.status == status
    return parsed


def test_unknown_route_is_404_json(client: TestClient) -> None:
    found = problem(client.get("/api/v1/nothing-here"), 404)
    assert found.title == "Not Found"
    assert "/api/v1/nothing-here" in found.detail
    assert found.errors == []


def test_wrong_method_is_405_json_with_allow(client: TestClient) -> None:
    response = client.delete("/api/v1/metrics")
    found = problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD"
    assert "DELETE" in found.detail


def test_head_is_allowed_on_get_routes(client: TestClient) -> None:
    assert client.head("/health").status_code == 200


def test_oversized_body_is_413(settings: Settings) -> None:
    app = create_app(
        settings,
        reader=FakeReader(),
        stats_store=FakeStatsStore(),
        kafka=FakeKafka(),
        max_body_bytes=1000,
    )
    with TestClient(app) as client:
        declared = problem(client.post("/api/v1/metrics", content=b"x" * 1001), 413)
        assert "1000 bytes" in declared.detail
        assert client.post("/health", content=b"x" * 1000).status_code == 405


def test_streamed_body_is_cut_off_at_the_limit() -> None:
    async def echo_length(request: Request) -> Response:
        return Response(str(len(await request.body())))

    app = Starlette(
        routes=[Route("/upload", echo_length, methods=["POST"])],
        middleware=[Middleware(RequestMiddleware, max_body_bytes=1000)],
    )

    def chunks(count: int) -> Iterator[bytes]:
        for _ in range(count):
            yield b"y" * 400

    with TestClient(app) as client:
        # No Content-Length: the limit is enforced while the body streams in.
        assert client.post("/upload", content=chunks(2)).text == "800"
        problem(client.post("/upload", content=chunks(3)), 413)


def test_unexpected_exception_is_500_without_internals_and_logged(
    client: TestClient, reader: FakeReader, caplog: pytest.LogCaptureFixture
) -> None:
    reader.query_error = RuntimeError("secret internal state: password=hunter2")
    with caplog.at_level(logging.ERROR, logger="api.middleware"):
        found = problem(client.get("/api/v1/metrics"), 500)
    assert "hunter2" not in found.model_dump_json()
    assert "RuntimeError" not in found.model_dump_json()
    assert found.title == "Internal Server Error"
    (record,) = [r for r in caplog.records if r.name == "api.middleware"]
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


def test_one_access_log_line_per_request(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="api.access"):
        client.get("/api/v1/metrics", params={"limit": "3"})
        client.get("/missing")
        client.get("/health")
    lines = [r for r in caplog.records if r.name == "api.access"]
    assert [(r.method, r.path, r.status, r.levelno) for r in lines] == [  # type: ignore[attr-defined]
        ("GET", "/api/v1/metrics", 200, logging.INFO),
        ("GET", "/missing", 404, logging.INFO),
        ("GET", "/health", 200, logging.DEBUG),
    ]
    assert all(r.duration_ms >= 0 for r in lines)  # type: ignore[attr-defined]


def test_405_lists_every_method_of_a_path_served_by_several_endpoints(
    client: TestClient,
) -> None:
    """Regression: GET and POST /api/v1/jobs were two routes, and a 405 there listed only
    the first one's methods (found by schemathesis after an endpoint was added)."""
    response = client.request("OPTIONS", "/api/v1/jobs")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert client.request("DELETE", "/api/v1/metrics").headers["allow"] == "GET, HEAD"
