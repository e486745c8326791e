"""The simulator is deterministic and its readings follow SEMANTICS.md section 1."""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from datetime import datetime
from itertools import islice, pairwise

import pytest

from streams.simulate import SPIKE_POWER_W, Simulation, simulate

START = datetime.fromisoformat("2025-03-03T08:00:00+00:00").timestamp()  # a Monday
DAY = 86400.0
DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
MAX_POWER_W = 1_000_000.0


@pytest.fixture(scope="module")
def day() -> tuple[Simulation, list[tuple[float, dict[str, str | float]]]]:
    sim = Simulation(start=START, step_s=60, devices=36, seed=11)
    return sim, [(r.ts, r.payload) for r in sim.readings(end=START + DAY)]


def _ts(payload: dict[str, str | float]) -> float:
    value = payload["timestamp"]
    if isinstance(value, str):
        assert RFC3339_Z.match(value), value
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    assert isinstance(value, float | int) and not isinstance(value, bool)
    return float(value)


def test_same_seed_same_readings() -> None:
    first = list(simulate(START, 30, 12, seed=5, end=START + 3 * 3600))
    again = list(simulate(START, 30, 12, seed=5, end=START + 3 * 3600))
    other = list(simulate(START, 30, 12, seed=6, end=START + 3 * 3600))
    assert first == again
    assert first != other


def test_readings_are_valid(
    day: tuple[Simulation, list[tuple[float, dict[str, str | float]]]],
) -> None:
    _, readings = day
    assert len(readings) == pytest.approx(36 * 24 * 60, abs=36)
    for ts, payload in readings:
        assert isinstance(payload["device_id"], str) and DEVICE_ID.match(payload["device_id"])
        assert _ts(payload) == pytest.approx(ts, abs=1e-3)
        assert "power_w" in payload or "energy_kwh" in payload
        for name in ("power_w", "energy_kwh", "voltage_v"):
            if name in payload:
                value = payload[name]
                assert isinstance(value, float) and math.isfinite(value) and value >= 0
        assert float(payload.get("power_w", 0.0)) <= MAX_POWER_W


def test_time_order(day: tuple[Simulation, list[tuple[float, dict[str, str | float]]]]) -> None:
    _, readings = day
    times = [ts for ts, _ in readings]
    assert times == sorted(times)  # nondecreasing overall
    per_device: dict[str, list[float]] = defaultdict(list)
    for ts, payload in readings:
        per_device[str(payload["device_id"])].append(ts)
    for series in per_device.values():
        assert all(b > a for a, b in pairwise(series))  # no duplicates


def test_mix_of_reporting_styles(
    day: tuple[Simulation, list[tuple[float, dict[str, str | float]]]],
) -> None:
    sim, readings = day
    kinds = Counter(
        ("power_w" in p, "energy_kwh" in p)
        for p in {str(p["device_id"]): p for _, p in readings}.values()
    )
    assert kinds[(True, False)] and kinds[(False, True)] and kinds[(True, True)]
    assert any(isinstance(p["timestamp"], float) for _, p in readings)
    assert any(isinstance(p["timestamp"], str) for _, p in readings)
    assert {d.profile for d in sim.devices} == {"household", "office", "always_on"}


def test_counters_only_fall_at_injected_resets(
    day: tuple[Simulation, list[tuple[float, dict[str, str | float]]]],
) -> None:
    sim, readings = day
    last: dict[str, float] = {}
    resets = 0
    for ts, payload in readings:
        if "energy_kwh" not in payload:
            continue
        device_id, value = str(payload["device_id"]), float(payload["energy_kwh"])
        if device_id in last and value < last[device_id]:
            assert sim.anomaly_at(device_id, ts) == "reset"
            resets += 1
        last[device_id] = value
    assert resets == 1


def test_counter_matches_power_left_rectangle(
    day: tuple[Simulation, list[tuple[float, dict[str, str | float]]]],
) -> None:
    sim, readings = day
    previous: dict[str, tuple[float, dict[str, str | float]]] = {}
    checked = 0
    for ts, payload in readings:
        device_id = str(payload["device_id"])
        if "power_w" in payload and "energy_kwh" in payload and device_id in previous:
            before_ts, before = previous[device_id]
            if sim.anomaly_at(device_id, ts) != "reset":
                expected = float(before["power_w"]) * (ts - before_ts) / 3.6e6
                delta = float(payload["energy_kwh"]) - float(before["energy_kwh"])
                assert delta == pytest.approx(expected, abs=2e-6)
                checked += 1
        previous[device_id] = (ts, payload)
    assert checked > 1000


def test_injected_anomalies(
    day: tuple[Simulation, list[tuple[float, dict[str, str | float]]]],
) -> None:
    sim, readings = day
    assert set(sim.anomaly_devices) == {"spike", "stuck", "night_burst", "reset"}
    spike_device = sim.anomaly_devices["spike"]
    spikes = [
        p
        for _, p in readings
        if p["device_id"] == spike_device and p.get("power_w") == SPIKE_POWER_W
    ]
    assert len(spikes) == 1
    stuck_device = sim.anomaly_devices["stuck"]
    stuck = [
        p["power_w"]
        for ts, p in readings
        if p["device_id"] == stuck_device and sim.anomaly_at(stuck_device, ts) == "stuck"
    ]
    assert len(stuck) >= 100 and len(set(stuck)) == 1
    night_device = sim.anomaly_devices["night_burst"]
    night = [
        float(p["power_w"])
        for ts, p in readings
        if p["device_id"] == night_device and sim.anomaly_at(night_device, ts) == "night_burst"
    ]
    normal_nights = [
        float(p["power_w"])
        for ts, p in readings
        if p["device_id"] == night_device and 1 <= (ts % DAY) / 3600 < 2
    ]
    assert night and min(night) > 3 * max(normal_nights)


def test_offices_draw_more_on_weekday_afternoons() -> None:
    sim = Simulation(start=START, step_s=300, devices=8, seed=3)
    office = next(d.device_id for d in sim.devices if d.profile == "office")
    power = {
        round((ts - START) / 3600): float(p["power_w"])
        for ts, p in ((r.ts, r.payload) for r in sim.readings(end=START + DAY))
        if p["device_id"] == office and "power_w" in p
    }
    assert power[6] > 3 * power[16]  # 14:00 vs 00:00 local (UTC) on a Monday


def test_infinite_without_end() -> None:
    readings = list(islice(simulate(START, 60, 3, seed=1), 1000))
    assert len(readings) == 1000


def test_readings_stay_within_start_and_end() -> None:
    end = START + 2 * 3600
    times = [r.ts for r in Simulation(START, 60, 20, seed=4).readings(end=end)]
    assert min(times) >= START
    assert max(times) < end
