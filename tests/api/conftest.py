"""Fixtures for handler tests: the app with injected fakes, driven by TestClient (lifespan runs)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning

# Starlette 1.x prefers the httpx2 package for its TestClient and warns (an error under
# filterwarnings=error) when it falls back to httpx; the client works the same with either.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from tests.api.fakes import FakeKafka, FakeReader, FakeStatsStore
from tests.api.tokens import AUTH_SETTINGS, bearer


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A deployment with authentication on (HS256, see tests.api.tokens)."""
    return Settings(
        data_dir=tmp_path, app_id="energy-test", readings_topic="test.readings", **AUTH_SETTINGS
    )


@pytest.fixture
def auth_headers() -> dict[str, str]:
    """``Authorization`` header with a valid token holding both scopes."""
    return bearer()


@pytest.fixture
def reader() -> FakeReader:
    return FakeReader()


@pytest.fixture
def stats_store() -> FakeStatsStore:
    return FakeStatsStore()


@pytest.fixture
def kafka() -> FakeKafka:
    return FakeKafka()


@pytest.fixture
def client(
    settings: Settings,
    reader: FakeReader,
    stats_store: FakeStatsStore,
    kafka: FakeKafka,
    auth_headers: dict[str, str],
) -> Iterator[TestClient]:
    """The app with injected fakes; every request carries a token with both scopes."""
    app = create_app(settings, reader=reader, stats_store=stats_store, kafka=kafka)
    with TestClient(app, raise_server_exceptions=False, headers=auth_headers) as test_client:
        yield test_client
