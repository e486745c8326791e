"""Property tests: the stream fold equals the independent oracle, whatever the arrival
order within grace, the split into batches, or a restart from serialised state."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from models.tariff import Tariff
from streams.config import ProcessingConfig
from tests.oracle import OracleReading, compute
from tests.streams.harness import run_stream

TOU = Tariff.model_validate(
    {
        "currency": "EUR",
        "price_per_kwh": 0.30,
        "periods": [
            {
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "17:00",
                "end": "21:00",
                "price_per_kwh": 0.45,
            },
            {"days": "all", "start": "22:30", "end": "06:15", "price_per_kwh": 0.18},
            {"days": ["sun"], "start": "02:00", "end": "03:30", "price_per_kwh": 0.90},
        ],
    }
)
ZONES = [
    "UTC",
    "Europe/Berlin",
    "Asia/Kolkata",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/St_Johns",
]
# Starts near DST changes of the zones above (2026; St John's 2009).
STARTS = [
    1257033600 * 10**6,  # 2009-11-01T00:00Z: St John's clocks back from 00:01 to 23:01
    1774738800 * 10**6,  # 2026-03-28T23:00Z: Berlin spring forward night
    1792706400 * 10**6,  # 2026-10-24T22:00Z: Berlin fall back night
    1772928000 * 10**6,  # 2026-03-08T00:00Z: New York spring forward
    1775311200 * 10**6,  # 2026-04-04T14:00Z: Lord Howe fall back (30 min)
    1767225600 * 10**6,  # 2026-01-01T00:00Z: new year, month boundary
]


def assert_matches(
    stream: dict[tuple[str, str, int], dict[str, Any]],
    oracle: dict[tuple[str, str, int], dict[str, Any]],
) -> None:
    assert set(stream) == set(oracle), (sorted(set(stream) ^ set(oracle)))[:5]
    for key, want in oracle.items():
        got = stream[key]
        assert got["window_end"] == want["window_end"], key
        for name in ("reading_count", "first_ts", "last_ts", "power_min_w", "power_max_w"):
            assert got[name] == want[name], (key, name, got[name], want[name])
        for name in ("energy_kwh", "coverage", "power_mean_w"):
            if want[name] is None:
                assert got[name] is None, (key, name)
            else:
                assert math.isclose(got[name], want[name], rel_tol=1e-9, abs_tol=1e-12), (
                    key,
                    name,
                    got[name],
                    want[name],
                )
        assert isinstance(got["cost"], Decimal)
        assert math.isclose(float(got["cost"]), want["cost"], rel_tol=1e-9, abs_tol=1e-12), (
            key,
            "cost",
            got["cost"],
            want["cost"],
        )


@st.composite
def device_series(draw: st.DrawFn, device_id: str, start: int) -> list[OracleReading]:
    n = draw(st.integers(min_value=1, max_value=40))
    kind = draw(st.sampled_from(["power", "counter", "both", "mixed"]))
    ts = start + draw(st.integers(0, 3600)) * 10**6
    counter = draw(st.floats(0, 1000, allow_nan=False))
    rows: list[OracleReading] = []
    for _ in range(n):
        gap_kind = draw(st.sampled_from(["short", "short", "short", "medium", "long"]))
        if gap_kind == "short":
            gap = draw(st.integers(1, 120)) * 10**6 + draw(st.integers(0, 999_999))
        elif gap_kind == "medium":
            gap = draw(st.integers(121, 3 * 3600)) * 10**6
        else:
            gap = draw(st.integers(3 * 3600, 40 * 3600)) * 10**6
        ts += gap
        power = (
            draw(st.one_of(st.none(), st.floats(0, 20_000, allow_nan=False)))
            if kind == "mixed"
            else draw(st.floats(0, 20_000, allow_nan=False))
        )
        step = draw(st.sampled_from(["inc", "inc", "inc", "reset", "spike"]))
        if step == "inc":
            counter += draw(st.floats(0, 5, allow_nan=False))
        elif step == "reset":
            counter = draw(st.floats(0, 2, allow_nan=False))
        else:
            counter += 10_000.0
        has_power = kind in ("power", "both") or (kind == "mixed" and power is not None)
        has_energy = kind in ("counter", "both") or (
            kind == "mixed" and (power is None or draw(st.booleans()))
        )
        rows.append(
            OracleReading(
                device_id,
                ts,
                power if has_power else None,
                round(counter, 6) if has_energy else None,
            )
        )
        if draw(st.integers(0, 9)) == 0:  # an exact duplicate copy
            rows.append(rows[-1])
    return rows


@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[OracleReading], ProcessingConfig, list[int], int]:
    zone = draw(st.sampled_from(ZONES))
    start = draw(st.sampled_from(STARTS))
    grace_s = draw(st.sampled_from([0, 60, 300, 900]))
    tariff = draw(st.sampled_from([Tariff(), TOU]))
    n_devices = draw(st.integers(1, 3))
    series = [draw(device_series(f"dev-{i}", start)) for i in range(n_devices)]
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    # Arrival order: each reading delayed by less than grace, so none is late.
    keyed = []
    for rows in series:
        for r in rows:
            keyed.append((r.ts + rng.random() * grace_s * 1e6, rng.random(), r))
    keyed.sort(key=lambda k: (k[0], k[1]))
    arrivals = [k[2] for k in keyed]
    cuts = (
        sorted(
            rng.sample(range(1, max(2, len(arrivals))), k=min(len(arrivals) - 1, rng.randint(0, 6)))
        )
        if len(arrivals) > 1
        else []
    )
    config = ProcessingConfig(grace_s=grace_s, timezone=zone, tariff=tariff)
    return arrivals, config, cuts, seed


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario())
def test_stream_equals_oracle_for_any_order_within_grace(
    case: tuple[list[OracleReading], ProcessingConfig, list[int], int],
) -> None:
    arrivals, config, cuts, _ = case
    oracle = compute(
        arrivals, grace_s=config.grace_s, timezone=config.timezone, tariff=config.tariff
    )
    assert oracle.late == 0
    stream, processor = run_stream(arrivals, config, cuts)
    assert_matches(stream, oracle.windows)
    assert processor.counters.readings_accepted == oracle.accepted
    assert processor.counters.duplicates == oracle.duplicates


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario(), st.randoms(use_true_random=False))
def test_result_is_bitwise_independent_of_order_batches_and_restarts(
    case: tuple[list[OracleReading], ProcessingConfig, list[int], int], rng: random.Random
) -> None:
    arrivals, config, cuts, _ = case
    reference, _ = run_stream(sorted(arrivals, key=lambda r: r.ts), config)
    restarts = {i for i in range(len(cuts) + 1) if rng.random() < 0.5}
    other, _ = run_stream(arrivals, config, cuts, restart_at=restarts)
    assert set(reference) == set(other)
    for key, fields in reference.items():
        mine = dict(other[key])
        theirs = dict(fields)
        mine.pop("revision")
        theirs.pop("revision")
        assert mine == theirs, key


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario(), st.randoms(use_true_random=False))
def test_any_arrival_order_equals_oracle_including_late(
    case: tuple[list[OracleReading], ProcessingConfig, list[int], int], rng: random.Random
) -> None:
    """Arbitrary disorder: some readings are late; the oracle judges the same arrival order."""
    arrivals, config, cuts, _ = case
    shuffled = list(arrivals)
    for _ in range(len(shuffled) // 3):
        i, j = rng.randrange(len(shuffled)), rng.randrange(len(shuffled))
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
    oracle = compute(
        shuffled, grace_s=config.grace_s, timezone=config.timezone, tariff=config.tariff
    )
    stream, processor = run_stream(shuffled, config, cuts)
    assert_matches(stream, oracle.windows)
    assert processor.counters.rejected_by_reason["late"] == oracle.late
    assert processor.counters.duplicates == oracle.duplicates
