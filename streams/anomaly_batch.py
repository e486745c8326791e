"""``AnomalyDetector.score_many``: a batch of hour and day windows scored in three passes.

1. In order, what each window's flag needs before it is learned (is it learned, is its
   device warm, is the shared model warm) and the hour windows' arguments as columns.
2. The baselines: hour windows in steps of at most one window per device, each step over
   all its devices at once (``streams.anomaly_hours``); day windows (one in 25) one by one
   in their step. Every device sees its windows in order, so each gets what scoring them
   one at a time gives.
3. The shared Half-Space Trees of each period over all its windows (``streams.hst``), then
   the flags in order (running quantile).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from streams.anomaly_baseline import DeviceBaseline
from streams.anomaly_features import add_time, day_explained, day_inputs
from streams.anomaly_hours import HOUR_INPUTS, BaselineMatrix, HourExplanations, HourStep
from streams.anomaly_score import AnomalyScore
from streams.emission import Emission

if TYPE_CHECKING:
    from streams.anomaly import AnomalyDetector

_US_PER_HOUR: Final = 3_600_000_000
_US_PER_DAY: Final = 24 * _US_PER_HOUR
_TIME_INPUTS: Final = ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")
_NAN: Final = math.nan


@dataclass(slots=True)
class _Device:
    row: int
    baseline: DeviceBaseline
    first_start: int | None
    last_hour: int | None
    last_day: int | None
    windows: int = 0  # scored so far in this batch
    learned: bool = False


@dataclass(slots=True)
class _Hours:
    """Columns of the batch's hour windows, in order."""

    index: list[int] = field(default_factory=list)  # position in the batch
    row: list[int] = field(default_factory=list)
    rank: list[int] = field(default_factory=list)  # the device's how-manieth window
    week_slot: list[int] = field(default_factory=list)
    daytype_slot: list[int] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    power_max: list[float] = field(default_factory=list)
    has_max: list[bool] = field(default_factory=list)
    has_power: list[bool] = field(default_factory=list)
    power_min: list[float] = field(default_factory=list)
    has_range: list[bool] = field(default_factory=list)
    power_mean: list[float] = field(default_factory=list)
    learn: list[bool] = field(default_factory=list)
    ordinal: list[int] = field(default_factory=list)
    length_h: list[float] = field(default_factory=list)
    coverage: list[Any] = field(default_factory=list)
    time: list[list[float]] = field(default_factory=list)  # time inputs, if configured


def score_batch(
    detector: AnomalyDetector, windows: Sequence[tuple[Mapping[str, Any] | Emission, bool]]
) -> list[AnomalyScore]:
    """``score`` of each (window, final) in order, with the same results; see module doc.
    A window is an ``Emission.fields()`` mapping, or the Emission itself."""
    config = detector.config
    baselines = detector.baselines
    hour_model = detector.models["hour"]
    day_model = detector.models["day"]
    hour_size = hour_model.params.window_size
    day_size = day_model.params.window_size
    warmup_us = config.warmup_days * _US_PER_DAY
    time_features = config.time_features
    n = len(windows)
    periods: list[str] = []
    learns: list[bool] = []
    warm: list[bool] = []  # device warm and model warm
    devices: dict[str, _Device] = {}
    learners: list[str] = []  # devices that learned, in the order of their first learning
    hours = _Hours()
    days: list[tuple[int, _Device, int, bool]] = []  # (position, device, rank, learn)
    hour_learned = hour_model.learned
    day_learned = day_model.learned
    for index, (window, final) in enumerate(windows):
        values = _of_emission(window) if isinstance(window, Emission) else _of_mapping(window)
        period, device_id, start = values[0], values[1], values[2]
        if period != "hour" and period != "day":
            raise ValueError(f"only hour and day windows are scored, not {period!r}")
        device = devices.get(device_id)
        if device is None:
            baseline = baselines.get(device_id)
            if baseline is None:
                baseline = DeviceBaseline()
            device = devices[device_id] = _Device(
                len(devices), baseline, baseline.first_start, baseline.last_hour, baseline.last_day
            )
        rank = device.windows
        device.windows = rank + 1
        first = device.first_start
        device_warm = first is not None and start - first >= warmup_us
        if period == "hour":
            last = device.last_hour
            learn = final and (last is None or start > last)
            model_warm = hour_learned >= hour_size
            if learn:
                hour_learned += 1
                device.last_hour = start
            _hour_columns(hours, detector, values, index, device.row, rank, learn, time_features)
        else:
            last = device.last_day
            learn = final and (last is None or start > last)
            model_warm = day_learned >= day_size
            if learn:
                day_learned += 1
                device.last_day = start
            days.append((index, device, rank, learn))
        if learn:
            if not device.learned:
                device.learned = True
                learners.append(device_id)
            if first is None:
                device.first_start = start
        periods.append(period)
        learns.append(learn)
        warm.append(device_warm and model_warm)
    # nothing changed before here: a window of another period leaves the detector as it was
    hour_model.learned = hour_learned
    day_model.learned = day_learned

    # per window: its explanation (day windows), or where to build it from (hour windows)
    explained: list[Any] = [None] * n
    day_x: list[dict[str, float]] = []
    inputs = _baselines(detector, windows, devices, hours, days, explained, day_x)

    scores = [0.0] * n
    if hours.index:
        columns = HOUR_INPUTS + _TIME_INPUTS if time_features else HOUR_INPUTS
        got = hour_model.arrays().process_matrix(columns, inputs, hours.learn)
        for position, score in zip(hours.index, got.tolist(), strict=True):
            scores[position] = score
    if days:
        got = day_model.arrays().process(day_x, [learn for _, _, _, learn in days])
        for (position, _, _, _), score in zip(days, got.tolist(), strict=True):
            scores[position] = score

    # the flags, in order
    fixed = config.threshold
    min_scores = config.min_scores
    models = detector.models
    results: list[AnomalyScore] = []
    append = results.append
    for index in range(n):
        score = scores[index]
        score = score if score > 0.0 else 0.0  # min(1.0, max(0.0, score)), spelled out
        score = score if score < 1.0 else 1.0
        flagged = False
        if windows[index][1] and warm[index]:
            model = models[periods[index]]
            threshold = fixed
            if threshold is None and model.quantile_count >= min_scores:
                threshold = float(model.quantile.get())
            flagged = threshold is not None and score > threshold
            if learns[index]:
                model.quantile.update(score)
                model.quantile_count += 1
        text = explained[index]
        if type(text) is dict:
            append(AnomalyScore(score, flagged, text))
        else:
            append(AnomalyScore(score, flagged, None, *text))

    changed = detector.changed
    for device_id in learners:
        device = devices[device_id]
        baseline = device.baseline
        baseline.first_start = device.first_start
        baseline.last_hour = device.last_hour
        baseline.last_day = device.last_day
        # assign back: a mapping with write-through sees the change
        baselines[device_id] = baseline
        changed.add(device_id)
    return results


Values = tuple[
    str, str, int, int, Any, float, float | None, float | None, float | None, int
]  # period, device_id, start, end, coverage, energy, power max, mean, min, count


def _of_mapping(window: Mapping[str, Any]) -> Values:
    get = window.get
    return (
        window["period"],
        window["device_id"],
        window["window_start"],
        window["window_end"],
        get("coverage") or 0.0,
        float(get("energy_kwh") or 0.0),
        get("power_max_w"),
        get("power_mean_w"),
        get("power_min_w"),
        get("power_reading_count") or 0,
    )


def _of_emission(emission: Emission) -> Values:
    """``_of_mapping(emission.fields())``, without the dict."""
    acc = emission.acc
    start = emission.window_start
    end = emission.window_end
    pcount = acc.pcount
    return (
        emission.period,
        emission.device_id,
        start,
        end,
        acc.covered / (end - start) or 0.0,
        float(acc.energy or 0.0),
        acc.pmax,
        acc.psum / pcount if pcount else None,
        acc.pmin,
        pcount or 0,
    )


def _hour_columns(
    hours: _Hours,
    detector: AnomalyDetector,
    values: Values,
    position: int,
    row: int,
    rank: int,
    learn: bool,
    time_features: bool,
) -> None:
    """Append one hour window's arguments of ``score_hour``."""
    _, _, start, end, coverage, energy, power_max, power_mean, power_min, power_count = values
    local = detector._local_cache.get(start // _US_PER_HOUR)
    if local is None:
        local = detector._local(start)
    hour, weekday, ordinal = local
    length_h = (end - start) / _US_PER_HOUR
    cover = float(coverage)
    hours.rate.append(
        (energy if energy > 0.0 else 0.0) / (0.1 if cover < 0.1 else cover) / length_h * 1.0
    )
    has_max = power_max is not None
    has_power = has_max and power_mean is not None
    hours.power_max.append(_NAN if power_max is None else power_max)
    hours.has_max.append(has_max)
    hours.has_power.append(has_power)
    hours.power_mean.append(_NAN if power_mean is None else power_mean)
    hours.power_min.append(_NAN if power_min is None else power_min)
    hours.has_range.append(has_power and power_count >= 2 and power_min is not None)
    hours.index.append(position)
    hours.row.append(row)
    hours.rank.append(rank)
    hours.week_slot.append(weekday * 24 + hour)
    hours.daytype_slot.append((weekday >= 5) * 24 + hour)
    hours.learn.append(learn)
    hours.ordinal.append(ordinal)
    hours.length_h.append(length_h)
    hours.coverage.append(coverage)
    if time_features:
        x: dict[str, float] = {}
        add_time(x, hour, weekday)
        hours.time.append(list(x.values()))


def _baselines(
    detector: AnomalyDetector,
    windows: Sequence[tuple[Mapping[str, Any] | Emission, bool]],
    devices: dict[str, _Device],
    hours: _Hours,
    days: list[tuple[int, _Device, int, bool]],
    explained: list[Any],
    day_x: list[dict[str, float]],
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Pass 2: score the windows against their devices' baselines and learn the final ones.
    Fills ``explained`` (per position: a day's dict, an hour's source and place in it) and
    ``day_x`` (the day windows' inputs, in order); returns the hour windows' inputs (a row
    each, in order)."""
    config = detector.config
    params = config.baseline
    n_hours = len(hours.index)
    width = len(HOUR_INPUTS) + (len(_TIME_INPUTS) if config.time_features else 0)
    inputs = np.empty((n_hours, width), dtype=np.float64)
    day_by_rank: dict[int, list[tuple[int, int, _Device, bool]]] = {}
    for order, (position, device, rank, learn) in enumerate(days):
        day_by_rank.setdefault(rank, []).append((order, position, device, learn))
    day_items: list[dict[str, float] | None] = [None] * len(days)
    matrix: BaselineMatrix | None = None
    steps = max(day_by_rank, default=-1) + 1
    if n_hours:
        baselines = [device.baseline for device in devices.values()]  # in row order
        matrix = BaselineMatrix(
            [b.floats for b in baselines],
            [b.counts for b in baselines],
            [b.day_ordinal for b in baselines],
        )
        ranks = np.array(hours.rank, dtype=np.intp)
        steps = max(steps, int(ranks.max()) + 1)
        by_rank = np.argsort(ranks, kind="stable")
        bounds = np.searchsorted(ranks[by_rank], np.arange(steps + 1)).tolist()
        columns = HourStep(
            np.array(hours.row, dtype=np.intp),
            np.array(hours.week_slot, dtype=np.intp),
            np.array(hours.daytype_slot, dtype=np.intp),
            np.array(hours.rate, dtype=np.float64),
            np.array(hours.power_max, dtype=np.float64),
            np.array(hours.has_max, dtype=bool),
            np.array(hours.has_power, dtype=bool),
            np.array(hours.power_min, dtype=np.float64),
            np.array(hours.has_range, dtype=bool),
            np.array(hours.power_mean, dtype=np.float64),
            np.array(hours.learn, dtype=bool),
            np.array(hours.ordinal, dtype=np.int64),
        )
    for step in range(steps):
        if matrix is not None and bounds[step] < bounds[step + 1]:
            chosen = by_rank[bounds[step] : bounds[step + 1]]
            result = matrix.score(params, columns.take(chosen))
            inputs[chosen, : len(HOUR_INPUTS)] = result.inputs
            picked = chosen.tolist()
            source = HourExplanations(
                result, [hours.length_h[k] for k in picked], [hours.coverage[k] for k in picked]
            )
            index = hours.index
            for at, k in enumerate(picked):
                explained[index[k]] = (source, at)
        for order, position, device, learn in day_by_rank.get(step, ()):
            baseline = device.baseline
            if matrix is not None:
                matrix.store(device.row, baseline)
            window = windows[position][0]
            if isinstance(window, Emission):
                window = window.fields()
            x, text = day_window(detector, window, baseline, learn)
            if matrix is not None:
                matrix.load(device.row, baseline)
            day_items[order] = x
            explained[position] = text
    if n_hours and config.time_features:
        inputs[:, len(HOUR_INPUTS) :] = np.array(hours.time, dtype=np.float64)
    if matrix is not None:
        for device in devices.values():
            if device.learned:
                matrix.store(device.row, device.baseline)
    day_x.extend(x for x in day_items if x is not None)
    return inputs


def day_window(
    detector: AnomalyDetector, window: Mapping[str, Any], baseline: DeviceBaseline, learn: bool
) -> tuple[dict[str, float], dict[str, float]]:
    """A day window's model inputs and explanation; its baseline learns it if ``learn``
    (the day path of both ``score_many`` and ``score``)."""
    config = detector.config
    start: int = window["window_start"]
    _, weekday, ordinal = detector._local(start)
    weekend = int(weekday >= 5)
    feats = baseline.day_features(
        config.baseline, weekday, weekend, rate(window, 24.0), ordinal, window.get("power_max_w")
    )
    x = day_inputs(feats)
    if config.time_features:
        add_time(x, 12, weekday)
    text = day_explained(feats, window)
    if learn:
        baseline.learn_day(config.baseline, weekday, weekend, feats, start)
    return x, text


def rate(window: Mapping[str, Any], hours: float) -> float:
    """Energy per ``hours`` of the window, scaled up for time no interval covered (a gap or
    a window still open is judged by what it holds, not penalised for what it lacks)."""
    length_h = float(window["window_end"] - window["window_start"]) / _US_PER_HOUR
    coverage = float(window.get("coverage") or 0.0)
    energy = float(window.get("energy_kwh") or 0.0)
    return max(0.0, energy) / max(coverage, 0.1) / length_h * hours
