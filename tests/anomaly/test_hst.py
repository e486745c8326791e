"""The array Half-Space Trees give river's scores exactly, whatever the batch split."""

from __future__ import annotations

import pickle
import random

import pytest
from river.anomaly import HalfSpaceTrees

from streams.hst import ArrayHalfSpaceTrees


def _samples(rng: random.Random, n: int) -> list[dict[str, float]]:
    # Ties on thresholds are unlikely with random floats; exact 0, 0.5 and 1 test the edges.
    return [
        {
            f"f{i}": rng.random() if rng.random() > 0.1 else rng.choice([0.0, 0.5, 1.0])
            for i in range(5)
        }
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    ("n_trees", "height", "window_size"), [(25, 8, 250), (25, 6, 100), (3, 3, 5), (4, 2, 1)]
)
def test_scores_equal_rivers_in_any_batches(n_trees: int, height: int, window_size: int) -> None:
    rng = random.Random(n_trees * 100 + height)
    samples = _samples(rng, 1200)
    learn = [rng.random() < 0.8 for _ in samples]
    river = HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=42)
    expected = []
    for x, flag in zip(samples, learn, strict=True):
        expected.append(float(river.score_one(x)))
        if flag:
            river.learn_one(x)
    arrays = ArrayHalfSpaceTrees(
        HalfSpaceTrees(n_trees=n_trees, height=height, window_size=window_size, seed=42)
    )
    got: list[float] = []
    position = 0
    while position < len(samples):
        size = rng.choice([1, 2, 7, 100, 333])
        got.extend(
            arrays.process(
                samples[position : position + size], learn[position : position + size]
            ).tolist()
        )
        position += size
    assert got == expected


def test_synced_river_model_continues_identically() -> None:
    rng = random.Random(5)
    samples = _samples(rng, 700)
    river = HalfSpaceTrees(n_trees=10, height=5, window_size=50, seed=3)
    arrays = ArrayHalfSpaceTrees(HalfSpaceTrees(n_trees=10, height=5, window_size=50, seed=3))
    for x in samples[:400]:
        river.score_one(x)
        river.learn_one(x)
    arrays.process(samples[:400], [True] * 400)
    arrays.sync()
    restored = pickle.loads(pickle.dumps(arrays.hst))
    for x in samples[400:]:
        assert restored.score_one(x) == river.score_one(x)
        restored.learn_one(x)
        river.learn_one(x)


def test_nothing_learned_scores_zero() -> None:
    arrays = ArrayHalfSpaceTrees(HalfSpaceTrees(n_trees=3, height=3, window_size=5, seed=1))
    samples = _samples(random.Random(2), 4)
    assert arrays.process(samples, [False] * 4).tolist() == [0.0] * 4
    assert not arrays.ready


def test_single_feature_equals_river() -> None:
    rng = random.Random(4)
    samples = [{"only": rng.random()} for _ in range(300)]
    river = HalfSpaceTrees(n_trees=4, height=3, window_size=10, seed=2)
    expected = []
    for x in samples:
        expected.append(float(river.score_one(x)))
        river.learn_one(x)
    arrays = ArrayHalfSpaceTrees(HalfSpaceTrees(n_trees=4, height=3, window_size=10, seed=2))
    assert arrays.process(samples, [True] * len(samples)).tolist() == expected
