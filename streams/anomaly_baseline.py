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
from streams.anomaly_features import DayFeatures, HourFeatures

__all__ = ["BASELINE_VERSION", "BaselineLayout", "BaselineParams", "DeviceBaseline", "layout"]

_log = math.log
_exp = math.exp
_sqrt = math.sqrt
_tanh = math.tanh
_NAN: Final = math.nan

# float32 layout
_HOW_M: Final = 0  # 168: log energy rate per hour-of-week
_DT_EM: Final = 168  # 48: log energy rate per day-type hour
_DT_EV: Final = 216  # 48: residual variance of log energy per day-type hour
_DT_PM: Final = 264  # 48: log peak power per day-type hour
_DT_FM: Final = 312  # 48: log relative power range per day-type hour
_WD_M: Final = 360  # 7: log daily energy per weekday
_DD_M: Final = 367  # 2: log daily energy per day type
_DD_V: Final = 369  # 2: residual variance of log daily energy per day type
_P_V: Final = 371  # residual variance of log peak power
_F_V: Final = 372  # residual variance of log relative range
_LEVEL: Final = 373  # mean hourly energy (kWh), for the log offset
_DRIFT_H: Final = 374  # running mean of recent hour z (clipped)
_DRIFT_D: Final = 375  # running mean of recent day z (clipped)
_DACC_SUM: Final = 376  # sum of squared hour surprise of the current local day
_DACC_MAX: Final = 377  # largest hour surprise of the current local day
_RECENT_H: Final = 378  # short running mean of hour z (clipped): a few hours in a row
_DACC_RUN: Final = 379  # largest |short running mean| of the current local day
_TOP_M: Final = 380  # log of the day's peak power, running mean over days
_TOP_V: Final = 381  # ... its residual variance
_FLOATS: Final = 382

# uint16 layout (counts, capped)
_HOW_N: Final = 0  # 168
_DT_N: Final = 168  # 48 (energy)
_DT_PN: Final = 216  # 48 (peak)
_DT_FN: Final = 264  # 48 (range)
_WD_N: Final = 312  # 7
_DD_N: Final = 319  # 2
_LEVEL_N: Final = 321
_DACC_N: Final = 322
_TOP_N: Final = 323
_COUNTS: Final = 324
_COUNT_CAP: Final = 65_535


@dataclass(frozen=True)
class BaselineParams:
    """How fast baselines learn and how sure a new device's spread is; see module doc."""

    week_rate: float = 0.3  # hour-of-week slot: floor of the update weight
    daytype_rate: float = 0.1  # day-type hour slot
    day_rate: float = 0.2  # weekday slot of daily energy
    week_prior: float = 2.0  # a week slot counts like this many samples of its day-type slot
    prior_sd: float = 0.5  # assumed spread of log energy before any residual is seen
    prior_weight: float = 3.0  # ... worth this many residuals
    floor_sd: float = 0.05  # spreads never below 5 %: meters round, loads flicker
    clip: float = 3.0  # updates use residuals clipped at this many spreads
    offset: float = 0.05  # log(x + offset * level): zero use stays finite
    drift_hour: float = 1 / 12  # weight of a new hour in the running mean of hour z
    recent_hour: float = 1 / 3  # ... in the short running mean
    drift_day: float = 1 / 4

    def __post_init__(self) -> None:
        # they divide: a zero would make one window's arithmetic fail
        for name in ("week_prior", "prior_weight", "floor_sd"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be positive")


def _ewma_rate(count: int, floor: float) -> float:
    return max(1.0 / (count + 1), floor)


@dataclass(slots=True)
class DeviceBaseline:
    """One device's baseline; ``floats`` float32 and ``counts`` uint16 arrays (see layout)."""

    first_start: int | None = None  # first learned window start (us)
    last_hour: int | None = None  # last learned hour window start (us)
    last_day: int | None = None  # last learned day window start (us)
    day_ordinal: int = 0  # local date (proleptic ordinal) the hour accumulators belong to
    floats: array[float] = field(default_factory=lambda: array("f", bytes(4 * _FLOATS)))
    counts: array[int] = field(default_factory=lambda: array("H", bytes(2 * _COUNTS)))

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
        return cls(*decode(data, _FLOATS, _COUNTS))

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
        level = float(f[_LEVEL]) if n[_LEVEL_N] else rate_kwh
        offset = p.offset * level + 1e-4
        x = math.log(rate_kwh + offset)
        n_week, n_day = n[_HOW_N + week_slot], n[_DT_N + daytype_slot]
        if n_day:
            base = float(f[_DT_EM + daytype_slot])
        elif n[_LEVEL_N]:
            base = math.log(level + offset)
        else:
            base = x  # nothing known yet: no evidence either way
        expected = (n_week * float(f[_HOW_M + week_slot]) + p.week_prior * base) / (
            n_week + p.week_prior
        )
        prior = p.prior_sd * p.prior_sd
        var = (n_day * float(f[_DT_EV + daytype_slot]) + p.prior_weight * prior) / (
            n_day + p.prior_weight
        )
        sd = math.sqrt(var + p.floor_sd * p.floor_sd)
        z_energy = (x - expected) / sd
        z_peak = z_range = 0.0
        x_peak = x_range = math.nan
        if power_max is not None and power_mean is not None:
            x_peak = math.log(power_max + 1.0)
            if n[_DT_PN + daytype_slot]:
                var_p = (n[_DT_PN + daytype_slot] * float(f[_P_V]) + p.prior_weight * prior) / (
                    n[_DT_PN + daytype_slot] + p.prior_weight
                )
                z_peak = (x_peak - float(f[_DT_PM + daytype_slot])) / math.sqrt(
                    var_p + p.floor_sd * p.floor_sd
                )
            if power_count >= 2 and power_min is not None:
                x_range = math.log((power_max - power_min) / (power_mean + 1.0) + 1e-3)
                n_f = n[_DT_FN + daytype_slot]
                if n_f:
                    var_f = (n_f * float(f[_F_V]) + p.prior_weight * prior) / (n_f + p.prior_weight)
                    z_range = (x_range - float(f[_DT_FM + daytype_slot])) / math.sqrt(
                        var_f + p.floor_sd * p.floor_sd
                    )
        z_top = self._z_top(p, power_max)
        clipped = max(-4.0, min(4.0, z_energy))
        drift = (1.0 - p.drift_hour) * float(f[_DRIFT_H]) + p.drift_hour * clipped
        recent = (1.0 - p.recent_hour) * float(f[_RECENT_H]) + p.recent_hour * clipped
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
        count = self.counts[_TOP_N]
        if power_max is None or not count:
            return 0.0
        prior = p.prior_sd * p.prior_sd
        var = (count * float(self.floats[_TOP_V]) + p.prior_weight * prior) / (
            count + p.prior_weight
        )
        top = (math.log(power_max + 1.0) - float(self.floats[_TOP_M])) / math.sqrt(
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
        i = _HOW_M + week_slot
        if n[_HOW_N + week_slot] == 0:
            f[i] = feats.expected + _clip(feats.x - feats.expected, limit)
        else:
            rate = _ewma_rate(n[_HOW_N + week_slot], p.week_rate)
            f[i] = f[i] + rate * _clip(feats.x - f[i], limit)
        _bump(n, _HOW_N + week_slot)
        residual = _clip(feats.x - feats.expected, limit)
        j = daytype_slot
        count = n[_DT_N + j]
        rate = _ewma_rate(count, p.daytype_rate)
        if count == 0:
            f[_DT_EM + j] = feats.x if not n[_LEVEL_N] else feats.expected + residual
            f[_DT_EV + j] = p.prior_sd * p.prior_sd  # one residual is no spread yet
        else:
            f[_DT_EM + j] = f[_DT_EM + j] + rate * _clip(feats.x - f[_DT_EM + j], limit)
            f[_DT_EV + j] = f[_DT_EV + j] + rate * (residual * residual - f[_DT_EV + j])
        _bump(n, _DT_N + j)
        level_n = n[_LEVEL_N]
        if not math.isnan(feats.x_peak):
            _learn_slot(f, n, _DT_PM + j, _DT_PN + j, _P_V, feats.x_peak, level_n, p)
        if not math.isnan(feats.x_range):
            _learn_slot(f, n, _DT_FM + j, _DT_FN + j, _F_V, feats.x_range, level_n, p)
        level = float(f[_LEVEL]) if level_n else rate_kwh
        capped = min(rate_kwh, 10.0 * level) if level_n else rate_kwh
        f[_LEVEL] = level + _ewma_rate(level_n, 0.01) * (capped - level)
        _bump(n, _LEVEL_N)
        f[_DRIFT_H] = feats.drift
        f[_RECENT_H] = feats.recent
        if day_ordinal != self.day_ordinal:
            self.day_ordinal = day_ordinal
            f[_DACC_SUM] = 0.0
            f[_DACC_MAX] = 0.0
            f[_DACC_RUN] = 0.0
            n[_DACC_N] = 0
        f[_DACC_RUN] = max(float(f[_DACC_RUN]), abs(feats.recent))
        z = min(12.0, feats.surprise)
        f[_DACC_SUM] = f[_DACC_SUM] + z * z
        f[_DACC_MAX] = max(float(f[_DACC_MAX]), z)
        _bump(n, _DACC_N)
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
        level_n = n[_LEVEL_N]
        level = float(f[_LEVEL]) if level_n else rate_kwh
        offset = p.offset * level + 1e-4
        x = _log(rate_kwh + offset)
        n_week = n[week_slot]  # _HOW_N == 0
        n_day = n[_DT_N + daytype_slot]
        if n_day:
            base = float(f[_DT_EM + daytype_slot])
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
        var = (n_day * float(f[_DT_EV + daytype_slot]) + weighted_prior) / (n_day + prior_weight)
        sd = _sqrt(var + floor_var)
        z_energy = (x - expected) / sd
        z_peak = z_range = 0.0
        x_peak = x_range = _NAN
        if power_max is not None and power_mean is not None:
            x_peak = _log(power_max + 1.0)
            n_p = n[_DT_PN + daytype_slot]
            if n_p:
                var_p = (n_p * float(f[_P_V]) + weighted_prior) / (n_p + prior_weight)
                z_peak = (x_peak - float(f[_DT_PM + daytype_slot])) / _sqrt(var_p + floor_var)
            if power_count >= 2 and power_min is not None:
                x_range = _log((power_max - power_min) / (power_mean + 1.0) + 1e-3)
                n_f = n[_DT_FN + daytype_slot]
                if n_f:
                    var_f = (n_f * float(f[_F_V]) + weighted_prior) / (n_f + prior_weight)
                    z_range = (x_range - float(f[_DT_FM + daytype_slot])) / _sqrt(var_f + floor_var)
        z_top = 0.0
        count_top = n[_TOP_N]
        if power_max is not None and count_top:
            var_t = (count_top * float(f[_TOP_V]) + weighted_prior) / (count_top + prior_weight)
            z_top = (_log(power_max + 1.0) - float(f[_TOP_M])) / _sqrt(var_t + floor_var)
        # min and max written out: max(a, b) is b if b > a else a, min(a, b) b if b < a else a
        clipped = z_energy if z_energy < 4.0 else 4.0  # max(-4.0, min(4.0, z_energy))
        clipped = clipped if clipped > -4.0 else -4.0
        drift_hour = p.drift_hour
        drift = (1.0 - drift_hour) * float(f[_DRIFT_H]) + drift_hour * clipped
        recent_hour = p.recent_hour
        recent = (1.0 - recent_hour) * float(f[_RECENT_H]) + recent_hour * clipped
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
        count = n[_DT_N + j]
        daytype_rate = p.daytype_rate
        rate = 1.0 / (count + 1)
        rate = daytype_rate if daytype_rate > rate else rate
        level_rate = 1.0 / (level_n + 1)
        level_rate = 0.01 if level_rate < 0.01 else level_rate
        if count == 0:
            f[_DT_EM + j] = x if not level_n else expected + residual
            f[_DT_EV + j] = prior
        else:
            old = f[_DT_EM + j]
            value = x - old
            f[_DT_EM + j] = old + rate * (
                -limit if value < -limit else limit if value > limit else value
            )
            old = f[_DT_EV + j]
            f[_DT_EV + j] = old + rate * (residual * residual - old)
        if count < _COUNT_CAP:
            n[_DT_N + j] = count + 1
        if x_peak == x_peak:  # not nan: _learn_slot(_DT_PM, _DT_PN, _P_V)
            count = n[_DT_PN + j]
            if count == 0:
                f[_DT_PM + j] = x_peak
                if f[_P_V] == 0.0:
                    f[_P_V] = prior
            else:
                old_var = f[_P_V]
                slot_limit = clip * _sqrt(float(old_var) + floor_var)
                old = f[_DT_PM + j]
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
                f[_DT_PM + j] = old + slot_rate * value
                f[_P_V] = old_var + level_rate * (value * value - old_var)
            if count < _COUNT_CAP:
                n[_DT_PN + j] = count + 1
        if x_range == x_range:  # not nan: _learn_slot(_DT_FM, _DT_FN, _F_V)
            count = n[_DT_FN + j]
            if count == 0:
                f[_DT_FM + j] = x_range
                if f[_F_V] == 0.0:
                    f[_F_V] = prior
            else:
                old_var = f[_F_V]
                slot_limit = clip * _sqrt(float(old_var) + floor_var)
                old = f[_DT_FM + j]
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
                f[_DT_FM + j] = old + slot_rate * value
                f[_F_V] = old_var + level_rate * (value * value - old_var)
            if count < _COUNT_CAP:
                n[_DT_FN + j] = count + 1
        level = float(f[_LEVEL]) if level_n else rate_kwh
        if level_n:
            capped = 10.0 * level
            capped = capped if capped < rate_kwh else rate_kwh
        else:
            capped = rate_kwh
        f[_LEVEL] = level + level_rate * (capped - level)
        if level_n < _COUNT_CAP:
            n[_LEVEL_N] = level_n + 1
        f[_DRIFT_H] = drift
        f[_RECENT_H] = recent
        if day_ordinal != self.day_ordinal:
            self.day_ordinal = day_ordinal
            f[_DACC_SUM] = 0.0
            f[_DACC_MAX] = 0.0
            f[_DACC_RUN] = 0.0
            n[_DACC_N] = 0
        run = float(f[_DACC_RUN])
        size = abs(recent)
        f[_DACC_RUN] = size if size > run else run
        z = surprise if surprise < 12.0 else 12.0
        f[_DACC_SUM] = f[_DACC_SUM] + z * z
        worst = float(f[_DACC_MAX])
        f[_DACC_MAX] = z if z > worst else worst
        count = n[_DACC_N]
        if count < _COUNT_CAP:
            n[_DACC_N] = count + 1
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
        level = 24.0 * float(f[_LEVEL]) if n[_LEVEL_N] else rate_kwh
        offset = p.offset * level + 1e-3
        x = math.log(rate_kwh + offset)
        n_wd, n_dd = n[_WD_N + weekday], n[_DD_N + weekend]
        if n_dd:
            base = float(f[_DD_M + weekend])
        elif n[_LEVEL_N]:
            base = math.log(level + offset)
        else:
            base = x
        expected = (n_wd * float(f[_WD_M + weekday]) + p.week_prior * base) / (n_wd + p.week_prior)
        prior = p.prior_sd * p.prior_sd
        var = (n_dd * float(f[_DD_V + weekend]) + p.prior_weight * prior) / (n_dd + p.prior_weight)
        sd = math.sqrt(var + p.floor_sd * p.floor_sd)
        z = (x - expected) / sd
        if self.day_ordinal == day_ordinal and n[_DACC_N]:
            rms = math.sqrt(float(f[_DACC_SUM]) / n[_DACC_N])
            worst = float(f[_DACC_MAX])
            run = float(f[_DACC_RUN])
        else:
            rms = worst = run = 0.0
        clipped = max(-4.0, min(4.0, z))
        drift = (1.0 - p.drift_day) * float(f[_DRIFT_D]) + p.drift_day * clipped
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
        i = _WD_M + weekday
        if n[_WD_N + weekday] == 0:
            f[i] = feats.expected + residual
        else:
            f[i] = f[i] + _ewma_rate(n[_WD_N + weekday], p.day_rate) * _clip(feats.x - f[i], limit)
        _bump(n, _WD_N + weekday)
        count = n[_DD_N + weekend]
        if count == 0:
            f[_DD_M + weekend] = feats.expected + residual
            f[_DD_V + weekend] = p.prior_sd * p.prior_sd
        else:
            rate = _ewma_rate(count, p.day_rate)
            f[_DD_M + weekend] = f[_DD_M + weekend] + rate * _clip(
                feats.x - f[_DD_M + weekend], limit
            )
            f[_DD_V + weekend] = f[_DD_V + weekend] + rate * (
                residual * residual - f[_DD_V + weekend]
            )
        _bump(n, _DD_N + weekend)
        f[_DRIFT_D] = feats.drift
        if not math.isnan(feats.x_top):
            count = n[_TOP_N]
            if count == 0:
                f[_TOP_M] = feats.x_top
                f[_TOP_V] = p.prior_sd * p.prior_sd
            else:
                var = float(f[_TOP_V])
                limit_top = p.clip * math.sqrt(var + p.floor_sd * p.floor_sd)
                residual_top = _clip(feats.x_top - f[_TOP_M], limit_top)
                rate = _ewma_rate(count, p.day_rate)
                f[_TOP_M] = f[_TOP_M] + rate * residual_top
                f[_TOP_V] = var + rate * (residual_top * residual_top - var)
            _bump(n, _TOP_N)
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


@dataclass(frozen=True, slots=True)
class BaselineLayout:
    """Where each value sits in ``DeviceBaseline.floats`` and ``counts`` (for code that
    works on many baselines at once, streams/anomaly_hours.py)."""

    floats: int = _FLOATS
    counts: int = _COUNTS
    DT_EM: int = _DT_EM
    DT_EV: int = _DT_EV
    DT_PM: int = _DT_PM
    DT_FM: int = _DT_FM
    P_V: int = _P_V
    F_V: int = _F_V
    LEVEL: int = _LEVEL
    DRIFT_H: int = _DRIFT_H
    DACC_SUM: int = _DACC_SUM
    DACC_MAX: int = _DACC_MAX
    RECENT_H: int = _RECENT_H
    DACC_RUN: int = _DACC_RUN
    TOP_M: int = _TOP_M
    TOP_V: int = _TOP_V
    DT_N: int = _DT_N
    DT_PN: int = _DT_PN
    DT_FN: int = _DT_FN
    LEVEL_N: int = _LEVEL_N
    DACC_N: int = _DACC_N
    TOP_N: int = _TOP_N


def layout() -> BaselineLayout:
    """The layout of the arrays (``_HOW_M`` and ``_HOW_N`` are 0: a week slot is its index)."""
    return BaselineLayout()
