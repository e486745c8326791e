"""``energy-processing produce``: file lines arrive as-is and keyed; batching; simulation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from service.cli import main
from service.produce import Message, messages_from_lines, messages_from_readings, parse_duration
from tests.plugins.kafka import read_topic

LINES = [
    b'{"device_id": "meter-1", "timestamp": "2025-01-01T00:00:00Z", "power_w": 100}',
    b'{"device_id": "meter-2", "timestamp": 1735689600, "energy_kwh": 12.5}',
    b"",
    b'[{"device_id": "meter-1", "timestamp": "2025-01-01T00:01:00Z", "power_w": 110},'
    b' {"device_id": "meter-1", "timestamp": "2025-01-01T00:02:00Z", "power_w": 120}]',
    b'{"device_id": "meter-3", "timestamp": "2025-01-01T00:00:00Z", "power_w": NaN}',
    b'{"timestamp": "2025-01-01T00:00:00Z", "power_w": 5}',
]


def test_lines_are_sent_as_is_with_device_keys() -> None:
    messages = list(messages_from_lines(LINES))
    assert [m.value for m in messages] == [line for line in LINES if line]
    assert [m.key for m in messages] == [b"meter-1", b"meter-2", b"meter-1", None, None]
    assert [m.readings for m in messages] == [1, 1, 2, 1, 1]


def test_batching_groups_readings_per_device() -> None:
    lines = [
        orjson.dumps({"device_id": f"meter-{i % 2}", "timestamp": i, "power_w": i})
        for i in range(7)
    ]
    messages = list(messages_from_lines(lines, batch=3))
    by_key: dict[bytes | None, list[Message]] = {}
    for message in messages:
        by_key.setdefault(message.key, []).append(message)
    assert sorted(m.readings for m in by_key[b"meter-0"]) == [1, 3]
    assert sorted(m.readings for m in by_key[b"meter-1"]) == [3]
    for message in messages:
        batch = orjson.loads(message.value)
        assert isinstance(batch, list)
        assert {item["device_id"].encode() for item in batch} == {message.key}
    timestamps = [r["timestamp"] for m in by_key[b"meter-0"] for r in orjson.loads(m.value)]
    assert timestamps == [0, 2, 4, 6]  # per-device order is kept


def test_readings_batching_matches_line_batching() -> None:
    readings: list[dict[str, str | float]] = [
        {"device_id": f"d{i % 3}", "timestamp": float(i), "power_w": 1.0} for i in range(10)
    ]
    from_readings = list(messages_from_readings(readings, batch=2))
    from_lines = list(messages_from_lines((orjson.dumps(r) for r in readings), batch=2))
    assert from_readings == from_lines


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("6h", 21600), ("2d", 172800)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration("soon")


@pytest.mark.integration
def test_produce_file_arrives_on_topic(
    kafka_bootstrap: str, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    path = tmp_path / "readings.jsonl"
    path.write_bytes(b"\n".join(LINES) + b"\n")
    topic = topic_name("readings")

    code = main(["produce", str(path), "--bootstrap", kafka_bootstrap, "--topic", topic])

    assert code == 0
    records = asyncio.run(read_topic(kafka_bootstrap, topic, expected=5))
    assert len(records) == 5
    assert sorted(r.value or b"" for r in records) == sorted(line for line in LINES if line)
    keyed = {r.value: r.key for r in records}
    assert keyed[LINES[0]] == b"meter-1"


@pytest.mark.integration
def test_produce_simulated_batches(kafka_bootstrap: str, topic_name: Callable[[str], str]) -> None:
    topic = topic_name("simulated")
    code = main(
        [
            "produce",
            "--simulate",
            "--devices",
            "5",
            "--duration",
            "30m",
            "--step",
            "60",
            "--batch",
            "10",
            "--bootstrap",
            kafka_bootstrap,
            "--topic",
            topic,
        ]
    )
    assert code == 0
    records = asyncio.run(read_topic(kafka_bootstrap, topic, expected=15))
    readings = [reading for r in records for reading in orjson.loads(r.value or b"")]
    assert 140 <= len(readings) <= 160  # 5 devices x 30 readings, give or take one at the edges
    for record in records:
        assert {x["device_id"] for x in orjson.loads(record.value or b"")} == {
            (record.key or b"").decode()
        }


def test_produce_needs_file_or_simulate(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["produce"])
    assert raised.value.code == 2
    assert "FILE or --simulate" in capsys.readouterr().err


CSV = (
    "\ufeffdevice_id,timestamp,power_w,energy_kwh,note\n"
    "meter-1,2025-01-01T00:00:00Z,100,,first\n"
    "meter-1,1735689660,110.5,12.25,\n"
    "meter-2,1735689600.5,abc,,\n"
    "meter-2,2025-01-01T00:01:00+01:00,nan,1e999,\n"
)


def test_csv_rows_become_reading_objects_with_numbers() -> None:
    from service.produce import readings_from_csv

    rows = list(readings_from_csv(CSV.encode().splitlines(keepends=True)))
    assert rows == [
        {
            "device_id": "meter-1",
            "timestamp": "2025-01-01T00:00:00Z",
            "power_w": 100,
            "note": "first",
        },
        {"device_id": "meter-1", "timestamp": 1735689660, "power_w": 110.5, "energy_kwh": 12.25},
        # not numbers: sent as text, so the worker rejects them (invalid_schema), never null
        {"device_id": "meter-2", "timestamp": 1735689600.5, "power_w": "abc"},
        {
            "device_id": "meter-2",
            "timestamp": "2025-01-01T00:01:00+01:00",
            "power_w": "nan",
            "energy_kwh": "1e999",
        },
    ]


def test_csv_without_required_columns_is_refused() -> None:
    from service.produce import readings_from_csv

    with pytest.raises(ValueError, match="timestamp"):
        list(readings_from_csv([b"device_id,power_w\n", b"m,1\n"]))


def test_csv_batches_per_device() -> None:
    from service.produce import messages_from_csv

    messages = list(messages_from_csv(CSV.encode().splitlines(keepends=True), batch=2))
    assert [(m.key, m.readings) for m in messages] == [(b"meter-1", 2), (b"meter-2", 2)]
    assert orjson.loads(messages[0].value)[1]["energy_kwh"] == 12.25


def test_produce_csv_file_arrives_on_topic(
    kafka_bootstrap: str,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "readings.csv"
    path.write_text(CSV, encoding="utf-8")
    topic = topic_name("csv")
    assert main(["produce", str(path), "--bootstrap", kafka_bootstrap, "--topic", topic]) == 0
    records = asyncio.run(read_topic(kafka_bootstrap, topic, expected=4))
    stamps = [orjson.loads(r.value or b"null")["timestamp"] for r in records if r.key == b"meter-1"]
    assert sorted(map(str, stamps)) == ["1735689660", "2025-01-01T00:00:00Z"]
    assert "100.0%" in capsys.readouterr().err
    assert main(["produce", str(tmp_path / "missing.csv"), "--bootstrap", kafka_bootstrap]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("device_id,power_w\nm,1\n")
    assert main(["produce", str(bad), "--bootstrap", kafka_bootstrap, "--topic", topic]) == 2
