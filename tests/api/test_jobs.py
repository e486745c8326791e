"""Job endpoints against a real PostgreSQL (and, for publishing, the real broker)."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import orjson
import pytest
from jsonschema import Draft202012Validator
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app
from api.job_queue import AiokafkaJobPublisher
from models.jobs import DEVICE_BATCH_MAX_READINGS
from service.settings import Settings
from storage.jobs import PostgresJobStore
from storage.postgres import create_pool
from tests.api.fakes import FakeKafka
from tests.api.tokens import AUTH_SETTINGS, bearer
from tests.plugins.kafka import read_topic

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = pytest.mark.integration

RANGE = {"start": "2026-10-24T00:00:00Z", "end": "2026-10-25T00:00:00+02:00"}


class RecordingPublisher:
    def __init__(self, succeed: bool = True) -> None:
        self.published: list[tuple[UUID, str]] = []
        self.succeed = succeed

    async def publish(self, job_id: UUID, kind: str) -> bool:
        self.published.append((job_id, kind))
        return self.succeed

    async def close(self) -> None:
        return None


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def client(tmp_path: Path, pg_database: str, publisher: RecordingPublisher) -> Iterator[TestClient]:
    settings = Settings(database_url=SecretStr(pg_database), data_dir=tmp_path, **AUTH_SETTINGS)
    app = create_app(settings, kafka=FakeKafka(), job_publisher=publisher)
    with TestClient(app, raise_server_exceptions=False, headers=bearer()) as test_client:
        yield test_client


async def _sql(dsn: str, statement: str, *args: Any) -> Any:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetch(statement, *args)
    finally:
        await connection.close()


def sql(dsn: str, statement: str, *args: Any) -> Any:
    return asyncio.run(_sql(dsn, statement, *args))


def fields(response: Any) -> dict[str, str]:
    assert response.headers["content-type"] == "application/problem+json"
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def test_post_job_records_pending_and_publishes(
    client: TestClient, publisher: RecordingPublisher, pg_database: str
) -> None:
    response = client.post("/api/v1/jobs", json={"kind": "aggregate", "parameters": RANGE})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "pending" and job["kind"] == "aggregate" and job["progress"] == 0
    assert job["parameters"] == {
        "start": "2026-10-24T00:00:00Z",
        "end": "2026-10-25T00:00:00+02:00",
        "device_ids": None,
        "periods": None,
    }
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert publisher.published == [(UUID(job["id"]), "aggregate")]
    rows = sql(pg_database, "SELECT status, kind FROM jobs")
    assert [(r["status"], r["kind"]) for r in rows] == [("pending", "aggregate")]
    assert client.get(f"/api/v1/jobs/{job['id']}").json() == job


def test_publish_failure_leaves_the_job_pending(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    publisher.succeed = False
    response = client.post("/api/v1/jobs", json={"kind": "cleanup"})
    assert response.status_code == 202
    assert client.get(f"/api/v1/jobs/{response.json()['id']}").json()["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"kind": "nope"}, {"kind"}),
        ({"parameters": {}}, {"kind"}),
        ({"kind": "aggregate", "parameters": {}}, {"parameters.start", "parameters.end"}),
        (
            {"kind": "aggregate", "parameters": {"start": "2026-10-24T00:00:00", "end": 5}},
            {"parameters.start", "parameters.end"},
        ),
        (
            {"kind": "aggregate", "parameters": {**RANGE, "end": "2026-10-23T00:00:00Z"}},
            {"parameters.end"},
        ),
        (
            {"kind": "aggregate", "parameters": {**RANGE, "periods": ["year"]}},
            {"parameters.periods.0"},
        ),
        (
            {"kind": "aggregate", "parameters": {**RANGE, "device_ids": ["bad id"]}},
            {"parameters.device_ids.0"},
        ),
        ({"kind": "cleanup", "parameters": {"x": 1}}, {"parameters.x"}),
        ({"kind": "cleanup", "extra": 1}, {"extra"}),
        ({"kind": "device_batch", "parameters": {"device_id": "m-1"}}, {"parameters.readings"}),
        (
            {"kind": "report", "parameters": {**RANGE, "formats": ["pdf"]}},
            {"parameters.formats.0"},
        ),
    ],
)
def test_invalid_job_requests_name_the_field(
    client: TestClient, body: dict[str, Any], expected: set[str], publisher: RecordingPublisher
) -> None:
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == 400, response.text
    assert set(fields(response)) == expected
    assert publisher.published == []


def test_body_must_be_a_strict_json_object(client: TestClient) -> None:
    for raw in (b"", b"[1]", b'{"kind": "cleanup", "parameters": {"x": NaN}}', b"{"):
        response = client.post(
            "/api/v1/jobs", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, raw
        assert set(fields(response)) == {"body"}


def test_device_batch_size_limit(client: TestClient) -> None:
    reading = {"timestamp": 1_790_000_000, "power_w": 1}
    too_many = [reading] * (DEVICE_BATCH_MAX_READINGS + 1)
    response = client.post(
        "/api/v1/jobs",
        json={"kind": "device_batch", "parameters": {"device_id": "m-1", "readings": too_many}},
    )
    assert response.status_code == 400
    assert fields(response) == {
        "parameters.readings": f"List should have at most {DEVICE_BATCH_MAX_READINGS} items "
        f"after validation, not {DEVICE_BATCH_MAX_READINGS + 1}"
    }
    ok = client.post(
        "/api/v1/jobs",
        json={"kind": "device_batch", "parameters": {"device_id": "m-1", "readings": [reading]}},
    )
    assert ok.status_code == 202


def test_aggregate_endpoint_creates_an_aggregate_job(
    client: TestClient, publisher: RecordingPublisher
) -> None:
    response = client.post(
        "/api/v1/aggregate", json={**RANGE, "device_ids": ["m-1"], "periods": ["hour", "day"]}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "aggregate"
    assert job["parameters"]["periods"] == ["hour", "day"]
    assert publisher.published == [(UUID(job["id"]), "aggregate")]
    bad = client.post("/api/v1/aggregate", json={"start": "yesterday", "end": RANGE["end"]})
    assert bad.status_code == 400 and set(fields(bad)) == {"start"}


def test_unknown_and_malformed_job_ids(client: TestClient) -> None:
    unknown = uuid4()
    for path in ("", "/artifacts", "/artifacts/report.csv"):
        response = client.get(f"/api/v1/jobs/{unknown}{path}")
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert str(unknown) in response.json()["detail"]
        bad = client.get(f"/api/v1/jobs/not-a-uuid{path}")
        assert bad.status_code == 400 and set(fields(bad)) == {"job_id"}
    assert client.post(f"/api/v1/jobs/{unknown}/cancel").status_code == 404
    assert client.post("/api/v1/jobs/123/cancel").status_code == 400


async def test_cancel_pending_then_finished_is_409(client: TestClient, pg_database: str) -> None:
    job = client.post("/api/v1/jobs", json={"kind": "cleanup"}).json()
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert again.status_code == 409
    assert "cancelled" in again.json()["detail"]


async def test_cancel_running_asks_it_to_stop(client: TestClient, pg_database: str) -> None:
    job = client.post("/api/v1/jobs", json={"kind": "cleanup"}).json()
    pool = await create_pool(pg_database)
    try:
        await PostgresJobStore(pool).claim(UUID(job["id"]), "w-1")
    finally:
        await pool.close()
    response = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "running" and body["cancel_requested_at"] is not None


def test_retry_a_failed_or_cancelled_job_records_a_new_one(
    client: TestClient, publisher: RecordingPublisher, pg_database: str
) -> None:
    failed = client.post("/api/v1/aggregate", json=RANGE).json()
    sql(
        pg_database,
        "UPDATE jobs SET status = 'failed', error = 'worker w-1 stopped responding',"
        " finished_at = now() WHERE id = $1",
        UUID(failed["id"]),
    )
    retried = client.post(f"/api/v1/jobs/{failed['id']}/retry")
    assert retried.status_code == 202, retried.text
    job = retried.json()
    assert job["id"] != failed["id"] and job["status"] == "pending"
    assert (job["kind"], job["parameters"]) == (failed["kind"], failed["parameters"])
    assert retried.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert publisher.published[-1] == (UUID(job["id"]), "aggregate")
    assert client.get(f"/api/v1/jobs/{failed['id']}").json()["status"] == "failed"

    cancelled = client.post("/api/v1/jobs", json={"kind": "cleanup"}).json()
    client.post(f"/api/v1/jobs/{cancelled['id']}/cancel")
    assert client.post(f"/api/v1/jobs/{cancelled['id']}/retry").status_code == 202


def test_retry_refuses_jobs_that_did_not_fail(client: TestClient, pg_database: str) -> None:
    pending = client.post("/api/v1/jobs", json={"kind": "cleanup"}).json()
    refused = client.post(f"/api/v1/jobs/{pending['id']}/retry")
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"] == "/docs#problem-job-not-retryable"
    assert "pending" in refused.json()["detail"]
    sql(
        pg_database,
        "UPDATE jobs SET status = 'failed', kind = 'gone' WHERE id = $1",
        UUID(pending["id"]),
    )
    assert client.post(f"/api/v1/jobs/{pending['id']}/retry").status_code == 409
    assert client.post(f"/api/v1/jobs/{uuid4()}/retry").status_code == 404
    assert client.post("/api/v1/jobs/123/retry").status_code == 400


async def test_list_filters_and_pages(client: TestClient) -> None:
    ids = [client.post("/api/v1/jobs", json={"kind": "cleanup"}).json()["id"] for _ in range(5)]
    client.post("/api/v1/aggregate", json=RANGE)
    client.post(f"/api/v1/jobs/{ids[0]}/cancel")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"kind": "cleanup", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/jobs", params=params).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids)
    assert len(client.get("/api/v1/jobs").json()["items"]) == 6
    cancelled = client.get("/api/v1/jobs", params={"status": "cancelled"}).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    bad = client.get("/api/v1/jobs", params={"status": "done", "limit": "0", "cursor": "x"})
    assert bad.status_code == 400
    assert set(fields(bad)) == {"status", "limit"}
    assert set(fields(client.get("/api/v1/jobs", params={"cursor": "abc"}))) == {"cursor"}
    assert set(fields(client.get("/api/v1/jobs", params={"kind": "Bad Kind"}))) == {"kind"}


async def test_artifacts_list_and_download(client: TestClient, pg_database: str) -> None:
    job = client.post("/api/v1/jobs", json={"kind": "report", "parameters": RANGE}).json()
    job_id = UUID(job["id"])
    pool = await create_pool(pg_database)
    try:
        store = PostgresJobStore(pool)
        await store.save_artifact(job_id, "report.csv", "text/csv; charset=utf-8", b"a,b\n1,2\n")
        await store.save_artifact(job_id, "report.html", "text/html; charset=utf-8", b"<p>x</p>")
    finally:
        await pool.close()
    listing = client.get(f"/api/v1/jobs/{job_id}/artifacts")
    assert listing.status_code == 200
    assert [(a["name"], a["size"]) for a in listing.json()["items"]] == [
        ("report.csv", 8),
        ("report.html", 8),
    ]
    download = client.get(f"/api/v1/jobs/{job_id}/artifacts/report.csv")
    assert download.status_code == 200
    assert download.content == b"a,b\n1,2\n"
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == 'attachment; filename="report.csv"'
    missing = client.get(f"/api/v1/jobs/{job_id}/artifacts/report.json")
    assert missing.status_code == 404
    assert client.get(f"/api/v1/jobs/{job_id}/artifacts/..%2Fetc").status_code in (400, 404)
    empty = client.post("/api/v1/jobs", json={"kind": "cleanup"}).json()
    assert client.get(f"/api/v1/jobs/{empty['id']}/artifacts").json() == {"items": []}


def test_stats_count_jobs_by_status_and_kind(client: TestClient) -> None:
    client.post("/api/v1/jobs", json={"kind": "cleanup"})
    job = client.post("/api/v1/aggregate", json=RANGE).json()
    client.post(f"/api/v1/jobs/{job['id']}/cancel")
    jobs = client.get("/api/v1/stats").json()["jobs"]
    assert jobs["total"] == 2
    assert jobs["by_status"]["pending"] == 1 and jobs["by_status"]["cancelled"] == 1
    assert jobs["by_kind"] == {"aggregate": 1, "cleanup": 1}


def test_served_job_bodies_match_the_documented_schemas(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    components = document["components"]

    def check(path: str, method: str, status: int, body: Any) -> None:
        operation = document["paths"][path][method]
        content = operation["responses"][str(status)]["content"]
        schema = next(iter(content.values()))["schema"]
        errors = list(Draft202012Validator({**schema, "components": components}).iter_errors(body))
        assert errors == [], (path, status, errors)

    created = client.post("/api/v1/jobs", json={"kind": "aggregate", "parameters": RANGE})
    check("/api/v1/jobs", "post", 202, created.json())
    job_id = created.json()["id"]
    check("/api/v1/jobs/{job_id}", "get", 200, client.get(f"/api/v1/jobs/{job_id}").json())
    check("/api/v1/jobs", "get", 200, client.get("/api/v1/jobs").json())
    check("/api/v1/jobs", "post", 400, client.post("/api/v1/jobs", json={}).json())
    cancel = client.post(f"/api/v1/jobs/{job_id}/cancel")
    check("/api/v1/jobs/{job_id}/cancel", "post", 200, cancel.json())
    conflict = client.post(f"/api/v1/jobs/{job_id}/cancel")
    check("/api/v1/jobs/{job_id}/cancel", "post", 409, conflict.json())
    check("/api/v1/stats", "get", 200, client.get("/api/v1/stats").json())
    body = document["paths"]["/api/v1/jobs"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobRequestBody"
    }
    for name in ("AggregateParameters", "DeviceBatchParameters", "ReportParameters"):
        assert name in components["schemas"]


async def test_real_publisher_sends_the_job_id_keyed_by_it(
    kafka_bootstrap: str, topic_name: Any
) -> None:
    topic = topic_name("jobs")
    publisher = AiokafkaJobPublisher(kafka_bootstrap, topic)
    job_id = uuid4()
    try:
        assert await publisher.publish(job_id, "cleanup")
    finally:
        await publisher.close()
    records = await read_topic(kafka_bootstrap, topic, 1)
    assert [(r.key, orjson.loads(r.value)) for r in records] == [
        (str(job_id).encode(), {"job_id": str(job_id), "kind": "cleanup"})
    ]
    unreachable = AiokafkaJobPublisher("127.0.0.1:1", topic, timeout=1.0)
    assert await unreachable.publish(job_id, "cleanup") is False
    await unreachable.close()


def test_text_postgresql_cannot_store_is_refused_naming_the_field(client: TestClient) -> None:
    body = {
        "kind": "device_batch",
        "parameters": {"device_id": "m-1", "readings": [{"note": "a\u0000b", "\u0000": 1}]},
    }
    response = client.post("/api/v1/jobs", json=body)
    assert response.status_code == 400, response.text
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"parameters.readings.0.note", "parameters.readings.0"}
