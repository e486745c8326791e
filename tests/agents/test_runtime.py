"""The worker's garbage-collector settings (agents/runtime.py)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from agents.runtime import YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_tune_gc_raises_the_young_threshold_and_freezes_what_exists(restored_gc: None) -> None:
    gc.set_threshold(700, 10, 10)
    gc.unfreeze()
    existing = [[index] for index in range(1000)]  # containers alive before the call
    assert gc.get_freeze_count() == 0
    assert tune_gc() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() >= len(existing)
    assert tune_gc() == (YOUNG_THRESHOLD, 10, 10)  # idempotent


def test_cyclic_garbage_is_still_collected(restored_gc: None) -> None:
    tune_gc()

    class Node:
        pass

    collected = []
    node = Node()
    node.self = node  # type: ignore[attr-defined]
    weakref.finalize(node, lambda: collected.append(True))
    del node
    gc.collect()
    assert collected == [True]
