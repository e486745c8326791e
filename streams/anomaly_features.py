"""What the models see of a window: the z-scores a device's baseline yields, squashed into
[0, 1] as Half-Space Trees require, and the readable explanation sent with a score.

"As usual" maps to the middle of each input (or to 0 for sizes); anomalies move towards
the edges. ``tanh`` keeps extremes apart without clipping them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

_US_PER_HOUR: Final = 3_600_000_000


@dataclass(frozen=True, slots=True)
class HourFeatures:
    x: float  # log(energy rate + offset)
    expected: float
    sd: float
    offset: float
    z_energy: float
    x_peak: float  # nan without power readings
    z_peak: float
    x_range: float  # nan with fewer than two power readings
    z_range: float
    z_top: float  # peak power against the device's usual daily peak (0 without power)
    drift: float  # running mean of hour z over about half a day, this hour included
    recent: float  # ... over about three hours

    @property
    def surprise(self) -> float:
        """How far from usual the hour is overall: energy either way, a power range
        narrower than usual (a stuck meter), a peak above usual (both half weight)."""
        flat = min(self.z_range, 0.0)
        peak = max(self.z_peak, 0.0)
        return math.sqrt(self.z_energy**2 + 0.25 * (flat * flat + peak * peak))


@dataclass(frozen=True, slots=True)
class DayFeatures:
    x: float
    expected: float
    sd: float
    offset: float
    z_energy: float
    hour_rms: float  # root mean square of the day's hour surprise (0 if none was learned)
    hour_max: float  # largest hour surprise of the day
    hour_run: float  # largest |short running mean of hour z| of the day
    drift: float  # running mean of day z over about four days, this day included
    x_top: float  # log of the day's peak power (nan without power readings)
    z_top: float  # ... against the device's usual daily peak (0 if unknown)


def squash(z: float, scale: float = 6.0) -> float:
    """z-score -> (0, 1), 0.5 for "as usual"; tanh keeps extremes apart without clipping."""
    return 0.5 + 0.5 * math.tanh(z / scale)


def unit(value: float, scale: float) -> float:
    """A non-negative size -> [0, 1)."""
    return value / (value + scale)


def hour_inputs(feats: HourFeatures) -> dict[str, float]:
    """The model's view of an hour: each in [0, 1], 0.5 (or 0) meaning "as usual"."""
    return {
        "energy": squash(feats.z_energy),
        "flat": squash(min(feats.z_range, 0.0)),
        "top": unit(max(feats.z_top - 2.0, 0.0), 2.0),
        "drift": squash(feats.drift, 1.5),
        "surprise": unit(
            math.sqrt(feats.surprise**2 + (2.0 * feats.drift) ** 2 + feats.recent**2), 3.0
        ),
    }


def day_inputs(feats: DayFeatures) -> dict[str, float]:
    return {
        "energy": squash(feats.z_energy),
        "hour_rms": unit(feats.hour_rms, 2.0),
        "hour_max": unit(feats.hour_max, 4.0),
        "hour_run": unit(feats.hour_run, 2.0),
        "top": unit(max(feats.z_top - 2.0, 0.0), 2.0),
        "drift": squash(feats.drift, 1.5),
    }


def add_time(x: dict[str, float], hour: int, weekday: int) -> None:
    x["hour_sin"] = 0.5 + 0.5 * math.sin(2 * math.pi * hour / 24)
    x["hour_cos"] = 0.5 + 0.5 * math.cos(2 * math.pi * hour / 24)
    x["weekday_sin"] = 0.5 + 0.5 * math.sin(2 * math.pi * weekday / 7)
    x["weekday_cos"] = 0.5 + 0.5 * math.cos(2 * math.pi * weekday / 7)


def hour_explained(feats: HourFeatures, window: Mapping[str, Any]) -> dict[str, float]:
    hours = (window["window_end"] - window["window_start"]) / _US_PER_HOUR
    expected = max(0.0, math.exp(feats.expected) - feats.offset) * hours
    return {
        "energy_z": round(feats.z_energy, 3),
        "expected_kwh": round(expected, 6),
        "peak_z": round(feats.z_peak, 3),
        "range_z": round(feats.z_range, 3),
        "top_z": round(feats.z_top, 3),
        "drift": round(feats.drift, 3),
        "coverage": round(window.get("coverage") or 0.0, 4),
    }


def day_explained(feats: DayFeatures, window: Mapping[str, Any]) -> dict[str, float]:
    hours = (window["window_end"] - window["window_start"]) / _US_PER_HOUR  # 23, 24, 25
    expected = max(0.0, math.exp(feats.expected) - feats.offset) * hours / 24.0
    return {
        "energy_z": round(feats.z_energy, 3),
        "expected_kwh": round(expected, 6),
        "hour_rms": round(feats.hour_rms, 3),
        "hour_max": round(feats.hour_max, 3),
        "hour_run": round(feats.hour_run, 3),
        "top_z": round(feats.z_top, 3),
        "drift": round(feats.drift, 3),
    }
