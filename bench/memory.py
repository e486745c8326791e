"""State size and memory per device, in a process of its own so its RSS is its own.

``python -m bench.memory DEVICES PER_DEVICE`` folds the benchmark's workload through the
worker's code path without Kafka (StreamProcessor and the anomaly detector, batches of
2,000 messages) and prints one JSON object: serialized state bytes per device (the device
state as written to its changelog, and the anomaly baseline), resident memory before and
after, and the growth per device.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import orjson

from bench.workload import generate
from streams.anomaly_stream import StreamScorer
from streams.config import ProcessingConfig


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(devices: int, per_device: int) -> dict[str, float]:
    workload = generate(devices * per_device, devices)
    values = [value for _, value in workload.single]
    del workload
    gc.collect()
    before = rss_mb()
    scorer = StreamScorer(ProcessingConfig())
    wall = time.time()
    for start in range(0, len(values), 2000):
        scorer.process(values[start : start + 2000], int(wall * 1e6), wall)
    gc.collect()
    after = rss_mb()
    states = scorer.states
    state_bytes = sum(len(s.to_bytes()) for s in states.values()) / len(states)
    baselines = scorer.detector.baselines
    baseline_bytes = sum(len(b.dump()) for b in baselines.values()) / max(len(baselines), 1)
    return {
        "devices": devices,
        "state_bytes_per_device": round(state_bytes, 1),
        "baseline_bytes_per_device": round(baseline_bytes, 1),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(after, 1),
        "rss_bytes_per_device": round((after - before) * 1024 * 1024 / devices, 1),
    }


if __name__ == "__main__":
    print(orjson.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))).decode())
