"""The labelled generator and the evaluation run end to end (on a small fleet)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from eval.anomaly import run
from eval.generator import KINDS, Dataset, generate, read_labels


def test_generator_is_deterministic_and_labels_every_kind() -> None:
    first = generate(seed=11, devices=12, weeks=2)
    second = generate(seed=11, devices=12, weeks=2)
    assert first.lines == second.lines
    assert first.labels == second.labels
    assert generate(seed=12, devices=2, weeks=1).lines[:50] != first.lines[:50]
    kinds = Counter(kind for (_, period, _), kind in first.labels.items() if period == "hour")
    assert set(kinds) == set(KINDS), kinds
    assert 0.01 < sum(kinds.values()) / (12 * 14 * 24) < 0.2
    profiles = {d.profile for d in first.devices}
    assert profiles == {"household", "office", "shop", "always_on"}
    assert any(d.reports_energy and not d.reports_power for d in first.devices)


def test_labels_round_trip_through_the_file(small_dataset: Dataset, tmp_path: Path) -> None:
    readings, labels = small_dataset.write(tmp_path)
    assert readings.read_bytes().count(b"\n") == len(small_dataset.lines)
    assert read_labels(labels) == small_dataset.labels


def test_evaluation_compares_both_methods(small_dataset: Dataset) -> None:
    report = run(dataset=small_dataset)
    assert [p.period for p in report.periods] == ["hour", "day"]
    hour = report.periods[0]
    assert hour.windows > 1000
    overall = hour.metrics["overall"]
    assert overall.positives == hour.positives > 0
    for value in (overall.hst_auc, overall.hst_ap, overall.if_auc, overall.if_ap):
        assert 0.0 <= value <= 1.0
    assert len(report.hst_us) == sum(p.windows for p in report.periods)
    text = report.markdown()
    assert "| overall |" in text and "IsolationForest" in text
