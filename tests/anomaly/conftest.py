"""Small labelled data sets for the anomaly tests (generated once per session)."""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from eval.generator import Dataset, generate
from streams.anomaly_baseline import DeviceBaseline

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US


@pytest.fixture(scope="session")
def small_dataset() -> Dataset:
    """6 devices, 2 weeks, readings every 5-15 minutes: about 12 000 readings."""
    return generate(seed=7, devices=6, weeks=2)


def hour_window(device_id: str, start: int, energy_kwh: float, **extra: Any) -> dict[str, Any]:
    """An hour window as ``Emission.fields()`` shapes it (power stats derived from energy)."""
    mean_w = energy_kwh * 1000.0
    window: dict[str, Any] = {
        "device_id": device_id,
        "period": "hour",
        "window_start": start,
        "window_end": start + HOUR_US,
        "reading_count": 6,
        "power_reading_count": 6,
        "power_mean_w": mean_w,
        "power_min_w": 0.8 * mean_w,
        "power_max_w": 1.2 * mean_w,
        "energy_kwh": energy_kwh,
        "coverage": 1.0,
        "revision": 0,
    }
    window.update(extra)
    return window


def daily_pattern(devices: int, days: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """Hour windows of ``devices`` devices with a day/night rhythm and 5 % noise, in time
    order (all devices' hour h before any hour h + 1)."""
    import random

    rng = random.Random(seed)
    start = 1_767_571_200 * 1_000_000  # a Monday, 00:00 UTC
    for hour in range(days * 24):
        for device in range(devices):
            level = 0.2 + 0.8 * (7 <= hour % 24 < 22) + 0.1 * device
            energy = level * (1.0 + rng.gauss(0.0, 0.05))
            yield hour_window(f"dev-{device}", start + hour * HOUR_US, energy)


def dump_v1(baseline: DeviceBaseline) -> bytes:
    """A baseline as format version 1 wrote it (JSON, base64 of the little-endian arrays):
    what changelogs written before version 2 hold."""
    floats, counts = array("f", baseline.floats), array("H", baseline.counts)
    if sys.byteorder == "big":  # pragma: no cover
        floats.byteswap()
        counts.byteswap()
    return orjson.dumps(
        {
            "v": 1,
            "first": baseline.first_start,
            "hour": baseline.last_hour,
            "day": baseline.last_day,
            "ord": baseline.day_ordinal,
            "f": base64.b64encode(floats.tobytes()).decode(),
            "n": base64.b64encode(counts.tobytes()).decode(),
        }
    )
