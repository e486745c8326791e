"""Hand-written hostile requests against the API on real PostgreSQL (beyond schemathesis):
SQL in every parameter, tampered cursors, huge and malformed bodies, bad tokens. Every one
is answered 4xx (never 5xx), and no error body leaks SQL, stack traces, paths or secrets."""

from __future__ import annotations

import base64
import json
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from pydantic import SecretStr
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app
from service.settings import Settings
from storage.jobs import PostgresJobStore
from storage.postgres import create_pool
from storage.postgres_sink import PostgresSink
from tests.api.fakes import T0, FakeKafka, window
from tests.api.test_jobs import RecordingPublisher
from tests.api.tokens import AUTH_SETTINGS, TEST_SECRET, bearer, issue
from tests.plugins.storage import run_in_thread

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = pytest.mark.integration

SQL = (
    "' OR 1=1 --",
    "x'; DROP TABLE metrics; --",
    "1 UNION SELECT password FROM pg_shadow",
    "dev-1' OR '1'='1",
    "$1",
    "\\x00",
    "%27%20OR%201%3D1",
)
# What an error body must never contain.
LEAKS = re.compile(
    r"select |insert |update |delete |drop |union |where |asyncpg|psycopg|postgres|sqlstate"
    r"|traceback|file \"|line \d+|/tmp/|\.py\b|" + re.escape(TEST_SECRET.lower()),
)


def cursor_of(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture
def api(tmp_path: Path, pg_database: str) -> Iterator[TestClient]:
    async def seed() -> None:
        pool = await create_pool(pg_database, min_size=1, max_size=2)
        try:
            await PostgresSink(pool).write(
                [window(device_id=f"dev-{d}", start=T0) for d in range(3)]
            )
            await PostgresJobStore(pool).create("cleanup", {})
        finally:
            await pool.close()

    run_in_thread(seed)
    settings = Settings(database_url=SecretStr(pg_database), data_dir=tmp_path, **AUTH_SETTINGS)
    app = create_app(settings, kafka=FakeKafka(), job_publisher=RecordingPublisher())
    with TestClient(app, raise_server_exceptions=False, headers=bearer()) as client:
        yield client


def assert_refused(response: Any, *allowed: int) -> None:
    """A 4xx (one of ``allowed`` when given) whose body leaks nothing."""
    what = f"{response.request.method} {response.request.url}"
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
    if allowed:
        assert response.status_code in allowed, (what, response.status_code, response.text)
    body = response.text.lower()
    assert LEAKS.search(body) is None, (what, LEAKS.search(body), response.text)


def test_sql_in_query_parameters_is_refused_or_matches_nothing(api: TestClient) -> None:
    for text in SQL:
        for name in ("device_id", "period", "start", "end", "limit", "anomalies_only", "cursor"):
            assert_refused(api.get("/api/v1/metrics", params={name: text}), 400)
        for name in ("status", "kind", "limit", "cursor"):
            assert_refused(api.get("/api/v1/jobs", params={name: text}), 400)
        assert_refused(api.get(f"/api/v1/jobs/{text}"), 400, 404)
        assert_refused(api.get(f"/api/v1/jobs/{uuid4()}/artifacts/{text}"), 400, 404)
    # Repeated parameters and a parameter named like SQL change nothing either.
    both = api.get("/api/v1/metrics", params=[("device_id", "dev-1"), ("device_id", SQL[0])])
    assert both.status_code in (200, 400)
    if both.status_code == 200:
        assert {item["device_id"] for item in both.json()["items"]} <= {"dev-1"}
    ignored = api.get("/api/v1/metrics", params={"device_id": "dev-1", SQL[0]: "1"})
    assert ignored.status_code == 200
    assert {item["device_id"] for item in ignored.json()["items"]} == {"dev-1"}
    # Nothing was dropped or changed.
    assert len(api.get("/api/v1/metrics").json()["items"]) == 3


@pytest.mark.parametrize(
    "cursor",
    [
        cursor_of(["m1", "' OR 1=1 --", "hour", "2024-03-01T00:00:00+00:00"]),
        cursor_of(["m1", "dev-1", "hour'; DROP TABLE metrics; --", "2024-03-01T00:00:00+00:00"]),
        cursor_of(["m1", "dev-1", "hour", "2024-03-01T00:00:00'); DROP TABLE metrics; --"]),
        cursor_of(["m1", "dev-1", "hour", "2024-03-01T00:00:00"]),  # no offset
        cursor_of(["m1", "dev-1", "hour", "0001-01-01T00:00:00+14:00"]),  # before year 1 in UTC
        cursor_of(["m1", "dev-1", "hour", "9999-12-31T23:59:59-14:00"]),  # after 9999 in UTC
        cursor_of(["m1", "dev\u0000-1", "hour", "2024-03-01T00:00:00+00:00"]),
        cursor_of(["m1", ["dev-1"], "hour", "2024-03-01T00:00:00+00:00"]),
        cursor_of(["m1", "dev-1", "hour", 1709251200]),
        cursor_of(["m2", "dev-1", "hour", "2024-03-01T00:00:00+00:00"]),
        cursor_of({"device_id": "dev-1"}),
        cursor_of("[" * 1500),  # deeper than Python's recursion limit, within the length
        cursor_of('["m1", "dev-1", "hour", "2024-03-01T00:00:00+00:00", "extra"]'),
        cursor_of('["m1", "dev-1", "hour", NaN]'),
        "A" * 2049,
        "!!!not base64!!!",
    ],
)
def test_tampered_cursors_are_400(api: TestClient, cursor: str) -> None:
    for path in ("/api/v1/metrics", "/api/v1/jobs"):
        assert_refused(api.get(path, params={"cursor": cursor}), 400)


def test_undecodable_query_strings_are_400(api: TestClient) -> None:
    for query in ("cursor=%ff%fe", "device_id=%ed%b3%bf", "start=%00", "period=hour%00"):
        assert_refused(api.get(f"/api/v1/metrics?{query}"), 400)


def test_huge_and_malformed_bodies_are_refused(api: TestClient) -> None:
    json_headers = {"content-type": "application/json"}
    for path in ("/api/v1/jobs", "/api/v1/aggregate"):
        huge = b'{"kind": "cleanup", "parameters": {"x": "' + b"a" * (2 << 20) + b'"}}'
        assert_refused(api.post(path, content=huge, headers=json_headers), 413)
        bodies = [
            b"",
            b"{",
            b'{"kind": "cleanup"',
            b"[" * 100_000,
            b'{"kind": NaN}',
            b'{"kind": "cleanup", "parameters": {"start": Infinity}}',
            b"\xff\xfe{}",
            b'{"kind": "cleanup"}\x00',
            b'{"kind": "\\ud800"}',
            b"null",
            b"12",
            b'"cleanup"',
            b'{"kind": "cleanup", "kind": "report"}' + b" " * 10,
            json.dumps({"kind": "'; DROP TABLE jobs; --", "parameters": {}}).encode(),
            json.dumps(
                {"kind": "aggregate", "parameters": {"start": SQL[0], "end": SQL[1]}}
            ).encode(),
            json.dumps({"start": SQL[0], "end": "2024-01-01T00:00:00Z"}).encode(),
            json.dumps({"kind": "device_batch", "parameters": {"device_id": SQL[0]}}).encode(),
            json.dumps({"kind": ["cleanup"], "parameters": []}).encode(),
        ]
        for body in bodies:
            response = api.post(path, content=body, headers=json_headers)
            if response.status_code == 202:  # duplicate keys: JSON's last one wins, fine
                assert body.startswith(b'{"kind": "cleanup", "kind"'), body[:80]
                continue
            assert_refused(response, 400)
        # Job bodies are read as JSON whatever the Content-Type: not JSON is 400.
        xml = api.post(path, content=b"<xml/>", headers={"content-type": "text/xml"})
        assert_refused(xml, 400, 415)
    assert_refused(api.post(f"/api/v1/jobs/{SQL[0]}/cancel"), 400, 404)
    assert_refused(api.post(f"/api/v1/jobs/{SQL[0]}/retry"), 400, 404)


def test_bad_tokens_are_401_and_say_nothing_secret(api: TestClient) -> None:
    tokens = {
        "expired": issue(lifetime_s=-3600),
        "wrong audience": issue(aud="another-service"),
        "wrong issuer": issue(iss="https://evil.example"),
        "wrong secret": issue(key="another-secret-0123456789abcdefgh"),
        "no exp": issue(exp=None),
        "garbage": "not.a.token",
        "sql": SQL[0],
        "huge": "a" * 7000,
        "alg none": base64.urlsafe_b64encode(b'{"alg":"none"}').decode().rstrip("=")
        + "."
        + base64.urlsafe_b64encode(b'{"sub":"x","exp":9999999999}').decode().rstrip("=")
        + ".",
    }
    for name, token in tokens.items():
        for method, path in (("GET", "/api/v1/metrics"), ("POST", "/api/v1/jobs")):
            response = api.request(
                method, path, headers={"authorization": f"Bearer {token}"}, json={"kind": "cleanup"}
            )
            assert_refused(response, 401)
            assert "www-authenticate" in response.headers, name
            assert token not in response.text or len(token) < 8, name
    read_only = issue(scopes=["processing:read"])
    response = api.post(
        "/api/v1/jobs", headers={"authorization": f"Bearer {read_only}"}, json={"kind": "cleanup"}
    )
    assert_refused(response, 403)
