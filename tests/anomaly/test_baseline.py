"""The fused per-window paths of the baseline give exactly what the step-by-step ones give."""

from __future__ import annotations

import math
import random

from streams.anomaly_baseline import DeviceBaseline
from streams.anomaly_config import BaselineParams
from streams.anomaly_features import hour_explained, hour_inputs

HOUR_US = 3_600_000_000


def _hour_args(rng: random.Random) -> tuple[float, float | None, float | None, float | None, int]:
    rate = rng.choice([0.0, 1e-4, rng.uniform(0.0, 3.0), rng.uniform(0.0, 300.0)])
    if rng.random() < 0.01:  # what min and max make of nan and inf must not change either
        rate = rng.choice([math.nan, math.inf])
    kind = rng.random()
    if kind < 0.6:
        mean = rate * 1000.0 * rng.uniform(0.5, 1.5)
        top = mean * rng.uniform(1.0, 4.0)
        return rate, top, mean, mean * rng.random(), rng.choice([0, 1, 2, 60])
    if kind < 0.8:
        return rate, rng.uniform(0.0, 5000.0), None, None, 1
    return rate, None, None, None, 0


def _bits(baseline: DeviceBaseline) -> bytes:
    return baseline.dump()


def test_score_hour_equals_features_inputs_explained_then_learn() -> None:
    rng = random.Random(11)
    params = BaselineParams()
    for _ in range(40):
        slow, fast = DeviceBaseline(), DeviceBaseline()
        start = 1_767_571_200_000_000
        for step in range(400):
            start += HOUR_US * rng.choice([1, 1, 1, 2, 30])
            week_slot = rng.randrange(168)
            daytype_slot = (week_slot >= 120) * 24 + week_slot % 24
            ordinal = start // (24 * HOUR_US)
            rate, top, mean, low, count = _hour_args(rng)
            if step % 50 == 49:  # a lasting change of level
                rate *= 20.0
            length_h = rng.choice([1.0, 0.5])
            window = {
                "window_start": start,
                "window_end": start + int(length_h * HOUR_US),
                "coverage": rng.choice([1.0, 0.25, 0.0]),
            }
            learn = rng.random() < 0.9
            feats = slow.hour_features(params, week_slot, daytype_slot, rate, top, mean, low, count)
            expected = (hour_inputs(feats), hour_explained(feats, window))
            if learn:
                slow.learn_hour(params, week_slot, daytype_slot, rate, feats, start, ordinal)
            got = fast.score_hour(
                params,
                week_slot,
                daytype_slot,
                rate,
                top,
                mean,
                low,
                count,
                learn,
                start,
                ordinal,
                (window["window_end"] - start) / HOUR_US,
                window["coverage"] or 0.0,
            )
            for want, have in zip(expected, got, strict=True):
                assert list(want) == list(have)
                for key, value in want.items():
                    assert float(value).hex() == float(have[key]).hex(), key
            assert _bits(slow) == _bits(fast)
            assert slow.day_ordinal == fast.day_ordinal
