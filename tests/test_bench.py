"""The benchmark harness (``python -m bench``) at a tiny size: it runs end to end and its
last line is the JSON summary. No timing is asserted: figures come from ``make bench``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PEERS = {"ours", "aiokafka_raw", "faust_noop", "faust_naive", "quixstreams", "pandas_batch"}


def test_bench_runs_and_ends_with_the_json_summary() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--readings=2000",
            "--devices=20",
            "--runs=1",
            "--only=ours,ours_one_worker,aiokafka_raw",
            "--workers=2",
            "--memory-devices=20",
            "--mature-readings=30",
            "--time-limit=60",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary) == {
        "single",
        "batched",
        "peak_rss_mb",
        "state_bytes_per_device",
        "state_bytes_per_mature_device",
        "readings",
        "workers",
        "ours_one_worker",
    }
    assert summary["readings"] == 2000
    assert summary["workers"] == 2  # ours: two worker processes on two partitions
    for form in ("single", "batched"):
        assert set(summary[form]) == PEERS
        assert summary[form]["ours"] > 0
        assert summary[form]["aiokafka_raw"] > 0
        assert summary[form]["quixstreams"] is None  # not asked for
        assert summary["ours_one_worker"][form] > 0
    assert summary["peak_rss_mb"] > 0
    assert summary["state_bytes_per_device"] > 0
    # device state + baseline: a device with 30 readings carries more than one with 4
    assert summary["state_bytes_per_mature_device"] > summary["state_bytes_per_device"]
    assert "ours" in completed.stdout  # the table
    assert "[bench" in completed.stderr  # progress


@pytest.mark.parametrize("final", [250_000, 850_000, 2_500_000])
def test_the_stored_count_is_polled_rarely_and_tightly_at_the_end(final: int) -> None:
    """A run that stores windows at a steady rate: the harness counts them a few times, not
    every quarter second (each count scans the table on the workers' cores), and it reads
    the end within 0.1 s plus the count it is waiting for."""
    from bench.ours import _poll_interval

    rate = 20_000.0  # windows per second
    finish = final / rate
    elapsed = stored = 0.0
    counts = 0
    while stored < final:
        elapsed += _poll_interval(int(stored), final, elapsed)
        stored = min(final, rate * elapsed)
        counts += 1
    assert elapsed - finish <= 0.1 + 1e-9
    assert counts <= 12 + finish / 2.0  # early counts at most every 2 s, then halving
    quarter_second_counts = finish / 0.25
    assert counts < quarter_second_counts / 2
