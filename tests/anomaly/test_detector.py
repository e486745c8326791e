"""The detector on its own: score range, warm-up, a clear spike, determinism, checkpoints."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest

from streams.anomaly import AnomalyDetector
from streams.anomaly_baseline import DeviceBaseline
from streams.anomaly_config import AnomalyConfig, ModelParams
from tests.anomaly.conftest import DAY_US, HOUR_US, daily_pattern, dump_v1, hour_window


def _run(detector: AnomalyDetector, windows: list[dict[str, Any]]) -> list[tuple[float, bool]]:
    return [(r.score, r.is_anomaly) for r in (detector.score(w) for w in windows)]


def test_scores_are_in_unit_interval_and_features_finite() -> None:
    detector = AnomalyDetector()
    windows = list(daily_pattern(devices=4, days=10))
    windows[700] = {**windows[700], "energy_kwh": 0.0, "power_max_w": 0.0, "power_min_w": 0.0}
    windows[800] = {**windows[800], "energy_kwh": 500.0, "power_max_w": 9e5}
    for window in windows:
        result = detector.score(window)
        assert 0.0 <= result.score <= 1.0
        assert all(math.isfinite(v) for v in result.features.values())


def test_no_flag_during_warm_up() -> None:
    """Nothing is flagged before the device has warmup_days of windows, even wild ones."""
    config = AnomalyConfig(warmup_days=7, threshold=0.0)  # any score would be flagged
    detector = AnomalyDetector(config)
    first = None
    for window in daily_pattern(devices=3, days=9):
        if window["device_id"] == "dev-0" and window["window_start"] % (5 * HOUR_US) == 0:
            window = {**window, "energy_kwh": 40.0, "power_max_w": 50_000.0}
        first = window["window_start"] if first is None else first
        result = detector.score(window)
        if window["window_start"] - first < 7 * DAY_US:
            assert not result.is_anomaly
    assert detector.models["hour"].warm


def test_model_warm_up_scores_zero() -> None:
    """Half-Space Trees score 0 until their first window of mass is complete."""
    config = AnomalyConfig(hour_model=ModelParams(10, 6, 50))
    detector = AnomalyDetector(config)
    windows = list(daily_pattern(devices=2, days=3))
    scores = [detector.score(w).score for w in windows]
    assert scores[:50] == [0.0] * 50
    assert any(s > 0 for s in scores[50:])


def test_clear_spike_after_warm_up_is_flagged() -> None:
    detector = AnomalyDetector()
    windows = list(daily_pattern(devices=4, days=14))
    normal_flags = 0
    for window in windows:
        normal_flags += detector.score(window).is_anomaly
    # the flagging rule adapts to the score distribution: about 1 % of usual windows
    assert normal_flags <= 0.03 * len(windows)
    last = windows[-1]["window_start"] + HOUR_US
    spike = hour_window("dev-1", last, 12.0, power_max_w=40_000.0)
    result = detector.score(spike)
    assert result.is_anomaly, result
    assert result.score > 0.8
    assert result.features["energy_z"] > 4
    # a usual hour right after is not
    calm = hour_window("dev-2", last, 0.4)  # dev-2 at midnight
    assert not detector.score(calm).is_anomaly


def test_stuck_meter_after_warm_up_is_flagged() -> None:
    detector = AnomalyDetector()
    for window in daily_pattern(devices=4, days=14):
        detector.score(window)
    start = 1_767_571_200 * 1_000_000 + 14 * DAY_US + 12 * HOUR_US
    flat = hour_window("dev-3", start, 1.3, power_min_w=1300.0, power_max_w=1300.0)
    result = detector.score(flat)
    assert result.features["range_z"] < -4
    assert result.is_anomaly


def test_same_input_same_scores() -> None:
    windows = list(daily_pattern(devices=3, days=8, seed=3))
    assert _run(AnomalyDetector(), windows) == _run(AnomalyDetector(), windows)


def test_scoring_in_batches_equals_one_by_one() -> None:
    windows = list(daily_pattern(devices=4, days=12, seed=5))
    windows[900] = {**windows[900], "energy_kwh": 400.0, "power_max_w": 9e5}
    finals = [index % 17 != 0 for index in range(len(windows))]  # some open windows too
    config = AnomalyConfig(hour_model=ModelParams(10, 6, 50), min_scores=20, warmup_days=1)
    one = AnomalyDetector(config)
    expected = [one.score(w, final) for w, final in zip(windows, finals, strict=True)]
    many = AnomalyDetector(config)
    got = []
    for start in range(0, len(windows), 97):
        got.extend(many.score_many(list(zip(windows, finals, strict=True))[start : start + 97]))
    assert got == expected
    assert any(r.is_anomaly for r in got)
    assert many.dump() == one.dump()


def test_open_windows_are_scored_but_not_learned_or_flagged() -> None:
    detector = AnomalyDetector(AnomalyConfig(threshold=0.0))
    windows = list(daily_pattern(devices=2, days=9))
    for window in windows[:-1]:
        detector.score(window)
    before = detector.dump()
    result = detector.score(windows[-1], final=False)
    assert not result.is_anomaly
    assert detector.dump() == before


def test_revision_is_scored_but_learned_once() -> None:
    detector = AnomalyDetector()
    windows = list(daily_pattern(devices=2, days=3))
    for window in windows:
        detector.score(window)
    state = detector.dump()
    revised = {**windows[-1], "energy_kwh": windows[-1]["energy_kwh"] * 2, "revision": 1}
    first = detector.score(revised)
    assert detector.dump() == state
    assert detector.score(revised) == first


def test_week_and_month_are_not_scored() -> None:
    window = hour_window("dev-0", 0, 1.0, period="week")
    with pytest.raises(ValueError, match="week"):
        AnomalyDetector().score(window)


def test_dump_load_round_trip_continues_identically() -> None:
    windows = list(daily_pattern(devices=3, days=12, seed=5))
    days = _day_windows(windows)
    stream = sorted(windows + days, key=lambda w: (w["window_end"], w["period"] == "day"))
    half = len(stream) // 2
    original = AnomalyDetector()
    _run(original, stream[:half])
    checkpoint = original.dump()
    restored = AnomalyDetector()
    restored.load(checkpoint)
    assert restored.dump() == checkpoint
    assert _run(restored, stream[half:]) == _run(original, stream[half:])
    # and piecewise: the model and each baseline on their own
    piecewise = AnomalyDetector()
    piecewise.load_model(original.dump_model())
    for device_id in original.baselines:
        data = original.dump_baseline(device_id)
        assert data is not None
        piecewise.load_baseline(device_id, data)
    more = [
        {
            **w,
            "window_start": w["window_start"] + 20 * DAY_US,
            "window_end": w["window_end"] + 20 * DAY_US,
        }
        for w in stream[:200]
    ]
    assert _run(piecewise, more) == _run(original, more)


def test_baseline_dump_is_compact_and_exact() -> None:
    detector = AnomalyDetector()
    _run(detector, list(daily_pattern(devices=1, days=9)))
    baseline = detector.baselines["dev-0"]
    data = baseline.dump()
    assert len(data) < len(baseline.floats.tobytes()) + len(baseline.counts.tobytes())
    again = DeviceBaseline.load(data)
    assert again.floats.tobytes() == baseline.floats.tobytes()
    assert again.counts == baseline.counts
    assert again.dump() == data
    with pytest.raises(ValueError, match="version"):
        DeviceBaseline.load(b"\x63" + data[1:])


def test_detector_document_with_version_1_baselines_loads() -> None:
    """A ``dump()`` document written before the binary baselines (JSON text inside)."""
    original = AnomalyDetector()
    _run(original, list(daily_pattern(devices=2, days=3)))
    doc = orjson.loads(original.dump())
    doc["baselines"] = {
        device_id: dump_v1(baseline).decode() for device_id, baseline in original.baselines.items()
    }
    restored = AnomalyDetector()
    restored.load(orjson.dumps(doc))
    assert restored.dump() == original.dump()


def test_model_with_other_parameters_is_not_loaded() -> None:
    trained = AnomalyDetector()
    _run(trained, list(daily_pattern(devices=3, days=5)))
    other = AnomalyDetector(AnomalyConfig(hour_model=ModelParams(5, 4, 100)))
    other.load_model(trained.dump_model())
    assert other.models["hour"].learned == 0
    assert other.models["day"].learned == trained.models["day"].learned


def _day_windows(hours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    days: dict[tuple[str, int], dict[str, Any]] = {}
    for w in hours:
        start = w["window_start"] - w["window_start"] % DAY_US
        day = days.setdefault(
            (w["device_id"], start),
            {
                **w,
                "period": "day",
                "window_start": start,
                "window_end": start + DAY_US,
                "energy_kwh": 0.0,
                "power_max_w": 0.0,
            },
        )
        day["energy_kwh"] += w["energy_kwh"]
        day["power_max_w"] = max(day["power_max_w"], w["power_max_w"])
    return list(days.values())
