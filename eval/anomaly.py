"""Online Half-Space Trees versus the batch IsolationForest they replace, on labelled data.

The readings of ``eval.generator`` go through the stream code exactly as
``energy-processing score`` runs it (``streams.anomaly_stream.score_lines`` over the JSONL
file, batches of 1000 lines, a flush at the end); every hour and day window's final
revision is kept with its online score. The old approach is then fitted in batch on the
same windows: scikit-learn's IsolationForest (100 trees, fixed seed) per period over the
aggregated features the old service used (energy_kwh, power_mean_w, power_max_w, hour of
day, weekday; a counter-only window's mean and max power are its average power), scored
with ``-score_samples``. Both are compared by ROC AUC and average precision over the same
windows, overall and per anomaly kind (that kind's windows against the normal ones).
Nothing here tunes on the labels.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score

from eval.generator import KINDS, Dataset, LabelKey, generate
from streams.anomaly_config import AnomalyConfig
from streams.anomaly_stream import ScoredWindow, StreamScorer, score_lines
from streams.config import ProcessingConfig

PERIODS = ("hour", "day")


@dataclass
class Metric:
    positives: int
    hst_auc: float
    hst_ap: float
    if_auc: float
    if_ap: float


@dataclass
class PeriodReport:
    period: str
    windows: int
    positives: int
    metrics: dict[str, Metric]  # "overall" and each kind
    flagged: int
    flagged_true: int


@dataclass
class Report:
    seed: int
    devices: int
    weeks: int
    readings: int
    generate_s: float
    stream_s: float
    if_s: float
    hst_us: list[float] = field(default_factory=list)  # per scored window
    periods: list[PeriodReport] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"Data: seed {self.seed}, {self.devices} devices, {self.weeks} weeks, "
            f"{self.readings:,} readings (generated in {self.generate_s:.1f} s).",
            "",
        ]
        for report in self.periods:
            lines.append(
                f"**{report.period} windows**: {report.windows:,}, of which "
                f"{report.positives:,} anomalous."
            )
            lines.append("")
            lines.append(
                "| kind | windows | HST ROC AUC | HST AP | IsolationForest ROC AUC | "
                "IsolationForest AP |"
            )
            lines.append("|---|---:|---:|---:|---:|---:|")
            for kind, m in report.metrics.items():
                lines.append(
                    f"| {kind} | {m.positives:,} | {m.hst_auc:.3f} | {m.hst_ap:.3f} | "
                    f"{m.if_auc:.3f} | {m.if_ap:.3f} |"
                )
            precision = report.flagged_true / report.flagged if report.flagged else 0.0
            recall = report.flagged_true / report.positives if report.positives else 0.0
            lines.append("")
            lines.append(
                f"Flagged online (`is_anomaly`): {report.flagged:,} windows, precision "
                f"{precision:.2f}, recall {recall:.2f}."
            )
            lines.append("")
        us = sorted(self.hst_us)
        median = statistics.median(us) if us else 0.0
        p99 = us[int(0.99 * (len(us) - 1))] if us else 0.0
        lines.append(
            f"Online scoring cost (features + score + learn, per window): median "
            f"{median:.0f} us, p99 {p99:.0f} us over {len(us):,} windows. Stream fold and "
            f"scoring of the whole file: {self.stream_s:.1f} s. IsolationForest fit and "
            f"score (both periods, batch): {self.if_s:.1f} s."
        )
        return "\n".join(lines)


def _utc(start_us: int) -> datetime:
    return datetime.fromtimestamp(start_us / 1e6, tz=UTC)


def old_features(windows: Sequence[ScoredWindow]) -> np.ndarray[Any, Any]:
    """The old service's per-window features (see module doc)."""
    rows = []
    for window in windows:
        f = window.fields
        hours = (f["window_end"] - f["window_start"]) / 3.6e9
        average_w = (f["energy_kwh"] or 0.0) * 1000.0 / hours
        mean_w = f["power_mean_w"] if f["power_mean_w"] is not None else average_w
        max_w = f["power_max_w"] if f["power_max_w"] is not None else average_w
        start = _utc(f["window_start"])  # the evaluation runs with TIMEZONE=UTC
        rows.append([f["energy_kwh"], mean_w, max_w, start.hour, start.weekday()])
    return np.asarray(rows, dtype=float)


def isolation_forest_scores(windows: Sequence[ScoredWindow], seed: int = 0) -> np.ndarray[Any, Any]:
    features = old_features(windows)
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(features)
    scores: np.ndarray[Any, Any] = -forest.score_samples(features)
    return scores


def _metric(
    labels: np.ndarray[Any, Any], hst: np.ndarray[Any, Any], iso: np.ndarray[Any, Any]
) -> Metric:
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        return Metric(positives, float("nan"), float("nan"), float("nan"), float("nan"))
    return Metric(
        positives,
        float(roc_auc_score(labels, hst)),
        float(average_precision_score(labels, hst)),
        float(roc_auc_score(labels, iso)),
        float(average_precision_score(labels, iso)),
    )


def evaluate(
    dataset: Dataset,
    readings_path: Path,
    processing: ProcessingConfig | None = None,
    anomaly: AnomalyConfig | None = None,
    batch_size: int = 1000,
) -> tuple[dict[LabelKey, ScoredWindow], list[int], float]:
    """Score the readings file as ``energy-processing score`` does; detector ns per window."""
    processing = processing or ProcessingConfig(future_tolerance_s=1e12)
    timings: list[int] = []
    scorer = StreamScorer(processing, anomaly, timings=timings)
    began = time.perf_counter()
    with readings_path.open("rb") as lines:
        windows = {_label_key(w): w for w in score_lines(lines, scorer, batch_size=batch_size)}
    return windows, timings, time.perf_counter() - began


def run(
    seed: int = 2,
    devices: int = 64,
    weeks: int = 8,
    folder: Path | None = None,
    anomaly: AnomalyConfig | None = None,
    dataset: Dataset | None = None,
) -> Report:
    """Generate (or take) a data set, score it online, fit the baseline, compare."""
    began = time.perf_counter()
    if dataset is None:
        dataset = generate(seed=seed, devices=devices, weeks=weeks)
    else:
        devices = len(dataset.devices)
        weeks = round((dataset.end - dataset.start) / (7 * 86400))
    generate_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory(prefix="eval-anomaly-") as scratch:
        target = folder or Path(scratch)
        readings_path, _ = dataset.write(target)
        windows, timings, stream_s = evaluate(dataset, readings_path, anomaly=anomaly)
    report = Report(seed, devices, weeks, len(dataset.lines), generate_s, stream_s, 0.0)
    report.hst_us = [t / 1000 for t in timings]
    for period in PERIODS:
        chosen = [w for key, w in windows.items() if key[1] == period]
        kinds = np.array([dataset.labels.get(_label_key(w), "") for w in chosen])
        hst = np.array([w.result.score for w in chosen])
        fit_began = time.perf_counter()
        iso = isolation_forest_scores(chosen, seed=0)
        report.if_s += time.perf_counter() - fit_began
        anomalous = kinds != ""
        metrics = {"overall": _metric(anomalous, hst, iso)}
        for kind in KINDS:
            mask = (kinds == "") | (kinds == kind)
            metrics[kind] = _metric(anomalous[mask], hst[mask], iso[mask])
        flags = np.array([w.result.is_anomaly for w in chosen], dtype=bool)
        report.periods.append(
            PeriodReport(
                period,
                len(chosen),
                int(anomalous.sum()),
                metrics,
                int(flags.sum()),
                int((flags & anomalous).sum()),
            )
        )
    return report


def _label_key(window: ScoredWindow) -> LabelKey:
    e = window.emission
    return (e.device_id, e.period, e.window_start)
