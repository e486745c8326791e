"""One test per rule of SEMANTICS.md, with hand-computed expectations."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from models.tariff import Tariff
from streams.config import ProcessingConfig
from streams.device_state import DeviceState
from streams.processor import StreamProcessor
from streams.timeparse import parse_rfc3339 as ts

NOW = ts("2030-01-01T00:00:00Z")
H = 3_600_000_000


def msg(device: str, stamp: str, power: float | None = None, energy: float | None = None) -> bytes:
    doc: dict[str, Any] = {"device_id": device, "timestamp": stamp}
    if power is not None:
        doc["power_w"] = power
    if energy is not None:
        doc["energy_kwh"] = energy
    return orjson.dumps(doc)


def run(
    values: list[bytes], config: ProcessingConfig | None = None, flush: bool = True
) -> tuple[dict[tuple[str, str], dict[str, Any]], StreamProcessor]:
    processor = StreamProcessor(config or ProcessingConfig())
    states: dict[str, DeviceState] = {}
    result = processor.process_messages(values, states, NOW, wall=0.0)
    emissions = list(result.emissions)
    if flush:
        for device, state in states.items():
            emissions.extend(processor.flush(device, state))
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for e in emissions:
        f = e.fields()
        latest[(e.period, _iso(e.window_start))] = f
    return latest, processor


def _iso(us: int) -> str:
    from streams.timeparse import format_us

    return format_us(us)


def test_counter_reset_mid_hour_counts_the_new_register_value() -> None:
    windows, _ = run(
        [
            msg("m", "2026-05-01T10:00:00Z", energy=100.0),
            msg("m", "2026-05-01T10:20:00Z", energy=101.0),  # +1.0
            msg("m", "2026-05-01T10:40:00Z", energy=0.25),  # reset: +0.25
            msg("m", "2026-05-01T11:00:00Z", energy=0.75),  # +0.5
        ]
    )
    hour = windows[("hour", "2026-05-01T10:00:00Z")]
    assert hour["energy_kwh"] == pytest.approx(1.75)
    assert hour["coverage"] == pytest.approx(1.0)
    assert hour["reading_count"] == 3
    assert hour["cost"] == Decimal("0.30") * Decimal("1.75")


def test_spike_interval_is_discarded_and_counted() -> None:
    config = ProcessingConfig(max_power_w=10_000)
    windows, processor = run(
        [
            msg("m", "2026-05-01T10:00:00Z", energy=1.0),
            msg("m", "2026-05-01T10:30:00Z", energy=2.0),  # 2 kW: fine
            msg("m", "2026-05-01T10:31:00Z", energy=50.0),  # 48 kWh in 60 s: spike
            msg("m", "2026-05-01T11:00:00Z", energy=50.5),
        ],
        config,
    )
    hour = windows[("hour", "2026-05-01T10:00:00Z")]
    assert hour["energy_kwh"] == pytest.approx(1.5)
    assert hour["coverage"] == pytest.approx(59 / 60)
    # the last interval is frozen only when the watermark passes it: flush does not count
    assert processor.counters.spikes in (0, 1)


def test_spike_counted_once_frozen() -> None:
    config = ProcessingConfig(max_power_w=10_000, grace_s=0)
    _, processor = run(
        [
            msg("m", "2026-05-01T10:00:00Z", energy=1.0),
            msg("m", "2026-05-01T10:01:00Z", energy=50.0),
            msg("m", "2026-05-01T10:02:00Z", energy=50.1),
        ],
        config,
    )
    assert processor.counters.spikes == 1


def test_power_gap_longer_than_max_gap_contributes_nothing() -> None:
    windows, _ = run(
        [
            msg("p", "2026-05-01T10:00:00Z", power=1000.0),
            msg("p", "2026-05-01T10:30:00Z", power=2000.0),  # 0.5 kWh
            msg("p", "2026-05-01T12:00:00Z", power=500.0),  # 90 min > MAX_GAP 60 min: gap
            msg("p", "2026-05-01T12:30:00Z", power=0.0),  # 0.25 kWh
        ],
        ProcessingConfig(max_gap_s=3600),
    )
    assert windows[("hour", "2026-05-01T10:00:00Z")]["energy_kwh"] == pytest.approx(0.5)
    assert windows[("hour", "2026-05-01T10:00:00Z")]["coverage"] == pytest.approx(0.5)
    assert ("hour", "2026-05-01T11:00:00Z") not in windows
    assert windows[("hour", "2026-05-01T12:00:00Z")]["energy_kwh"] == pytest.approx(0.25)
    assert windows[("hour", "2026-05-01T12:00:00Z")]["power_mean_w"] == pytest.approx(250.0)
    assert windows[("hour", "2026-05-01T12:00:00Z")]["power_min_w"] == 0.0


def test_power_interval_exactly_max_gap_counts() -> None:
    windows, _ = run(
        [
            msg("p", "2026-05-01T10:00:00Z", power=1000.0),
            msg("p", "2026-05-01T11:00:00Z", power=0.0),
        ]
    )
    assert windows[("hour", "2026-05-01T10:00:00Z")]["energy_kwh"] == pytest.approx(1.0)


def test_counter_interval_over_hours_and_local_midnight_is_spread_uniformly() -> None:
    config = ProcessingConfig(timezone="Europe/Berlin")
    # 20:30Z .. 23:30Z = 3 h; Berlin (CEST, +2) midnight is at 22:00Z.
    windows, _ = run(
        [
            msg("c", "2026-06-10T20:30:00Z", energy=10.0),
            msg("c", "2026-06-10T23:30:00Z", energy=16.0),
        ],
        config,
    )
    assert windows[("hour", "2026-06-10T20:00:00Z")]["energy_kwh"] == pytest.approx(1.0)
    assert windows[("hour", "2026-06-10T21:00:00Z")]["energy_kwh"] == pytest.approx(2.0)
    assert windows[("hour", "2026-06-10T22:00:00Z")]["energy_kwh"] == pytest.approx(2.0)
    assert windows[("hour", "2026-06-10T23:00:00Z")]["energy_kwh"] == pytest.approx(1.0)
    assert windows[("day", "2026-06-09T22:00:00Z")]["energy_kwh"] == pytest.approx(3.0)
    assert windows[("day", "2026-06-10T22:00:00Z")]["energy_kwh"] == pytest.approx(3.0)
    assert windows[("day", "2026-06-10T22:00:00Z")]["window_end"] == ts("2026-06-11T22:00:00Z")


@pytest.mark.parametrize(
    ("day_start", "day_end", "hours"),
    [
        ("2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z", 23),  # spring forward
        ("2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z", 25),  # fall back
    ],
)
def test_berlin_dst_days_are_23_and_25_hours(day_start: str, day_end: str, hours: int) -> None:
    config = ProcessingConfig(timezone="Europe/Berlin")
    start = ts(day_start)
    values = [
        orjson.dumps(
            {"device_id": "d", "timestamp": (start + i * H) // 1_000_000, "power_w": 1000.0}
        )
        for i in range(hours + 1)
    ]
    windows, _ = run(values, config)
    day = windows[("day", day_start)]
    assert day["window_end"] == ts(day_end)
    assert day["energy_kwh"] == pytest.approx(hours * 1.0)
    assert day["coverage"] == pytest.approx(1.0)
    assert day["reading_count"] == hours


def test_kolkata_half_hour_offset_days() -> None:
    config = ProcessingConfig(timezone="Asia/Kolkata")
    # Kolkata midnight = 18:30Z. 18:00Z..19:00Z at 1 kW: half before, half after midnight.
    windows, _ = run(
        [
            msg("k", "2026-01-01T18:00:00Z", power=1000.0),
            msg("k", "2026-01-01T19:00:00Z", power=0.0),
        ],
        config,
    )
    assert windows[("day", "2025-12-31T18:30:00Z")]["energy_kwh"] == pytest.approx(0.5)
    assert windows[("day", "2026-01-01T18:30:00Z")]["energy_kwh"] == pytest.approx(0.5)
    assert windows[("hour", "2026-01-01T18:00:00Z")]["energy_kwh"] == pytest.approx(1.0)


def test_time_of_use_boundary_inside_an_interval_splits_the_cost() -> None:
    tariff = Tariff.model_validate(
        {
            "currency": "EUR",
            "price_per_kwh": 0.30,
            "periods": [
                {
                    "days": ["mon", "tue", "wed", "thu", "fri"],
                    "start": "17:00",
                    "end": "21:00",
                    "price_per_kwh": 0.45,
                }
            ],
        }
    )
    config = ProcessingConfig(tariff=tariff)
    # Friday 2026-05-01 16:30Z..17:30Z at 2 kW: 1 kWh at 0.30 and 1 kWh at 0.45.
    windows, _ = run(
        [
            msg("t", "2026-05-01T16:30:00Z", power=2000.0),
            msg("t", "2026-05-01T17:30:00Z", power=0.0),
        ],
        config,
    )
    assert windows[("hour", "2026-05-01T16:00:00Z")]["cost"] == Decimal("0.30")
    assert windows[("hour", "2026-05-01T17:00:00Z")]["cost"] == Decimal("0.45")
    assert windows[("day", "2026-05-01T00:00:00Z")]["cost"] == Decimal("0.75")


def test_tariff_period_past_midnight_belongs_to_the_start_weekday() -> None:
    tariff = Tariff.model_validate(
        {
            "price_per_kwh": 0.30,
            "periods": [{"days": ["fri"], "start": "22:00", "end": "02:00", "price_per_kwh": 0.10}],
        }
    )
    config = ProcessingConfig(tariff=tariff)
    # Sat 2026-05-02 01:00..03:00Z at 1 kW: 01-02 cheap (Friday's period), 02-03 default.
    windows, _ = run(
        [
            msg("t", "2026-05-02T01:00:00Z", power=1000.0),
            msg("t", "2026-05-02T02:00:00Z", power=1000.0),
            msg("t", "2026-05-02T03:00:00Z", power=0.0),
        ],
        config,
    )
    assert windows[("hour", "2026-05-02T01:00:00Z")]["cost"] == Decimal("0.10")
    assert windows[("hour", "2026-05-02T02:00:00Z")]["cost"] == Decimal("0.30")


def test_duplicate_first_one_wins_and_is_counted() -> None:
    windows, processor = run(
        [
            msg("d", "2026-05-01T10:00:00Z", power=1000.0),
            msg("d", "2026-05-01T10:00:00Z", power=9000.0),
            msg("d", "2026-05-01T10:30:00Z", power=0.0),
        ]
    )
    assert processor.counters.duplicates == 1
    assert windows[("hour", "2026-05-01T10:00:00Z")]["energy_kwh"] == pytest.approx(0.5)
    assert windows[("hour", "2026-05-01T10:00:00Z")]["power_max_w"] == 1000.0


def test_reading_exactly_at_watermark_is_accepted_and_just_below_is_late() -> None:
    base = ts("2026-05-01T10:10:00Z")
    values = [
        orjson.dumps({"device_id": "w", "timestamp": base / 1e6, "power_w": 100.0}),
        # watermark = 10:05:00
        orjson.dumps({"device_id": "w", "timestamp": (base - 300_000_000) / 1e6, "power_w": 100.0}),
        orjson.dumps({"device_id": "w", "timestamp": (base - 300_000_001) / 1e6, "power_w": 100.0}),
    ]
    _, processor = run(values)
    assert processor.counters.readings_accepted == 2
    assert processor.counters.rejected_by_reason["late"] == 1


def test_late_rejection_carries_original_bytes_and_reason() -> None:
    processor = StreamProcessor(ProcessingConfig())
    states: dict[str, DeviceState] = {}
    late_value = msg("w", "2026-05-01T09:00:00Z", power=1.0)
    result = processor.process_messages(
        [msg("w", "2026-05-01T10:00:00Z", power=1.0), late_value], states, NOW, 0.0
    )
    (rejection,) = result.rejections
    assert rejection.reason == "late"
    assert rejection.raw == late_value
    assert rejection.msg == 1
    assert "watermark" in rejection.detail


def test_array_message_elements_judged_one_by_one() -> None:
    processor = StreamProcessor(ProcessingConfig())
    states: dict[str, DeviceState] = {}
    value = orjson.dumps(
        [
            {"device_id": "g1", "timestamp": "2026-05-01T10:00:00Z", "power_w": 5},
            {"device_id": "g1", "timestamp": "2026-05-01T10:00:00", "power_w": 5},
            {"device_id": "g2", "timestamp": "2026-05-01T10:00:00Z", "power_w": -1},
        ]
    )
    result = processor.process_messages([value], states, NOW, 0.0)
    assert processor.counters.readings_received == 3
    assert processor.counters.readings_accepted == 1
    assert [r.reason for r in result.rejections] == ["invalid_schema", "out_of_range"]
    assert [r.element_index for r in result.rejections] == [1, 2]
    assert orjson.loads(result.rejections[1].raw)["device_id"] == "g2"


def test_reemission_with_revision_when_a_final_window_changes() -> None:
    processor = StreamProcessor(ProcessingConfig(grace_s=600))
    states: dict[str, DeviceState] = {}
    first = processor.process_messages(
        [
            msg("r", "2026-05-01T09:55:00Z", energy=1.0),
            msg("r", "2026-05-01T10:20:00Z", energy=2.0),
        ],
        states,
        NOW,
        0.0,
    )
    assert [(e.period, e.revision) for e in first.emissions] == [("hour", 0)]  # hour 09 final
    hour9 = first.emissions[0].fields()["energy_kwh"]
    # a reading inside grace splits the interval that fed hour 09: it is emitted again
    second = processor.process_messages(
        [msg("r", "2026-05-01T10:10:00Z", energy=1.9)], states, NOW, 1.0
    )
    revised = [e for e in second.emissions if e.period == "hour"]
    assert [(e.revision, e.window_start) for e in revised] == [(1, ts("2026-05-01T09:00:00Z"))]
    assert revised[0].fields()["energy_kwh"] != pytest.approx(hour9)
    assert revised[0].fields()["energy_kwh"] == pytest.approx(0.9 * 5 / 15)


def test_week_and_month_equal_the_combination_of_days() -> None:
    config = ProcessingConfig(timezone="Europe/Berlin")
    start = ts("2026-03-25T00:00:00Z")
    values = [
        orjson.dumps(
            {
                "device_id": "x",
                "timestamp": (start + i * 3 * H) // 1_000_000,
                "power_w": float(100 + i % 7 * 50),
                "energy_kwh": i * 0.4 + (0 if i < 20 else -5),
            }
        )
        for i in range(60)
    ]
    windows, _ = run(values, config)
    days = [w for (p, _), w in windows.items() if p == "day"]
    for period in ("week", "month"):
        for (p, _), w in windows.items():
            if p != period:
                continue
            inside = [d for d in days if w["window_start"] <= d["window_start"] < w["window_end"]]
            assert w["energy_kwh"] == pytest.approx(sum(d["energy_kwh"] for d in inside), rel=1e-12)
            assert w["cost"] == sum((d["cost"] for d in inside), Decimal(0))
            assert w["reading_count"] == sum(d["reading_count"] for d in inside)
            assert w["power_max_w"] == max(
                d["power_max_w"] for d in inside if d["power_max_w"] is not None
            )
            assert w["covered_seconds"] == pytest.approx(sum(d["covered_seconds"] for d in inside))
            weighted = sum(
                d["power_mean_w"] * d["power_reading_count"]
                for d in inside
                if d["power_reading_count"]
            )
            assert w["power_mean_w"] == pytest.approx(weighted / w["power_reading_count"])


def test_state_round_trips_through_serialisation() -> None:
    processor = StreamProcessor(ProcessingConfig(timezone="Europe/Berlin"))
    states: dict[str, DeviceState] = {}
    processor.process_messages(
        [
            msg("s", f"2026-05-01T10:{m:02d}:00Z", power=float(m), energy=m / 10)
            for m in range(0, 60, 7)
        ],
        states,
        NOW,
        0.0,
    )
    dumped = orjson.dumps(states["s"].dump())
    again = DeviceState.load(orjson.loads(dumped))
    assert orjson.dumps(again.dump()) == dumped


def test_late_array_element_rejection_names_its_array_index() -> None:
    """Regression: a late reading inside an array carried no element index, so its DLQ
    record lacked the documented ``source.element`` header and two late elements of one
    message could not be told apart (found by tests/integration/test_random_kills.py)."""
    processor = StreamProcessor(ProcessingConfig())
    states: dict[str, DeviceState] = {}
    late = [
        msg("w", "2026-05-01T09:00:00Z", power=1.0),
        msg("w", "2026-05-01T08:00:00Z", energy=2.0),
    ]
    array = b"[" + msg("w", "2026-05-01T10:00:00Z", power=1.0) + b"," + b",".join(late) + b"]"
    single = msg("w", "2026-05-01T07:00:00Z", power=1.0)
    result = processor.process_messages([array, single], states, NOW, 0.0)
    assert [(r.reason, r.msg, r.element_index, r.raw) for r in result.rejections] == [
        ("late", 0, 1, late[0]),
        ("late", 0, 2, late[1]),
        ("late", 1, None, single),
    ]
