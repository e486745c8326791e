"""/openapi.json is valid OpenAPI 3.1, lists every route, and matches what is served."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Route
from starlette.testclient import TestClient

from api.routes import ENDPOINTS
from models.api import LIMIT_DEFAULT, LIMIT_MAX, LIMIT_MIN
from tests.api.fakes import FakeKafka, FakeReader, FakeStatsStore, window


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def schema_validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": document["components"]})


def response_schema(
    document: dict[str, Any], path: str, status: int, media_type: str = "application/json"
) -> dict[str, Any]:
    operation = document["paths"][path]["get"]
    schema: dict[str, Any] = operation["responses"][str(status)]["content"][media_type]["schema"]
    return schema


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_is_documented(client: TestClient, document: dict[str, Any]) -> None:
    app_routes = [r for r in client.app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]
    served = {(r.path, m.lower()) for r in app_routes for m in r.methods or () if m != "HEAD"}
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert served == documented
    for path in ("/health", "/ready", "/api/v1/metrics", "/api/v1/stats", "/openapi.json", "/docs"):
        assert path in document["paths"]
    operation_ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids)) == len(ENDPOINTS)


def test_metrics_parameters_match_the_rules(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/metrics"]["get"]["parameters"]}
    assert set(parameters) == {
        "device_id",
        "period",
        "start",
        "end",
        "limit",
        "cursor",
        "anomalies_only",
    }
    assert all(p["in"] == "query" and p["required"] is False for p in parameters.values())
    assert all(p.get("description") for p in parameters.values())
    limit = parameters["limit"]["schema"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == (
        "integer",
        LIMIT_MIN,
        LIMIT_MAX,
        LIMIT_DEFAULT,
    )
    assert parameters["period"]["schema"]["enum"] == ["hour", "day", "week", "month"]
    assert parameters["start"]["schema"] == {"type": "string", "format": "date-time"}
    assert parameters["end"]["schema"] == {"type": "string", "format": "date-time"}
    assert parameters["anomalies_only"]["schema"] == {"type": "boolean", "default": False}
    device = parameters["device_id"]["schema"]
    assert (device["minLength"], device["maxLength"]) == (1, 128)
    pattern = re.compile(device["pattern"])
    assert pattern.search("Plant.A:meter_7-x") and not pattern.search("dev 1")
    assert parameters["cursor"]["schema"]["type"] == "string"


def test_every_operation_documents_its_errors(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses = operation["responses"]
            assert "500" in responses, path
            problem = responses["500"]["content"]["application/problem+json"]["schema"]
            assert problem == {"$ref": "#/components/schemas/Problem"}
            if "parameters" in operation:
                assert "400" in responses, path
    ready = document["paths"]["/ready"]["get"]["responses"]
    assert ready["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReadyResponse"
    }


def test_cost_is_documented_as_a_decimal_string(document: dict[str, Any]) -> None:
    cost = document["components"]["schemas"]["MetricItem"]["properties"]["cost"]
    assert cost["type"] == "string"
    assert "string" in cost["description"] and "decimal" in cost["description"]
    assert re.fullmatch(cost["pattern"], "1.234567890")


def test_served_bodies_match_the_documented_schemas(
    client: TestClient,
    document: dict[str, Any],
    reader: FakeReader,
    stats_store: FakeStatsStore,
    kafka: FakeKafka,
) -> None:
    reader.windows = [window(), window(device_id="dev-2", is_anomaly=None)]
    stats_store.records = [
        {
            "worker_id": "w1",
            "updated_at": "2024-01-01T00:00:00Z",
            "stats": {"readings_received": 5, "rejected_by_reason": {"late": 1}},
        }
    ]
    cases = [
        ("/health", 200, "/health"),
        ("/ready", 200, "/ready"),
        ("/api/v1/metrics?limit=1", 200, "/api/v1/metrics"),
        ("/api/v1/stats", 200, "/api/v1/stats"),
    ]
    for url, status, path in cases:
        response = client.get(url)
        assert response.status_code == status, url
        errors = list(
            schema_validator(document, response_schema(document, path, status)).iter_errors(
                response.json()
            )
        )
        assert errors == [], (url, errors)
    bad = client.get("/api/v1/metrics?limit=0")
    schema = response_schema(document, "/api/v1/metrics", 400, "application/problem+json")
    assert list(schema_validator(document, schema).iter_errors(bad.json())) == []
    reader.ping_error = OSError("down")
    not_ready = client.get("/ready")
    assert not_ready.status_code == 503
    schema = response_schema(document, "/ready", 503)
    assert list(schema_validator(document, schema).iter_errors(not_ready.json())) == []


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))


def test_docs_page_is_offline_and_complete(client: TestClient, document: dict[str, Any]) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    parsed = _Collect()
    parsed.feed(page)
    assert not [tag for tag, _ in parsed.tags if tag in ("script", "link", "img", "iframe")]
    for _, attributes in parsed.tags:
        for name in ("src", "href"):
            value = attributes.get(name)
            if value is not None:
                assert value.startswith(("#", "/")) and not value.startswith("//"), value
                if value.startswith("#"):
                    assert value[1:] in parsed.ids, f"dangling anchor {value}"
    for path in document["paths"]:
        assert f"<code>{path}</code>" in page
    for name in document["components"]["schemas"]:
        assert f"id='schema-{name}'" in page
    for parameter in ("device_id", "period", "start", "end", "limit", "cursor", "anomalies_only"):
        assert f"<code>{parameter}</code>" in page
    assert "id='problem-invalid-parameters'" in page
