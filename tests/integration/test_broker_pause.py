"""The broker unreachable for a while: its process is frozen (SIGSTOP) mid-stream, then
resumed. The embedded broker keeps everything in memory, so a real restart would lose the
topics, offsets and changelog; a frozen broker tests what a worker and the API must survive:
connections that stop answering, then answer again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from api.app import create_app
from service.embedded.kafka import EmbeddedKafka
from service.ports import free_port
from service.settings import Settings
from tests.integration.dataset import build
from tests.integration.test_worker_end_to_end import (
    expected,
    produce,
    wait_for,
    worker_env,  # noqa: F401 - the fixture
)
from tests.integration.worker import WorkerProcess

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PAUSE_S = float(os.environ.get("BROKER_PAUSE_S", "15"))


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedKafka]:
    broker = EmbeddedKafka(free_port(), log_file=tmp_path / "tansu.log")
    broker.start()
    yield broker
    if broker.pid is not None:
        os.kill(broker.pid, signal.SIGCONT)
    broker.stop()


def broker_check(api: TestClient) -> tuple[int, dict[str, Any]]:
    response = api.get("/ready")
    return response.status_code, response.json()["checks"]["broker"]


def wait_broker(api: TestClient, status: str, within: float) -> float:
    """Seconds until /ready reports the broker ``status``."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        code, check = broker_check(api)
        if check["status"] == status:
            assert status == "up" or code == 503, (code, check)
            return time.monotonic() - started
        time.sleep(0.25)
    raise AssertionError(f"/ready did not report the broker {status} within {within} s")


async def test_broker_frozen_mid_stream_worker_resumes_and_ready_reports_it(
    own_broker: EmbeddedKafka,
    worker_env: dict[str, str],  # noqa: F811 - the fixture
    tmp_path: Path,
    pg_database: str,
) -> None:
    bootstrap = own_broker.bootstrap
    env = {**worker_env, "KAFKA_BROKER_URL": bootstrap}
    data = build(seed=61, devices=5, now_s=time.time())
    want = expected(data)
    thirds = len(data.messages) // 3
    topic = env["READINGS_TOPIC"]
    worker = WorkerProcess(env, tmp_path / "worker.log")
    settings = Settings(database_url=pg_database, kafka_broker_url=bootstrap, auth_disabled=True)
    pid = own_broker.pid
    assert pid is not None
    try:
        with TestClient(create_app(settings)) as api:
            worker.start()
            worker.wait_ready()
            await produce(bootstrap, topic, data.messages[:thirds])
            await asyncio.sleep(3.0)
            assert broker_check(api)[1]["status"] == "up"

            os.kill(pid, signal.SIGSTOP)
            paused = time.monotonic()
            # Sent while the broker is frozen: the producer waits, nothing is lost.
            feed = asyncio.create_task(produce(bootstrap, topic, data.messages[thirds:-thirds]))
            noticed = wait_broker(api, "down", within=PAUSE_S)
            await asyncio.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused)))
            os.kill(pid, signal.SIGCONT)
            resumed = time.monotonic()
            up_after = wait_broker(api, "up", within=30)

            await feed
            await produce(bootstrap, topic, data.messages[-thirds:])
            problems = await wait_for(
                pg_database, want, within=float(os.environ.get("E2E_WAIT", "120"))
            )
            assert not problems, "\n".join(problems[:20]) + "\n" + worker.tail()
            converged = time.monotonic() - resumed
            assert worker.process is not None and worker.process.poll() is None, worker.tail()
            response = api.get("/ready")
            assert response.status_code == 200, response.text
    finally:
        worker.stop()
    print(
        f"\nbroker frozen {resumed - paused:.1f} s; /ready said down after {noticed:.1f} s and"
        f" up {up_after:.1f} s after resuming; equal to the oracle {converged:.1f} s after"
        f" resuming ({len(data.arrivals)} readings, {len(want)} windows)"
    )
