"""Interpreter settings for the worker process: the cyclic garbage collector's thresholds.

A worker keeps every active device's state, windows and baseline as Python objects (millions
of them with thousands of devices) and allocates several objects per reading and window. With
CPython's default thresholds (700, 10, 10) the collector ran a young collection every 700 new
objects and, every hundred of those, a full one over the whole heap: about 30 % of the batch
step's time in the benchmark (``python -m bench.offline batched``: 16k -> 22k readings/s
with the thresholds below). Almost nothing the fold allocates is cyclic garbage: objects are
freed by reference counting, so collecting less often costs little memory.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)

# New container objects between young collections (CPython's default: 700).
YOUNG_THRESHOLD = 50_000


def tune_gc() -> tuple[int, int, int]:
    """Raise the young-generation threshold and move what exists now (modules, the app,
    configuration) out of the collector's sight (``gc.freeze``); returns the thresholds set.
    Idempotent."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    thresholds = gc.get_threshold()
    logger.debug("garbage collector thresholds %s", thresholds)
    return thresholds
