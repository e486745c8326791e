"""``score_many`` (many devices' baselines at once, streams/anomaly_batch.py and
streams/anomaly_hours.py) gives exactly what scoring the windows one at a time gives."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from eval.generator import Dataset
from streams.anomaly import AnomalyDetector
from streams.anomaly_config import AnomalyConfig, BaselineParams, ModelParams
from streams.anomaly_score import AnomalyScore
from streams.anomaly_stream import StreamScorer
from streams.config import ProcessingConfig

HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
START = 1_774_220_400_000_000  # 2026-03-22T23:00:00Z: Berlin's DST change is a week later


def _power(rng: random.Random, energy: float) -> dict[str, Any]:
    kind = rng.random()
    mean = energy * 1000.0 * rng.uniform(0.5, 1.5)
    if kind < 0.6:
        top = mean * rng.uniform(1.0, 4.0)
        low = rng.choice([mean * rng.random(), top])  # a flat hour now and then
        return {
            "power_max_w": top,
            "power_mean_w": mean,
            "power_min_w": low,
            "power_reading_count": rng.choice([0, 1, 2, 12]),
        }
    if kind < 0.75:
        return {"power_max_w": rng.uniform(0.0, 5000.0), "power_reading_count": 1}
    if kind < 0.85:
        return {
            "power_max_w": 100,
            "power_mean_w": 90.0,
            "power_min_w": 80,
            "power_reading_count": 3,
        }
    return {"power_max_w": None, "power_mean_w": None, "power_min_w": None}


def _energy(rng: random.Random, device: int, start: int) -> float:
    hour = start // HOUR_US % 24
    level = (0.1 + 0.05 * device) * (1.0 + (7 <= hour < 22))
    roll = rng.random()
    if roll < 0.01:
        return rng.choice([math.nan, math.inf, 0.0, 1e-9])
    if roll < 0.03:
        return level * 40.0  # a spike
    return level * rng.uniform(0.7, 1.3)


def _windows(seed: int, devices: int, hours: int) -> list[tuple[dict[str, Any], bool]]:
    """Hour windows of ``devices`` devices, each in time order with gaps, open windows and
    revisions, day windows between them; interleaved across devices at random."""
    rng = random.Random(seed)
    streams: list[list[tuple[dict[str, Any], bool]]] = []
    for device in range(devices):
        device_id = f"dev-{device}"
        out: list[tuple[dict[str, Any], bool]] = []
        start = START + rng.randrange(5) * HOUR_US
        day_start = start - start % DAY_US
        for _ in range(hours):
            start += HOUR_US * rng.choice([1, 1, 1, 1, 2, 7, 30])
            energy = _energy(rng, device, start)
            length = rng.choice([HOUR_US] * 9 + [HOUR_US // 2])
            window = {
                "device_id": device_id,
                "period": "hour",
                "window_start": start,
                "window_end": start + length,
                "energy_kwh": energy,
                "coverage": rng.choice([1.0, 1.0, 0.5, 0.0, 1]),
                **_power(rng, energy),
            }
            final = rng.random() < 0.93
            out.append((window, final))
            if rng.random() < 0.05:  # a revision of the same window
                out.append(({**window, "energy_kwh": energy * 1.1}, final))
            while start >= day_start + DAY_US:
                out.append(
                    (
                        {
                            "device_id": device_id,
                            "period": "day",
                            "window_start": day_start,
                            "window_end": day_start + DAY_US,
                            "energy_kwh": rng.uniform(0.0, 30.0),
                            "coverage": rng.choice([1.0, 0.4]),
                            "power_max_w": rng.choice([None, rng.uniform(0, 9000)]),
                        },
                        rng.random() < 0.95,
                    )
                )
                day_start += DAY_US
        streams.append(out)
    merged: list[tuple[dict[str, Any], bool]] = []
    while any(streams):
        source = rng.choice([s for s in streams if s])
        merged.append(source.pop(0))
    return merged


def _same(want: list[AnomalyScore], got: list[AnomalyScore]) -> None:
    assert len(want) == len(got)
    for a, b in zip(want, got, strict=True):
        assert float(a.score).hex() == float(b.score).hex()
        assert a.is_anomaly == b.is_anomaly
        assert list(a.features) == list(b.features)
        for key, value in a.features.items():
            assert type(value) is type(b.features[key]), key
            assert float(value).hex() == float(b.features[key]).hex(), key


@pytest.mark.parametrize(
    ("seed", "timezone", "time_features"),
    [(1, "UTC", False), (2, "Europe/Berlin", False), (3, "America/New_York", True)],
)
def test_batches_equal_one_window_at_a_time(seed: int, timezone: str, time_features: bool) -> None:
    windows = _windows(seed, devices=9, hours=260)
    config = AnomalyConfig(
        timezone=timezone,
        hour_model=ModelParams(10, 6, 60),
        day_model=ModelParams(5, 4, 8),
        min_scores=30,
        warmup_days=2,
        time_features=time_features,
    )
    one = AnomalyDetector(config)
    many = AnomalyDetector(config)
    rng = random.Random(seed)
    position = 0
    while position < len(windows):
        size = rng.choice([1, 2, 17, 200, 900])
        batch = windows[position : position + size]
        want = [one.score(window, final) for window, final in batch]
        _same(want, many.score_many(batch))
        assert sorted(many.take_changed()) == sorted(one.take_changed())
        position += size
    assert many.dump() == one.dump()
    for device_id in one.baselines:
        a, b = one.baselines[device_id], many.baselines[device_id]
        assert (a.first_start, a.last_hour, a.last_day, a.day_ordinal) == (
            b.first_start,
            b.last_hour,
            b.last_day,
            b.day_ordinal,
        )
    learned = many.models["hour"].learned
    assert learned > 1000 and many.models["day"].learned > 50


def test_a_batch_of_only_open_windows_changes_no_baseline() -> None:
    windows = [(window, False) for window, _ in _windows(4, devices=3, hours=40)]
    detector = AnomalyDetector()
    results = detector.score_many(windows)
    assert len(results) == len(windows)
    assert not detector.baselines and not detector.take_changed()
    assert not any(r.is_anomaly for r in results)


def test_other_periods_are_refused_before_anything_is_learned() -> None:
    windows = _windows(5, devices=2, hours=10)
    week = {**windows[0][0], "period": "week"}
    detector = AnomalyDetector()
    with pytest.raises(ValueError, match="only hour and day"):
        detector.score_many([*windows, (week, True)])
    assert not detector.baselines and detector.models["hour"].learned == 0


def test_baseline_parameters_that_divide_must_be_positive() -> None:
    for name in ("week_prior", "prior_weight", "floor_sd"):
        with pytest.raises(ValueError, match=name):
            BaselineParams(**{name: 0.0})


def test_emissions_score_as_their_fields(small_dataset: Dataset) -> None:
    """The stream hands the detector its Emission objects; they must score exactly as their
    ``fields()`` dicts do one at a time (open windows at the end included)."""
    config = AnomalyConfig(
        hour_model=ModelParams(8, 5, 30), day_model=ModelParams(8, 4, 5), warmup_days=1.0
    )
    scorer = StreamScorer(ProcessingConfig(future_tolerance_s=1e12), config)
    reference = AnomalyDetector(config)
    lines = small_dataset.lines[:6000]
    scored = 0
    for start in range(0, len(lines), 700):
        windows = scorer.process(lines[start : start + 700], 0, 0.0)
        windows += scorer.finish() if start + 700 >= len(lines) else []
        for window in windows:
            want = reference.score(window.emission.fields(), window.final)
            _same([want], [window.result])
            assert window.fields == window.emission.fields()
        scored += len(windows)
    assert scored > 900
    assert scorer.detector.dump() == reference.dump()
