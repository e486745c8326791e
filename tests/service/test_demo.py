"""The demo feed: fast from the past, never in the future, first hour final within 30 s."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.demo import DEMO_HISTORY, DemoClock, run_demo
from service.settings import Settings
from tests.plugins.kafka import read_topic

GRACE = 300.0
NOW = 1_750_000_000.0


@given(
    wall_start=st.floats(1.6e9, 2e9),
    speed=st.floats(1.5, 2000),
    elapsed=st.floats(0, 10 * 86400),
)
def test_simulated_time_never_passes_the_wall_clock(
    wall_start: float, speed: float, elapsed: float
) -> None:
    clock = DemoClock.starting(wall_start, DEMO_HISTORY, speed)
    assert clock.sim(wall_start + elapsed) <= wall_start + elapsed
    assert clock.sim(wall_start + elapsed + 1) > clock.sim(wall_start + elapsed)


def test_starts_on_an_hour_a_few_hours_back_and_catches_up() -> None:
    clock = DemoClock.starting(NOW, DEMO_HISTORY, 240)
    assert clock.sim_start % 3600 == 0
    assert NOW - 7 * 3600 < clock.sim_start <= NOW - DEMO_HISTORY
    caught = clock.caught_up_at
    assert clock.sim(caught) == pytest.approx(caught)
    assert clock.sim(caught + 100) == caught + 100  # real time from then on
    assert caught - NOW < 120


def test_first_hourly_window_is_final_within_30_seconds() -> None:
    clock = DemoClock.starting(NOW, DEMO_HISTORY, 240)
    first_hour_end = clock.sim_start + 3600
    # Watermark = max_ts - GRACE reaches the hour end once simulated time is past it.
    assert clock.wall_for(first_hour_end + GRACE + 60) - NOW <= 30


@pytest.mark.integration
async def test_demo_feed_sends_ordered_past_readings(
    kafka_bootstrap: str, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("demo")
    settings = Settings(readings_topic=topic, demo_devices=6, demo_speed=240)
    started, origin = time.monotonic(), time.time()

    def fast_wall_clock() -> float:  # 60 wall seconds per real second
        return origin + (time.monotonic() - started) * 60

    stop = asyncio.Event()
    task = asyncio.create_task(run_demo(settings, kafka_bootstrap, stop, clock=fast_wall_clock))
    await asyncio.sleep(1.0)
    stop.set()
    sent = await asyncio.wait_for(task, 10)
    end_wall = fast_wall_clock()

    assert sent > 6 * 60 * 2  # at least two simulated hours of 6 devices
    records = await read_topic(kafka_bootstrap, topic, expected=sent)
    assert len(records) == sent
    per_device: dict[str, list[float]] = defaultdict(list)
    for record in records:
        reading = orjson.loads(record.value or b"")
        assert record.key == reading["device_id"].encode()
        stamp = reading["timestamp"]
        ts = stamp if isinstance(stamp, float) else datetime.fromisoformat(stamp).timestamp()
        assert ts <= end_wall
        per_device[reading["device_id"]].append(ts)
    for series in per_device.values():
        assert series == sorted(series)
