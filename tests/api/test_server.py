"""``uvicorn api.app:create_app --factory`` serves over real HTTP with settings from the env."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.ports import free_port
from tests.api.tokens import AUTH_ENV, bearer

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api_server(pg_database: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg_database,
        "KAFKA_BROKER_URL": kafka_bootstrap,
        "DATA_DIR": str(tmp_path),
        **AUTH_ENV,
    }
    log = (tmp_path / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory"),
            *("--host", "127.0.0.1", "--port", str(port)),
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                output = (tmp_path / "uvicorn.log").read_text(errors="replace")
                pytest.fail(f"uvicorn did not serve /health:\n{output[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_uvicorn_factory_serves_the_api(api_server: str) -> None:
    ready = httpx.get(f"{api_server}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    url = f"{api_server}/api/v1/metrics"
    assert httpx.get(url, timeout=10).status_code == 401
    metrics = httpx.get(url, params={"limit": "5"}, headers=bearer(), timeout=10)
    assert metrics.status_code == 200
    assert metrics.json() == {"items": [], "next_cursor": None}
    bad = httpx.get(url, params={"limit": "0"}, headers=bearer(), timeout=10)
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert httpx.get(f"{api_server}/openapi.json", timeout=10).json()["openapi"] == "3.1.0"
    assert "<h1>" in httpx.get(f"{api_server}/docs", timeout=10).text
