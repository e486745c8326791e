"""Online anomaly scores for closed hour and day windows: river Half-Space Trees on features
that compare each window with its device's own learned normal.

Per device, a small baseline (``streams.anomaly_baseline``) learns the usual energy per
hour of the week, peak power and power range, and daily energy per weekday. A window
becomes a handful of z-scores (energy, peak, range, the recent drift of energy; for days
also how odd its hours were), squashed into [0, 1] as Half-Space Trees require. ONE shared
model per period scores them, so memory does not grow with the fleet (a river model of
height h costs about 2^h nodes per tree), and devices teach each other what unusual looks
like. Each window is scored, then learned (only final windows, once each).

Warm-up: the shared model scores 0 until it has learned its first ``window_size`` windows
(Half-Space Trees compare with the previous window of mass). A device is never flagged
before ``warmup_days`` of its windows were learned; its score is reported all the same.
Flagging: ``is_anomaly`` when the score exceeds the running ``flag_quantile`` of the scores
seen so far (river's P-square quantile), or a fixed ``threshold`` if one is configured.

Deterministic given the input order (seeded trees). ``dump``/``load`` checkpoint the shared
models (pickle) and each device's baseline (compact JSON); a restored detector continues
with identical scores.

Examples
--------
>>> detector = AnomalyDetector(AnomalyConfig(hour_model=ModelParams(5, 3, 10)))
>>> hour = 3_600_000_000
>>> for n in range(40):
...     window = {"device_id": "plug-1", "period": "hour", "window_start": n * hour,
...               "window_end": (n + 1) * hour, "energy_kwh": 0.1, "coverage": 1.0,
...               "power_max_w": 120.0, "power_mean_w": 100.0, "power_min_w": 80.0,
...               "power_reading_count": 60}
...     result = detector.score(window)
>>> 0.0 <= result.score <= 1.0, result.is_anomaly
(True, False)
"""

from __future__ import annotations

import base64
import logging
import pickle
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson
from river import anomaly as river_anomaly
from river import stats as river_stats

from streams.anomaly_baseline import DeviceBaseline
from streams.anomaly_batch import day_window, score_batch
from streams.anomaly_config import AnomalyConfig, ModelParams
from streams.anomaly_features import add_time
from streams.anomaly_score import AnomalyScore
from streams.emission import Emission
from streams.hst import ArrayHalfSpaceTrees

logger = logging.getLogger(__name__)

MODEL_VERSION: Final = 1
SCORED_PERIODS: Final = ("hour", "day")
_US_PER_HOUR: Final = 3_600_000_000
_US_PER_DAY: Final = 24 * _US_PER_HOUR


@dataclass
class _PeriodModel:
    params: ModelParams
    seed: int
    flag_quantile: float
    hst: Any = None
    quantile: Any = None
    learned: int = 0
    quantile_count: int = 0
    _arrays: ArrayHalfSpaceTrees | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hst is None:
            self.hst = river_anomaly.HalfSpaceTrees(
                n_trees=self.params.n_trees,
                height=self.params.height,
                window_size=self.params.window_size,
                seed=self.seed,
            )
        if self.quantile is None:
            self.quantile = river_stats.Quantile(self.flag_quantile)

    @property
    def warm(self) -> bool:
        return self.learned >= self.params.window_size

    def arrays(self) -> ArrayHalfSpaceTrees:
        """The array mirror of ``hst`` that scores and learns (``sync`` before saving)."""
        if self._arrays is None or self._arrays.hst is not self.hst:
            self._arrays = ArrayHalfSpaceTrees(self.hst)
        return self._arrays

    def sync(self) -> None:
        if self._arrays is not None and self._arrays.hst is self.hst:
            self._arrays.sync()


@dataclass(slots=True)
class _Pending:
    """A window between the passes of ``AnomalyDetector.score_many``."""

    period: str
    x: dict[str, float]
    final: bool
    learn: bool
    device_warm: bool
    model_warm: bool
    score: float = 0.0
    explained: dict[str, float] = field(default_factory=dict)


@lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class AnomalyDetector:
    """Scores hour and day windows (``Emission.fields()`` dicts); see the module doc."""

    def __init__(
        self,
        config: AnomalyConfig | None = None,
        baselines: MutableMapping[str, DeviceBaseline] | None = None,
    ) -> None:
        self.config = config = config or AnomalyConfig()
        self.baselines: MutableMapping[str, DeviceBaseline] = (
            baselines if baselines is not None else {}
        )
        self.models = {
            "hour": _PeriodModel(config.hour_model, config.seed, config.flag_quantile),
            "day": _PeriodModel(config.day_model, config.seed + 1, config.flag_quantile),
        }
        self.changed: set[str] = set()  # devices whose baseline changed since take_changed()
        self._zone = _zone(config.timezone)
        self._local_cache: dict[int, tuple[int, int, int]] = {}

    # -- scoring -----------------------------------------------------------------------
    def score(self, window: Mapping[str, Any], final: bool = True) -> AnomalyScore:
        """Score one emitted hour or day window, then learn it if it is final and new.

        ``final``: the device's watermark has passed the window's end (every window the
        stream emits on its own is; an idle flush can emit one that is still open). An open
        window is scored against the current state but neither learned nor flagged.
        """
        return self._score_each([(window, final)])[0]

    def score_many(
        self, windows: Sequence[tuple[Mapping[str, Any] | Emission, bool]]
    ) -> list[AnomalyScore]:
        """``score`` for each (window, final) in order, with the same results, faster (a
        window may also be the Emission whose ``fields()`` it would be): the
        baselines of many devices at once, then the Half-Space Trees of each period over
        all its windows, then the flags in order (``streams.anomaly_batch``)."""
        return score_batch(self, windows)

    def _score_each(self, windows: Sequence[tuple[Mapping[str, Any], bool]]) -> list[AnomalyScore]:
        """``score`` of each window in order, a window at a time through its baseline
        (``DeviceBaseline.score_hour``): for single windows, and the reference that
        ``score_many`` must equal (tests/anomaly/test_hour_columns.py).

        Three passes: features in order (a device's baseline learns from its earlier
        windows), then the Half-Space Trees of each period over all its windows at once
        (``streams.hst``: river's numbers), then the flags in order (running quantile).
        """
        pending = self._prepare_all(windows)
        for period, model in self.models.items():
            chosen = [p for p in pending if p.period == period]
            if chosen:
                scores = model.arrays().process([p.x for p in chosen], [p.learn for p in chosen])
                for item, score in zip(chosen, scores.tolist(), strict=True):
                    # min(1.0, max(0.0, score)), spelled out
                    score = score if score > 0.0 else 0.0
                    item.score = score if score < 1.0 else 1.0
        # _flag of each, written out
        config = self.config
        fixed = config.threshold
        min_scores = config.min_scores
        models = self.models
        results: list[AnomalyScore] = []
        append = results.append
        for item in pending:
            flagged = False
            if item.final and item.device_warm and item.model_warm:
                model = models[item.period]
                threshold = fixed
                if threshold is None and model.quantile_count >= min_scores:
                    threshold = float(model.quantile.get())
                flagged = threshold is not None and item.score > threshold
                if item.learn:
                    model.quantile.update(item.score)
                    model.quantile_count += 1
            append(AnomalyScore(item.score, flagged, item.explained))
        return results

    def _prepare_all(self, windows: Sequence[tuple[Mapping[str, Any], bool]]) -> list[_Pending]:
        """``_prepare`` of each window in order; hour windows (most of them) written out."""
        pending: list[_Pending] = []
        append = pending.append
        config = self.config
        params = config.baseline
        time_features = config.time_features
        baselines = self.baselines
        changed = self.changed
        local_cache = self._local_cache
        model = self.models["hour"]
        window_size = model.params.window_size
        warmup_us = config.warmup_days * _US_PER_DAY
        for window, final in windows:
            if window["period"] != "hour":
                append(self._prepare(window, final))
                continue
            device_id: str = window["device_id"]
            start: int = window["window_start"]
            end: int = window["window_end"]
            baseline = baselines.get(device_id)
            if baseline is None:
                baseline = DeviceBaseline()
            local = local_cache.get(start // _US_PER_HOUR)
            if local is None:
                local = self._local(start)
            hour, weekday, ordinal = local
            last = baseline.last_hour
            learn = final and (last is None or start > last)
            # _pending: what the flag needs, before this window is learned
            first = baseline.first_start
            device_warm = first is not None and start - first >= warmup_us
            model_warm = model.learned >= window_size
            if learn:
                model.learned += 1
            get = window.get
            coverage = get("coverage") or 0.0
            # _rate(window, 1.0)
            length_h = float(end - start) / _US_PER_HOUR
            cover = float(coverage)
            energy = float(get("energy_kwh") or 0.0)
            rate = (
                (energy if energy > 0.0 else 0.0) / (0.1 if cover < 0.1 else cover) / length_h * 1.0
            )
            x, explained = baseline.score_hour(
                params,
                weekday * 24 + hour,
                (weekday >= 5) * 24 + hour,
                rate,
                get("power_max_w"),
                get("power_mean_w"),
                get("power_min_w"),
                get("power_reading_count") or 0,
                learn,
                start,
                ordinal,
                (end - start) / _US_PER_HOUR,
                coverage,
            )
            if time_features:
                add_time(x, hour, weekday)
            if learn:
                # _store: assign back (a mapping with write-through sees the change)
                baselines[device_id] = baseline
                changed.add(device_id)
            append(_Pending("hour", x, final, learn, device_warm, model_warm, 0.0, explained))
        return pending

    def _baseline(self, device_id: str) -> DeviceBaseline:
        baseline = self.baselines.get(device_id)
        if baseline is None:
            baseline = DeviceBaseline()
        return baseline

    def _local(self, ts: int) -> tuple[int, int, int]:
        """(local hour, weekday 0=Monday, local date ordinal) of an instant (us)."""
        bucket = ts // _US_PER_HOUR
        cached = self._local_cache.get(bucket)
        if cached is None:
            if len(self._local_cache) > 200_000:
                self._local_cache.clear()
            moment = datetime.fromtimestamp(bucket * 3600, self._zone)
            cached = (moment.hour, moment.weekday(), moment.toordinal())
            self._local_cache[bucket] = cached
        return cached

    def _prepare(self, window: Mapping[str, Any], final: bool) -> _Pending:
        period = window["period"]
        if period == "day":
            return self._prepare_day(window, final)
        raise ValueError(f"only hour and day windows are scored, not {period!r}")

    def _prepare_day(self, window: Mapping[str, Any], final: bool) -> _Pending:
        device_id: str = window["device_id"]
        start: int = window["window_start"]
        baseline = self._baseline(device_id)
        learn = final and (baseline.last_day is None or start > baseline.last_day)
        item = self._pending("day", {}, baseline, start, final, learn)  # before learning
        item.x, item.explained = day_window(self, window, baseline, learn)
        if learn:
            self._store(device_id, baseline)
        return item

    def _pending(
        self,
        period: str,
        x: dict[str, float],
        baseline: DeviceBaseline,
        start: int,
        final: bool,
        learn: bool,
    ) -> _Pending:
        """What the flag needs, taken before this window is learned."""
        model = self.models[period]
        device_warm = (
            baseline.first_start is not None
            and start - baseline.first_start >= self.config.warmup_days * _US_PER_DAY
        )
        item = _Pending(period, x, final, learn, device_warm, model.warm)
        if learn:
            model.learned += 1
        return item

    def _store(self, device_id: str, baseline: DeviceBaseline) -> None:
        # Assign back: a Faust table (or any mapping with write-through) sees the change.
        self.baselines[device_id] = baseline
        self.changed.add(device_id)

    def take_changed(self) -> set[str]:
        """Devices whose baseline changed since the last call (checkpoint those)."""
        changed, self.changed = self.changed, set()
        return changed

    # -- checkpoints -------------------------------------------------------------------
    def dump_model(self) -> bytes:
        """The shared models and thresholds (pickle: trusted storage only)."""
        for model in self.models.values():
            model.sync()
        state = {
            "version": MODEL_VERSION,
            "periods": {
                period: {
                    "params": asdict(model.params),
                    "hst": model.hst,
                    "quantile": model.quantile,
                    "learned": model.learned,
                    "quantile_count": model.quantile_count,
                }
                for period, model in self.models.items()
            },
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def load_model(self, data: bytes) -> None:
        """Restore ``dump_model`` output. A model built with other ModelParams is dropped
        (logged): it restarts its warm-up while the baselines are kept."""
        state = pickle.loads(data)  # our own checkpoint: trusted
        if state.get("version") != MODEL_VERSION:
            raise ValueError(f"unknown anomaly model version {state.get('version')!r}")
        for period, saved in state["periods"].items():
            model = self.models.get(period)
            if model is None:
                continue
            if ModelParams(**saved["params"]) != model.params:
                logger.warning(
                    "anomaly model for %s windows was built with other parameters; "
                    "starting it afresh",
                    period,
                )
                continue
            model.hst = saved["hst"]
            model.quantile = saved["quantile"]
            model.learned = saved["learned"]
            model.quantile_count = saved["quantile_count"]

    def dump_baseline(self, device_id: str) -> bytes | None:
        baseline = self.baselines.get(device_id)
        return None if baseline is None else baseline.dump()

    def load_baseline(self, device_id: str, data: bytes | str) -> None:
        self.baselines[device_id] = DeviceBaseline.load(data)

    def dump(self) -> bytes:
        """Everything: the shared models and every device's baseline (base64 of its binary
        dump), as one JSON document."""
        return orjson.dumps(
            {
                "model": base64.b64encode(self.dump_model()).decode(),
                "baselines": {
                    device_id: base64.b64encode(baseline.dump()).decode()
                    for device_id, baseline in self.baselines.items()
                },
            }
        )

    def load(self, data: bytes) -> None:
        """Restore ``dump`` output; baselines written as JSON text (format version 1, which
        base64 never starts with ``{``) load too."""
        doc = orjson.loads(data)
        self.load_model(base64.b64decode(doc["model"]))
        for device_id, baseline in doc["baselines"].items():
            if baseline.startswith("{"):
                self.load_baseline(device_id, baseline)
            else:
                self.load_baseline(device_id, base64.b64decode(baseline, validate=True))
