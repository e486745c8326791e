"""A device's own recent normal, learned online, and the features that compare a window to it.

Everything is in log space, so a device's windows are judged relative to its own level and
devices of any size are comparable: ``z = (x - expected) / spread``. The expected hourly
energy blends the device's hour-of-week slot (168 slots, one sample a week) with its
hour-of-day slot of the same day type (48 slots: weekdays, weekend), which learns within a
day or two; the more a week slot has seen, the more it counts. Spreads are learned per
day-type hour from the residuals. Updates are exponentially weighted (the first samples of
a slot are plain averages) and clipped at three spreads, so one spike barely moves the
baseline while a lasting change is absorbed within a few weeks.

State per device is 382 float32 numbers and 324 small counts (2,176 bytes); ``dump`` writes
them in the binary form of streams/anomaly_baseline_codec.py, exact to the bit: about 140
bytes after a few hours, 750 after a few days, 1.35 KB for a mature device (weeks of hours).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Final

from streams.anomaly_baseline_codec import BASELINE_VERSION, BaselineFields, decode, encode
from streams.anomaly_baseline_layout import (
    COUNTS,
    DACC_MAX,
    DACC_N,
    DACC_RUN,
    DACC_SUM,
    DD_M,
    DD_N,
    DD_V,
    DRIFT_D,
    DRIFT_H,
    DT_EM,
    DT_EV,
    DT_FM,
    DT_FN,
    DT_N,
    DT_PM,
    DT_PN,
    F_V,
    FLOATS,
    HOW_M,
    HOW_N,
    LEVEL,
    LEVEL_N,
    P_V,
    RECENT_H,
    TOP_M,
    TOP_N,
    TOP_V,
    WD_M,
    WD_N,
)
from streams.anomaly_config import BaselineParams
from streams.anomaly_features import DayFeatures, HourFeatures

__all__ = ["BASELINE_VERSION", "DeviceBaseline"]

_log = math.log
_exp = math.exp
_sqrt = math.sqrt
_tanh = math.tanh
_NAN: Final = math.nan
_COUNT_CAP: Final = 65_535  # counts are uint16: they stop here


def _ewma_rate(count: int, floor: float) -> float:
    return max(1.0 / (count + 1), floor)


@dataclass(slots=True)
class DeviceBaseline:
    """One device's baseline; ``floats`` float32 and ``counts`` uint16 arrays (see layout)."""

    first_start: int | None = None  # first learned window start (us)
    last_hour: int | None = None  # last learned hour window start (us)
    last_day: int | None = None  # last learned day window start (us)
    day_ordinal: int = 0  # local date (proleptic ordinal) the hour accumulators belong to
    floats: array[float] = field(default_factory=lambda: array("f", bytes(4 * FLOATS)))
    counts: array[int] = field(default_factory=lambda: array("H", bytes(2 * COUNTS)))

    # -- serialisation -----------------------------------------------------------------
    def dump(self) -> bytes:
        """Compact binary (format version 2); ``load`` restores the state bit for bit."""
        return encode(
            BaselineFields(
                self.first_start,
                self.last_hour,
                self.last_day,
                self.day_ordinal,
                self.floats,
                self.counts,
            )
        )

    @classmethod
    def load(cls, data: bytes | str) -> DeviceBaseline:
        """A baseline from ``dump`` output, or from the JSON of format version 1."""
        return cls(*decode(data, FLOATS, COUNTS))

    # -- hour windows ------------------------------------------------------------------
    def hour_features(
        self,
        p: BaselineParams,
        week_slot: int,
        daytype_slot: int,
        rate_kwh: float,
        power_max: float | None,
        power_mean: float | None,
        power_min: float | None,
        power_count: int,
    ) -> HourFeatures:
        """Compare one hour (energy rate in kWh per hour) with the baseline; no update."""
        f = self.floats
        n = self.counts
        level = float(f[LEVEL]) if n[LEVEL_N] else rate_kwh
        offset = p.offset * level + 1e-4
        x = math.log(rate_kwh + offset)
        n_week, n_day = n[HOW_N + week_slot], n[DT_N + daytype_slot]
        if n_day:
            base = float(f[DT_EM + daytype_slot])
        elif n[LEVEL_N]:
            base = math.log(level + offset)
        else:
            base = x  # nothing known yet: no evidence either way
        expected = (n_week * float(f[HOW_M + week_slot]) + p.week_prior * base) / (
            n_week + p.week_prior
        )
        prior = p.prior_sd * p.prior_sd
        var = (n_day * float(f[DT_EV + daytype_slot]) + p.prior_weight * prior) / (
            n_day + p.prior_weight
        )
        sd = math.sqrt(var + p.floor_sd * p.floor_sd)
        z_energy = (x - expected) / sd
        z_peak = z_range = 0.0
        x_peak = x_range = math.nan
        if power_max is not None and power_mean is not None:
            x_peak = math.log(power_max + 1.0)
            if n[DT_PN + daytype_slot]:
                var_p = (n[DT_PN + daytype_slot] * float(f[P_V]) + p.prior_weight * prior) / (
                    n[DT_PN + daytype_slot] + p.prior_weight
                )
                z_peak = (x_peak - float(f[DT_PM + daytype_slot])) / math.sqrt(
                    var_p + p.floor_sd * p.floor_sd
                )
            if power_count >= 2 and power_min is not None:
                x_range = math.log((power_max - power_min) / (power_mean + 1.0) + 1e-3)
                n_f = n[DT_FN + daytype_slot]
                if n_f:
                    var_f = (n_f * float(f[F_V]) + p.prior_weight * prior) / (n_f + p.prior_weight)
                    z_range = (x_range - float(f[DT_FM + daytype_slot])) / math.sqrt(
                        var_f + p.floor_sd * p.floor_sd
                    )
        z_top = self._z_top(p, power_max)
        clipped = max(-4.0, min(4.0, z_energy))
        drift = (1.0 - p.drift_hour) * float(f[DRIFT_H]) + p.drift_hour * clipped
        recent = (1.0 - p.recent_hour) * float(f[RECENT_H]) + p.recent_hour * clipped
        return HourFeatures(
            x,
            expected,
            sd,
            offset,
            z_energy,
            x_peak,
            z_peak,
            x_range,
            z_range,
            z_top,
            drift,
            recent,
        )

    def _z_top(self, p: BaselineParams, power_max: float | None) -> float:
        """How far a peak power lies above the device's usual daily peak (0 if unknown)."""
        count = self.counts[TOP_N]
        if power_max is None or not count:
            return 0.0
        prior = p.prior_sd * p.prior_sd
        var = (count * float(self.floats[TOP_V]) + p.prior_weight * prior) / (
            count + p.prior_weight
        )
        top = (math.log(power_max + 1.0) - float(self.floats[TOP_M])) / math.sqrt(
            var + p.floor_sd * p.floor_sd
        )
        return top

    def learn_hour(
        self,
        p: BaselineParams,
        week_slot: int,
        daytype_slot: int,
        rate_kwh: float,
        feats: HourFeatures,
        window_start: int,
        day_ordinal: int,
    ) -> None:
        """Fold one final hour into the baseline (after it was scored)."""
        f = self.floats
        n = self.counts
        limit = p.clip * feats.sd
        # the hour-of-week slot starts from the blended expectation, so one odd first week
        # does not stick
        i = HOW_M + week_slot
        if n[HOW_N + week_slot] == 0:
            f[i] = feats.expected + _clip(feats.x - feats.expected, limit)
        else:
            rate = _ewma_rate(n[HOW_N + week_slot], p.week_rate)
            f[i] = f[i] + rate * _clip(feats.x - f[i], limit)
        _bump(n, HOW_N + week_slot)
        residual = _clip(feats.x - feats.expected, limit)
        j = daytype_slot
        count = n[DT_N + j]
        rate = _ewma_rate(count, p.daytype_rate)
        if count == 0:
            f[DT_EM + j] = feats.x if not n[LEVEL_N] else feats.expected + residual
            f[DT_EV + j] = p.prior_sd * p.prior_sd  # one residual is no spread yet
        else:
            f[DT_EM + j] = f[DT_EM + j] + rate * _clip(feats.x - f[DT_EM + j], limit)
            f[DT_EV + j] = f[DT_EV + j] + rate * (residual * residual - f[DT_EV + j])
        _bump(n, DT_N + j)
        level_n = n[LEVEL_N]
        if not math.isnan(feats.x_peak):
            _learn_slot(f, n, DT_PM + j, DT_PN + j, P_V, feats.x_peak, level_n, p)
        if not math.isnan(feats.x_range):
            _learn_slot(f, n, DT_FM + j, DT_FN + j, F_V, feats.x_range, level_n, p)
        level = float(f[LEVEL]) if level_n else rate_kwh
        capped = min(rate_kwh, 10.0 * level) if level_n else rate_kwh
        f[LEVEL] = level + _ewma_rate(level_n, 0.01) * (capped - level)
        _bump(n, LEVEL_N)
        f[DRIFT_H] = feats.drift
        f[RECENT_H] = feats.recent
        if day_ordinal != self.day_ordinal:
            self.day_ordinal = day_ordinal
            f[DACC_SUM] = 0.0
            f[DACC_MAX] = 0.0
            f[DACC_RUN] = 0.0
            n[DACC_N] = 0
        f[DACC_RUN] = max(float(f[DACC_RUN]), abs(feats.recent))
        z = min(12.0, feats.surprise)
        f[DACC_SUM] = f[DACC_SUM] + z * z
        f[DACC_MAX] = max(float(f[DACC_MAX]), z)
        _bump(n, DACC_N)
        self.last_hour = window_start
        if self.first_start is None:
            self.first_start = window_start

    def score_hour(
        self,
        p: BaselineParams,
        week_slot: int,
        daytype_slot: int,
        rate_kwh: float,
        power_max: float | None,
        power_mean: float | None,
        power_min: float | None,
        power_count: int,
        learn: bool,
        window_start: int,
        day_ordinal: int,
        length_h: float,
        coverage: float,
    ) -> tuple[dict[str, float], dict[str, float]]:
        """One hour at once: the model inputs (``hour_inputs``) and the explanation
        (``hour_explained``) of ``hour_features``, then ``learn_hour`` if ``learn``.

        The same arithmetic in the same order as those (bit for bit, checked by the tests),
        inlined: they cost a dozen calls and an object per window.
        """
        f = self.floats
        n = self.counts
        level_n = n[LEVEL_N]
        level = float(f[LEVEL]) if level_n else rate_kwh
        offset = p.offset * level + 1e-4
        x = _log(rate_kwh + offset)
        n_week = n[week_slot]  # HOW_N == 0
        n_day = n[DT_N + daytype_slot]
        if n_day:
            base = float(f[DT_EM + daytype_slot])
        elif level_n:
            base = _log(level + offset)
        else:
            base = x
        week_prior = p.week_prior
        expected = (n_week * float(f[week_slot]) + week_prior * base) / (n_week + week_prior)
        prior_sd = p.prior_sd
        prior = prior_sd * prior_sd
        prior_weight = p.prior_weight
        weighted_prior = prior_weight * prior
        floor_sd = p.floor_sd
        floor_var = floor_sd * floor_sd
        var = (n_day * float(f[DT_EV + daytype_slot]) + weighted_prior) / (n_day + prior_weight)
        sd = _sqrt(var + floor_var)
        z_energy = (x - expected) / sd
        z_peak = z_range = 0.0
        x_peak = x_range = _NAN
        if power_max is not None and power_mean is not None:
            x_peak = _log(power_max + 1.0)
            n_p = n[DT_PN + daytype_slot]
            if n_p:
                var_p = (n_p * float(f[P_V]) + weighted_prior) / (n_p + prior_weight)
                z_peak = (x_peak - float(f[DT_PM + daytype_slot])) / _sqrt(var_p + floor_var)
            if power_count >= 2 and power_min is not None:
                x_range = _log((power_max - power_min) / (power_mean + 1.0) + 1e-3)
                n_f = n[DT_FN + daytype_slot]
                if n_f:
                    var_f = (n_f * float(f[F_V]) + weighted_prior) / (n_f + prior_weight)
                    z_range = (x_range - float(f[DT_FM + daytype_slot])) / _sqrt(var_f + floor_var)
        z_top = 0.0
        count_top = n[TOP_N]
        if power_max is not None and count_top:
            var_t = (count_top * float(f[TOP_V]) + weighted_prior) / (count_top + prior_weight)
            z_top = (_log(power_max + 1.0) - float(f[TOP_M])) / _sqrt(var_t + floor_var)
        # min and max written out: max(a, b) is b if b > a else a, min(a, b) b if b < a else a
        clipped = z_energy if z_energy < 4.0 else 4.0  # max(-4.0, min(4.0, z_energy))
        clipped = clipped if clipped > -4.0 else -4.0
        drift_hour = p.drift_hour
        drift = (1.0 - drift_hour) * float(f[DRIFT_H]) + drift_hour * clipped
        recent_hour = p.recent_hour
        recent = (1.0 - recent_hour) * float(f[RECENT_H]) + recent_hour * clipped
        flat = 0.0 if z_range > 0.0 else z_range
        peak = 0.0 if z_peak < 0.0 else z_peak
        surprise = _sqrt(z_energy**2 + 0.25 * (flat * flat + peak * peak))
        # hour_inputs (squash and unit written out)
        top = z_top - 2.0
        top = 0.0 if top < 0.0 else top
        overall = _sqrt(surprise**2 + (2.0 * drift) ** 2 + recent**2)
        inputs = {
            "energy": 0.5 + 0.5 * _tanh(z_energy / 6.0),
            "flat": 0.5 + 0.5 * _tanh(flat / 6.0),
            "top": top / (top + 2.0),
            "drift": 0.5 + 0.5 * _tanh(drift / 1.5),
            "surprise": overall / (overall + 3.0),
        }
        usual = _exp(expected) - offset
        explained = {
            "energy_z": round(z_energy, 3),
            "expected_kwh": round((usual if usual > 0.0 else 0.0) * length_h, 6),
            "peak_z": round(z_peak, 3),
            "range_z": round(z_range, 3),
            "top_z": round(z_top, 3),
            "drift": round(drift, 3),
            "coverage": round(coverage, 4),
        }
        if not learn:
            return inputs, explained
        # learn_hour
        clip = p.clip
        limit = clip * sd
        count = n_week
        if count == 0:
            value = x - expected
            f[week_slot] = expected + (
                -limit if value < -limit else limit if value > limit else value
            )
        else:
            old = f[week_slot]
            value = x - old
            rate = 1.0 / (count + 1)
            floor = p.week_rate
            f[week_slot] = old + (floor if floor > rate else rate) * (
                -limit if value < -limit else limit if value > limit else value
            )
        if count < _COUNT_CAP:
            n[week_slot] = count + 1
        value = x - expected
        residual = -limit if value < -limit else limit if value > limit else value
        j = daytype_slot
        count = n[DT_N + j]
        daytype_rate = p.daytype_rate
        rate = 1.0 / (count + 1)
        rate = daytype_rate if daytype_rate > rate else rate
        level_rate = 1.0 / (level_n + 1)
        level_rate = 0.01 if level_rate < 0.01 else level_rate
        if count == 0:
            f[DT_EM + j] = x if not level_n else expected + residual
            f[DT_EV + j] = prior
        else:
            old = f[DT_EM + j]
            value = x - old
            f[DT_EM + j] = old + rate * (
                -limit if value < -limit else limit if value > limit else value
            )
            old = f[DT_EV + j]
            f[DT_EV + j] = old + rate * (residual * residual - old)
        if count < _COUNT_CAP:
            n[DT_N + j] = count + 1
        if x_peak == x_peak:  # not nan: _learn_slot(DT_PM, DT_PN, P_V)
            count = n[DT_PN + j]
            if count == 0:
                f[DT_PM + j] = x_peak
                if f[P_V] == 0.0:
                    f[P_V] = prior
            else:
                old_var = f[P_V]
                slot_limit = clip * _sqrt(float(old_var) + floor_var)
                old = f[DT_PM + j]
                value = x_peak - old
                value = (
                    -slot_limit
                    if value < -slot_limit
                    else slot_limit
                    if value > slot_limit
                    else value
                )
                slot_rate = 1.0 / (count + 1)
                slot_rate = daytype_rate if daytype_rate > slot_rate else slot_rate
                f[DT_PM + j] = old + slot_rate * value
                f[P_V] = old_var + level_rate * (value * value - old_var)
            if count < _COUNT_CAP:
                n[DT_PN + j] = count + 1
        if x_range == x_range:  # not nan: _learn_slot(DT_FM, DT_FN, F_V)
            count = n[DT_FN + j]
            if count == 0:
                f[DT_FM + j] = x_range
                if f[F_V] == 0.0:
                    f[F_V] = prior
            else:
                old_var = f[F_V]
                slot_limit = clip * _sqrt(float(old_var) + floor_var)
                old = f[DT_FM + j]
                value = x_range - old
                value = (
                    -slot_limit
                    if value < -slot_limit
                    else slot_limit
                    if value > slot_limit
                    else value
                )
                slot_rate = 1.0 / (count + 1)
                slot_rate = daytype_rate if daytype_rate > slot_rate else slot_rate
                f[DT_FM + j] = old + slot_rate * value
                f[F_V] = old_var + level_rate * (value * value - old_var)
            if count < _COUNT_CAP:
                n[DT_FN + j] = count + 1
        level = float(f[LEVEL]) if level_n else rate_kwh
        if level_n:
            capped = 10.0 * level
            capped = capped if capped < rate_kwh else rate_kwh
        else:
            capped = rate_kwh
        f[LEVEL] = level + level_rate * (capped - level)
        if level_n < _COUNT_CAP:
            n[LEVEL_N] = level_n + 1
        f[DRIFT_H] = drift
        f[RECENT_H] = recent
        if day_ordinal != self.day_ordinal:
            self.day_ordinal = day_ordinal
            f[DACC_SUM] = 0.0
            f[DACC_MAX] = 0.0
            f[DACC_RUN] = 0.0
            n[DACC_N] = 0
        run = float(f[DACC_RUN])
        size = abs(recent)
        f[DACC_RUN] = size if size > run else run
        z = surprise if surprise < 12.0 else 12.0
        f[DACC_SUM] = f[DACC_SUM] + z * z
        worst = float(f[DACC_MAX])
        f[DACC_MAX] = z if z > worst else worst
        count = n[DACC_N]
        if count < _COUNT_CAP:
            n[DACC_N] = count + 1
        self.last_hour = window_start
        if self.first_start is None:
            self.first_start = window_start
        return inputs, explained

    # -- day windows -------------------------------------------------------------------
    def day_features(
        self,
        p: BaselineParams,
        weekday: int,
        weekend: int,
        rate_kwh: float,
        day_ordinal: int,
        power_max: float | None,
    ) -> DayFeatures:
        """Compare one day (energy per 24 h) with the baseline; no update."""
        f = self.floats
        n = self.counts
        level = 24.0 * float(f[LEVEL]) if n[LEVEL_N] else rate_kwh
        offset = p.offset * level + 1e-3
        x = math.log(rate_kwh + offset)
        n_wd, n_dd = n[WD_N + weekday], n[DD_N + weekend]
        if n_dd:
            base = float(f[DD_M + weekend])
        elif n[LEVEL_N]:
            base = math.log(level + offset)
        else:
            base = x
        expected = (n_wd * float(f[WD_M + weekday]) + p.week_prior * base) / (n_wd + p.week_prior)
        prior = p.prior_sd * p.prior_sd
        var = (n_dd * float(f[DD_V + weekend]) + p.prior_weight * prior) / (n_dd + p.prior_weight)
        sd = math.sqrt(var + p.floor_sd * p.floor_sd)
        z = (x - expected) / sd
        if self.day_ordinal == day_ordinal and n[DACC_N]:
            rms = math.sqrt(float(f[DACC_SUM]) / n[DACC_N])
            worst = float(f[DACC_MAX])
            run = float(f[DACC_RUN])
        else:
            rms = worst = run = 0.0
        clipped = max(-4.0, min(4.0, z))
        drift = (1.0 - p.drift_day) * float(f[DRIFT_D]) + p.drift_day * clipped
        x_top = math.nan if power_max is None else math.log(power_max + 1.0)
        z_top = self._z_top(p, power_max)
        return DayFeatures(x, expected, sd, offset, z, rms, worst, run, drift, x_top, z_top)

    def learn_day(
        self,
        p: BaselineParams,
        weekday: int,
        weekend: int,
        feats: DayFeatures,
        window_start: int,
    ) -> None:
        f = self.floats
        n = self.counts
        limit = p.clip * feats.sd
        residual = _clip(feats.x - feats.expected, limit)
        i = WD_M + weekday
        if n[WD_N + weekday] == 0:
            f[i] = feats.expected + residual
        else:
            f[i] = f[i] + _ewma_rate(n[WD_N + weekday], p.day_rate) * _clip(feats.x - f[i], limit)
        _bump(n, WD_N + weekday)
        count = n[DD_N + weekend]
        if count == 0:
            f[DD_M + weekend] = feats.expected + residual
            f[DD_V + weekend] = p.prior_sd * p.prior_sd
        else:
            rate = _ewma_rate(count, p.day_rate)
            f[DD_M + weekend] = f[DD_M + weekend] + rate * _clip(feats.x - f[DD_M + weekend], limit)
            f[DD_V + weekend] = f[DD_V + weekend] + rate * (residual * residual - f[DD_V + weekend])
        _bump(n, DD_N + weekend)
        f[DRIFT_D] = feats.drift
        if not math.isnan(feats.x_top):
            count = n[TOP_N]
            if count == 0:
                f[TOP_M] = feats.x_top
                f[TOP_V] = p.prior_sd * p.prior_sd
            else:
                var = float(f[TOP_V])
                limit_top = p.clip * math.sqrt(var + p.floor_sd * p.floor_sd)
                residual_top = _clip(feats.x_top - f[TOP_M], limit_top)
                rate = _ewma_rate(count, p.day_rate)
                f[TOP_M] = f[TOP_M] + rate * residual_top
                f[TOP_V] = var + rate * (residual_top * residual_top - var)
            _bump(n, TOP_N)
        self.last_day = window_start
        if self.first_start is None:
            self.first_start = window_start


def _clip(value: float, limit: float) -> float:
    return -limit if value < -limit else limit if value > limit else value


def _bump(counts: array[int], index: int) -> None:
    if counts[index] < _COUNT_CAP:
        counts[index] += 1


def _learn_slot(
    f: array[float],
    n: array[int],
    mean_at: int,
    count_at: int,
    var_at: int,
    x: float,
    hours: int,
    p: BaselineParams,
) -> None:
    """A day-type slot mean with a device-wide residual variance (``hours`` learned so far)."""
    count = n[count_at]
    if count == 0:
        f[mean_at] = x
        if f[var_at] == 0.0:
            f[var_at] = p.prior_sd * p.prior_sd
    else:
        limit = p.clip * math.sqrt(float(f[var_at]) + p.floor_sd * p.floor_sd)
        residual = _clip(x - f[mean_at], limit)
        f[mean_at] = f[mean_at] + _ewma_rate(count, p.daytype_rate) * residual
        f[var_at] = f[var_at] + _ewma_rate(hours, 0.01) * (residual * residual - f[var_at])
    _bump(n, count_at)
