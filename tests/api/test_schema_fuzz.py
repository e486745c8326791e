"""Schemathesis fuzzes every operation of /openapi.json against the real app, in process.

The app is built as in production (its own asyncpg pool on a real PostgreSQL holding a few
windows, its own Kafka clients on the test broker) and called over ASGI with a valid token.
Each operation gets positive and negative cases; every answer must be documented (status,
content type, headers, body schema), never a 5xx, invalid input must be rejected with a
4xx, and the auth the schema declares must be enforced. Deterministic and bounded: a fixed
number of examples per operation, derandomized, no example database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app import create_app
from api.routes import openapi_document
from models.api import Problem
from service.settings import Settings
from storage.postgres import create_pool
from storage.postgres_sink import PostgresSink
from tests.api.fakes import T0, window
from tests.api.tokens import AUTH_SETTINGS, issue

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_EXAMPLES = 50


@pytest.fixture
async def fuzz_app(pg_database: str, kafka_bootstrap: str, tmp_path: Path) -> Starlette:
    pool = await create_pool(pg_database, min_size=1, max_size=2)
    try:
        sink = PostgresSink(pool)
        await sink.start()
        await sink.write(
            [
                window(device_id=device, period=period, start=T0 + timedelta(hours=hour))
                for device in ("meter:a", "plug.b")
                for period in ("hour", "day")
                for hour in range(3)
            ]
        )
    finally:
        await pool.close()
    settings = Settings(
        database_url=SecretStr(pg_database),
        kafka_broker_url=kafka_bootstrap,
        data_dir=tmp_path,
        **AUTH_SETTINGS,
    )
    return create_app(settings)


class AppUnderTest:
    """The ASGI app schemathesis calls: forwards to the app of the running test.

    The schema is loaded at import, since pytest collects one test per operation from it,
    but each test's app is built on that test's database. (``schemathesis.pytest
    .from_fixture`` would do this, but it does not run under pytest 9.2.)
    """

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise RuntimeError("no app under test: use the app_under_test fixture")
        await self.app(scope, receive, send)


APP_UNDER_TEST = AppUnderTest()
schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = APP_UNDER_TEST
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")


@pytest.fixture(autouse=True)
def app_under_test(fuzz_app: Starlette) -> Iterator[Starlette]:
    """Points the fuzzer at this test's app, after checking it serves the fuzzed document."""
    with TestClient(fuzz_app) as client:
        served = client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == orjson.loads(orjson.dumps(openapi_document()))
    APP_UNDER_TEST.app = fuzz_app
    try:
        yield fuzz_app
    finally:
        APP_UNDER_TEST.app = None


@schema.auth()
class BearerToken:
    """A valid token with both scopes; schemathesis removes or spoils it to probe auth."""

    refresh_interval = 60

    def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> str:
        return issue()

    def set(self, case: schemathesis.Case, data: str, context: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# Rules a schema cannot express: a cursor is valid only if this service issued it, and
# `start` must not be after `end`. A schema-valid request may break these and no others.
CROSS_FIELD_RULES = frozenset(
    {
        ("cursor", "is not a cursor issued by this service"),
        ("start", "must not be after end"),
        # job bodies: orderings and alignments a JSON schema cannot state
        ("end", "must be after start"),
        ("parameters.end", "must be after start"),
        ("parameters.hour", "must be the start of a UTC hour"),
    }
)
# What a schema-valid request may meet besides success (as schemathesis' own check).
ACCEPTABLE_REFUSALS = frozenset({401, 403, 404, 409, 429})


def valid_data_is_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Schemathesis' positive_data_acceptance, but allowing 400 for CROSS_FIELD_RULES only."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    status = response.status_code
    if status < 400 or status >= 500 or status in ACCEPTABLE_REFUSALS:
        return None
    assert status == 400, f"schema-valid request answered {status}: {response.content!r}"
    problem = Problem.model_validate_json(response.content)
    broken = {(error.field, error.message) for error in problem.errors}
    # A job's parameters are checked against its kind's schema (a rule across fields).
    rest = {(field, message) for field, message in broken if field.split(".")[0] != "parameters"}
    assert broken and rest <= CROSS_FIELD_RULES, f"schema-valid request rejected: {problem}"
    return True


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_the_schema(case: schemathesis.Case) -> None:
    case.call_and_validate(
        excluded_checks=[positive_data_acceptance], additional_checks=[valid_data_is_accepted]
    )
