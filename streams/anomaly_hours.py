"""Hour windows of many devices scored at once: ``DeviceBaseline.score_hour`` on columns.

The baselines of a batch's devices are rows of two matrices (float32 values, uint16 counts,
the layouts of ``streams.anomaly_baseline_layout``). One step takes at most one hour window per
device, so its windows touch different rows and numpy computes them together: features,
model inputs, explanations, and the learning of the final ones. Steps run in each device's
order of windows, so every device sees its own windows one after the other, as
``score_hour`` would. The results are ``score_hour``'s to the bit
(tests/anomaly/test_hour_columns.py):

- the same float64 operations in the same order (numpy's ``+ - * /`` and ``sqrt`` round
  as Python's do); values are read from and written to float32 and uint16 as
  ``array("f")`` and ``array("H")`` do;
- ``log``, ``exp``, ``tanh``, ``**`` and ``round`` are Python's own, applied per element
  (numpy's versions may differ in the last bit);
- ``min``/``max`` spelled as comparisons, with Python's treatment of NaN.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from streams.anomaly_baseline_layout import layout
from streams.anomaly_config import BaselineParams

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]

# the model inputs of an hour window, in the order of score_hour's dict (river's trees are
# built from the first sample's keys, in order)
HOUR_INPUTS: Final = ("energy", "flat", "top", "drift", "surprise")

_L = layout()
_NAN: Final = math.nan
_CAP: Final = 65_535


def _read(matrix: npt.NDArray[Any], rows: IntArray, column: Any) -> FloatArray:
    """``matrix[rows, column]`` as float64 (the value ``array`` gives Python)."""
    values: FloatArray = matrix[rows, column].astype(np.float64)
    return values


def _each(function: Callable[[float], float], values: FloatArray) -> FloatArray:
    """``function`` (a Python float function) of each value, as float64."""
    return np.fromiter(map(function, values.tolist()), dtype=np.float64, count=len(values))


def _square(value: float) -> float:
    return value**2


def _clip(value: FloatArray, limit: FloatArray) -> FloatArray:
    # -limit if value < -limit else limit if value > limit else value
    clipped: FloatArray = np.where(value < -limit, -limit, np.where(value > limit, limit, value))
    return clipped


def _larger(a: FloatArray, b: FloatArray | float) -> FloatArray:
    """``max(a, b)`` written as ``a if a > b else b``."""
    larger: FloatArray = np.where(a > b, a, b)
    return larger


@dataclass(slots=True)
class HourStep:
    """One step's windows: the rows of their devices and score_hour's arguments."""

    rows: IntArray
    week_slot: IntArray
    daytype_slot: IntArray
    rate: FloatArray
    power_max: FloatArray  # NaN where None
    has_max: BoolArray
    has_power: BoolArray  # power_max and power_mean both given
    power_min: FloatArray
    has_range: BoolArray  # has_power, power_count >= 2 and power_min given
    power_mean: FloatArray
    learn: BoolArray
    ordinal: IntArray

    def take(self, chosen: IntArray | BoolArray) -> HourStep:
        """The step of the windows ``chosen`` (indices or a mask)."""
        return HourStep(*(getattr(self, name)[chosen] for name in HourStep.__slots__))


@dataclass(slots=True)
class HourResult:
    """The model inputs (n x 5, ``HOUR_INPUTS``) and the raw values of the explanations."""

    inputs: FloatArray
    z_energy: FloatArray
    usual: FloatArray  # exp(expected) - offset, before the max with 0 and the hours
    z_peak: FloatArray
    z_range: FloatArray
    z_top: FloatArray
    drift: FloatArray


class BaselineMatrix:
    """The baselines of a batch's devices as rows; ``rows`` and ``write_back`` convert."""

    def __init__(self, floats: Sequence[Any], counts: Sequence[Any], ordinals: Sequence[int]):
        n = len(floats)
        self.floats = np.frombuffer(b"".join(map(bytes, floats)), dtype=np.float32)
        self.floats = self.floats.reshape(n, _L.floats).copy()
        self.counts = np.frombuffer(b"".join(map(bytes, counts)), dtype=np.uint16)
        self.counts = self.counts.reshape(n, _L.counts).copy()
        self.ordinals = np.array(ordinals, dtype=np.int64).reshape(n)

    def store(self, row: int, baseline: Any) -> None:
        """Row ``row`` into ``baseline`` (a DeviceBaseline): its arrays and day ordinal."""
        floats = array("f")
        floats.frombytes(self.floats[row].tobytes())
        counts = array("H")
        counts.frombytes(self.counts[row].tobytes())
        baseline.floats = floats
        baseline.counts = counts
        baseline.day_ordinal = int(self.ordinals[row])

    def load(self, row: int, baseline: Any) -> None:
        """``baseline`` into row ``row``."""
        self.floats[row] = np.frombuffer(baseline.floats, dtype=np.float32)
        self.counts[row] = np.frombuffer(baseline.counts, dtype=np.uint16)
        self.ordinals[row] = baseline.day_ordinal

    def score(self, p: BaselineParams, s: HourStep) -> HourResult:
        """``score_hour`` of one step's windows (at most one per row), learning those with
        ``s.learn`` set."""
        with np.errstate(all="ignore"):
            return self._score(p, s)

    def _score(self, p: BaselineParams, s: HourStep) -> HourResult:
        F = self.floats
        N = self.counts
        rows = s.rows
        ws = s.week_slot
        j = s.daytype_slot
        rate = s.rate

        f = partial(_read, F, rows)
        n = partial(_read, N, rows)

        level_n = n(_L.LEVEL_N)
        known = level_n > 0
        level = np.where(known, f(_L.LEVEL), rate)
        offset = p.offset * level + 1e-4
        x = _each(math.log, rate + offset)
        n_week = n(ws)
        n_day = n(_L.DT_N + j)
        base = x.copy()
        has_day = n_day > 0
        base[has_day] = f(_L.DT_EM + j)[has_day]
        by_level = ~has_day & known
        if by_level.any():
            base[by_level] = _each(math.log, (level + offset)[by_level])
        week_prior = p.week_prior
        expected = (n_week * f(ws) + week_prior * base) / (n_week + week_prior)
        prior = p.prior_sd * p.prior_sd
        prior_weight = p.prior_weight
        weighted_prior = prior_weight * prior
        floor_var = p.floor_sd * p.floor_sd
        var = (n_day * f(_L.DT_EV + j) + weighted_prior) / (n_day + prior_weight)
        sd = np.sqrt(var + floor_var)
        z_energy = (x - expected) / sd
        # log(power_max + 1): the peak's input and the top's
        log_top = np.full(len(rows), _NAN)
        if s.has_max.any():
            log_top[s.has_max] = _each(math.log, s.power_max[s.has_max] + 1.0)
        x_peak = np.where(s.has_power, log_top, _NAN)
        n_p = n(_L.DT_PN + j)
        var_p = (n_p * f(_L.P_V) + weighted_prior) / (n_p + prior_weight)
        peak_z = (x_peak - f(_L.DT_PM + j)) / np.sqrt(var_p + floor_var)
        z_peak = np.where(s.has_power & (n_p > 0), peak_z, 0.0)
        x_range = np.full(len(rows), _NAN)
        if s.has_range.any():
            r = s.has_range
            x_range[r] = _each(
                math.log, (s.power_max[r] - s.power_min[r]) / (s.power_mean[r] + 1.0) + 1e-3
            )
        n_f = n(_L.DT_FN + j)
        var_f = (n_f * f(_L.F_V) + weighted_prior) / (n_f + prior_weight)
        range_z = (x_range - f(_L.DT_FM + j)) / np.sqrt(var_f + floor_var)
        z_range = np.where(s.has_range & (n_f > 0), range_z, 0.0)
        count_top = n(_L.TOP_N)
        var_t = (count_top * f(_L.TOP_V) + weighted_prior) / (count_top + prior_weight)
        top_z = (log_top - f(_L.TOP_M)) / np.sqrt(var_t + floor_var)
        z_top = np.where(s.has_max & (count_top > 0), top_z, 0.0)
        clipped = np.where(z_energy < 4.0, z_energy, 4.0)
        clipped = np.where(clipped > -4.0, clipped, -4.0)
        drift_hour = p.drift_hour
        drift = (1.0 - drift_hour) * f(_L.DRIFT_H) + drift_hour * clipped
        recent_hour = p.recent_hour
        recent = (1.0 - recent_hour) * f(_L.RECENT_H) + recent_hour * clipped
        flat = np.where(z_range > 0.0, 0.0, z_range)
        peak = np.where(z_peak < 0.0, 0.0, z_peak)
        surprise = np.sqrt(_each(_square, z_energy) + 0.25 * (flat * flat + peak * peak))
        top = z_top - 2.0
        top = np.where(top < 0.0, 0.0, top)
        overall = np.sqrt(
            _each(_square, surprise) + _each(_square, 2.0 * drift) + _each(_square, recent)
        )
        inputs = np.empty((len(rows), len(HOUR_INPUTS)), dtype=np.float64)
        inputs[:, 0] = 0.5 + 0.5 * _each(math.tanh, z_energy / 6.0)
        inputs[:, 1] = 0.5 + 0.5 * _each(math.tanh, flat / 6.0)
        inputs[:, 2] = top / (top + 2.0)
        inputs[:, 3] = 0.5 + 0.5 * _each(math.tanh, drift / 1.5)
        inputs[:, 4] = overall / (overall + 3.0)
        usual = _each(math.exp, expected) - offset
        result = HourResult(inputs, z_energy, usual, z_peak, z_range, z_top, drift)
        if s.learn.any():
            learning = _Learning(
                s, x, expected, sd, x_peak, x_range, drift, recent, surprise, level_n
            )
            self._learn(p, learning.only(s.learn))
        return result

    def _learn(self, p: BaselineParams, a: _Learning) -> None:
        """score_hour's learning part for the windows of ``a``."""
        F = self.floats
        N = self.counts
        s = a.step
        rows = s.rows
        ws = s.week_slot
        j = s.daytype_slot
        prior = p.prior_sd * p.prior_sd
        floor_var = p.floor_sd * p.floor_sd
        clip = p.clip

        f = partial(_read, F, rows)

        def bump(column: Any) -> None:
            count = N[rows, column]
            N[rows, column] = np.where(count < _CAP, count + 1, count)

        limit = clip * a.sd
        # the hour-of-week slot
        count = _read(N, rows, ws)
        old = f(ws)
        first = a.expected + _clip(a.x - a.expected, limit)
        rate = 1.0 / (count + 1.0)
        floor = p.week_rate
        later = old + np.where(floor > rate, floor, rate) * _clip(a.x - old, limit)
        F[rows, ws] = np.where(count == 0, first, later)
        bump(ws)
        residual = _clip(a.x - a.expected, limit)
        # the day-type hour slot
        count = _read(N, rows, _L.DT_N + j)
        daytype_rate = p.daytype_rate
        rate = 1.0 / (count + 1.0)
        rate = np.where(daytype_rate > rate, daytype_rate, rate)
        level_n = a.level_n
        level_rate = 1.0 / (level_n + 1.0)
        level_rate = np.where(level_rate < 0.01, 0.01, level_rate)
        new = count == 0
        old = f(_L.DT_EM + j)
        F[rows, _L.DT_EM + j] = np.where(
            new,
            np.where(level_n > 0, a.expected + residual, a.x),
            old + rate * _clip(a.x - old, limit),
        )
        old = f(_L.DT_EV + j)
        F[rows, _L.DT_EV + j] = np.where(new, prior, old + rate * (residual * residual - old))
        bump(_L.DT_N + j)
        # peak and range: a day-type slot mean with a device-wide residual variance
        for value, mean_at, count_at, var_at in (
            (a.x_peak, _L.DT_PM, _L.DT_PN, _L.P_V),
            (a.x_range, _L.DT_FM, _L.DT_FN, _L.F_V),
        ):
            given = value == value  # not NaN
            if not given.any():
                continue
            sub = a.only(given)
            self._learn_slot(
                p, sub.step.rows, sub.step.daytype_slot, value[given], level_rate[given],
                mean_at, count_at, var_at, prior, floor_var,
            )  # fmt: skip
        # the level, drift, and the day's accumulators
        level = np.where(level_n > 0, f(_L.LEVEL), s.rate)
        capped = 10.0 * level
        capped = np.where(level_n > 0, np.where(capped < s.rate, capped, s.rate), s.rate)
        F[rows, _L.LEVEL] = level + level_rate * (capped - level)
        bump(_L.LEVEL_N)
        F[rows, _L.DRIFT_H] = a.drift
        F[rows, _L.RECENT_H] = a.recent
        other_day = self.ordinals[rows] != s.ordinal
        if other_day.any():
            reset = rows[other_day]
            self.ordinals[reset] = s.ordinal[other_day]
            F[reset, _L.DACC_SUM] = 0.0
            F[reset, _L.DACC_MAX] = 0.0
            F[reset, _L.DACC_RUN] = 0.0
            N[reset, _L.DACC_N] = 0
        run = f(_L.DACC_RUN)
        size = np.abs(a.recent)
        F[rows, _L.DACC_RUN] = _larger(size, run)
        z = np.where(a.surprise < 12.0, a.surprise, 12.0)
        F[rows, _L.DACC_SUM] = f(_L.DACC_SUM) + z * z
        F[rows, _L.DACC_MAX] = _larger(z, f(_L.DACC_MAX))
        bump(_L.DACC_N)

    def _learn_slot(
        self,
        p: BaselineParams,
        rows: IntArray,
        j: IntArray,
        x: FloatArray,
        level_rate: FloatArray,
        mean_at: int,
        count_at: int,
        var_at: int,
        prior: float,
        floor_var: float,
    ) -> None:
        F = self.floats
        N = self.counts
        count = _read(N, rows, count_at + j)
        new = count == 0
        old_var = _read(F, rows, var_at)
        slot_limit = p.clip * np.sqrt(old_var + floor_var)
        old = _read(F, rows, mean_at + j)
        value = _clip(x - old, slot_limit)
        daytype_rate = p.daytype_rate
        slot_rate = 1.0 / (count + 1.0)
        slot_rate = np.where(daytype_rate > slot_rate, daytype_rate, slot_rate)
        F[rows, mean_at + j] = np.where(new, x, old + slot_rate * value)
        F[rows, var_at] = np.where(
            new,
            np.where(old_var == 0.0, prior, old_var),
            old_var + level_rate * (value * value - old_var),
        )
        N[rows, count_at + j] = np.where(count < _CAP, count + 1.0, count)


@dataclass(slots=True)
class _Learning:
    """What the learning part needs of a step's windows."""

    step: HourStep
    x: FloatArray
    expected: FloatArray
    sd: FloatArray
    x_peak: FloatArray
    x_range: FloatArray
    drift: FloatArray
    recent: FloatArray
    surprise: FloatArray
    level_n: FloatArray

    def only(self, chosen: BoolArray) -> _Learning:
        s = self.step
        step = s.take(chosen)
        values = (getattr(self, name)[chosen] for name in _Learning.__slots__[1:])
        return _Learning(step, *values)


class HourExplanations:
    """The explanation dicts of one step's windows, built on demand (``AnomalyScore``)."""

    __slots__ = ("coverage", "length_h", "result")

    def __init__(self, result: HourResult, length_h: list[float], coverage: list[Any]) -> None:
        self.result = result
        self.length_h = length_h
        self.coverage = coverage

    def explain(self, at: int) -> dict[str, float]:
        """score_hour's explanation of the step's window ``at``."""
        r = self.result
        usual = r.usual[at].item()
        return {
            "energy_z": round(r.z_energy[at].item(), 3),
            "expected_kwh": round((usual if usual > 0.0 else 0.0) * self.length_h[at], 6),
            "peak_z": round(r.z_peak[at].item(), 3),
            "range_z": round(r.z_range[at].item(), 3),
            "top_z": round(r.z_top[at].item(), 3),
            "drift": round(r.drift[at].item(), 3),
            "coverage": round(self.coverage[at], 4),
        }
