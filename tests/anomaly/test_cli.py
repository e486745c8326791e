"""``energy-processing score``: one line per hour and day window, with the current settings."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from eval.generator import Dataset
from service.cli import main

HOUR_S = 3600
DAY_S = 86400


def _timestamp(value: object) -> float:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    assert isinstance(value, float | int)
    return float(value)


def _expected_windows(lines: list[bytes]) -> int:
    """Readings every 5-15 minutes, no gaps: every UTC hour and day from a device's first
    to its last reading holds readings, so each is emitted once."""
    spans: dict[str, tuple[float, float]] = {}
    for line in lines:
        doc = orjson.loads(line)
        ts = _timestamp(doc["timestamp"])
        first, last = spans.get(doc["device_id"], (ts, ts))
        spans[doc["device_id"]] = (min(first, ts), max(last, ts))
    total = 0
    for first, last in spans.values():
        total += int(last // HOUR_S - first // HOUR_S) + 1
        total += int(last // DAY_S - first // DAY_S) + 1
    return total


def test_score_writes_one_line_per_hour_and_day_window(
    small_dataset: Dataset,
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = small_dataset.lines[:3000]
    source = tmp_path / "readings.jsonl"
    with source.open("wb") as out:
        for index, line in enumerate(lines):
            if index % 100 == 0:  # extra fields are ignored
                line = line[:-1] + b',"firmware":"1.2.3","rssi":-70}'
            out.write(line + b"\n")
        out.write(b"not json\n\n")
    target = tmp_path / "scores.jsonl"
    assert main(["score", "--input", str(source), "--output", str(target), "--batch", "250"]) == 0
    rows = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert len(rows) == _expected_windows(lines)
    keys = {(r["device_id"], r["period"], r["window_start"]) for r in rows}
    assert len(keys) == len(rows)
    for row in rows:
        assert row["period"] in ("hour", "day")
        assert row["window_start"].endswith(":00:00Z")
        assert 0.0 <= row["anomaly_score"] <= 1.0
        assert isinstance(row["is_anomaly"], bool)
        assert row["energy_kwh"] >= 0 and math.isfinite(row["energy_kwh"])
        assert row["revision"] == 0
        assert {"energy_z", "expected_kwh"} <= set(row["features"])
    err = capsys.readouterr().err
    assert "1 rejected" in err
    assert f"{len(rows):,} windows" in err


def test_score_uses_the_settings_time_zone(
    small_dataset: Dataset, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("TIMEZONE", "Europe/Berlin")
    source = tmp_path / "readings.jsonl"
    source.write_bytes(b"\n".join(small_dataset.lines[:2000]) + b"\n")
    target = tmp_path / "scores.jsonl"
    assert main(["score", "--input", str(source), "--output", str(target)]) == 0
    days = [r for r in map(orjson.loads, target.read_bytes().splitlines()) if r["period"] == "day"]
    assert days
    assert all(r["window_start"].endswith("T23:00:00Z") for r in days)  # local midnight


def test_score_reads_stdin_and_writes_stdout(small_dataset: Dataset) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TIMEZONE", "GRACE")}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "score", "--input", "-", "--output", "-"],
        input=b"\n".join(small_dataset.lines[:600]),
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == _expected_windows(small_dataset.lines[:600])
    assert b"windows" in result.stderr


def test_score_missing_input_is_a_usage_error(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert main(["score", "--input", str(missing), "--output", str(tmp_path / "o")]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
