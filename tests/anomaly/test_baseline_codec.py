"""A baseline's serialized form: exact to the bit for any float32 pattern, compact, version 1
JSON still read, and anything damaged refused with a ValueError."""

from __future__ import annotations

import struct
import time
import zlib
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.workload import generate
from streams.anomaly_baseline import DeviceBaseline
from streams.anomaly_baseline_codec import decode
from streams.anomaly_stream import StreamScorer
from streams.config import ProcessingConfig
from tests.anomaly.conftest import daily_pattern, dump_v1
from tests.damage import assert_refuses_damage

FLOATS, COUNTS = 382, 324
RAW_BYTES = 4 * FLOATS + 2 * COUNTS  # the arrays as they are
SPECIAL_BITS = [0x80000000, 0x7F800000, 0xFF800000, 0x7FC00000, 0xFFC00001, 0x7F800001, 1]

header_ints = st.integers(-(2**62), 2**62)


@st.composite
def baselines(draw: st.DrawFn) -> DeviceBaseline:
    """Any float32 bits (mostly zero slots as young baselines have, or none), special values
    at some slots, any counts (mostly small, or not)."""
    bits = array("I", draw(st.binary(min_size=4 * FLOATS, max_size=4 * FLOATS)))
    zero = draw(st.sampled_from([0, 2**FLOATS - 1]) | st.integers(0, 2**FLOATS - 1))
    for i in range(FLOATS):
        if zero >> i & 1:
            bits[i] = 0
    slots = st.integers(0, FLOATS - 1)
    for i, pattern in draw(st.lists(st.tuples(slots, st.sampled_from(SPECIAL_BITS)), max_size=8)):
        bits[i] = pattern
    counts = array("H", draw(st.binary(min_size=2 * COUNTS, max_size=2 * COUNTS)))
    small = draw(st.integers(0, 2**COUNTS - 1))
    for i in range(COUNTS):
        if small >> i & 1:
            counts[i] &= 0xFF
    return DeviceBaseline(
        draw(st.none() | header_ints),
        draw(st.none() | header_ints),
        draw(st.none() | header_ints),
        draw(header_ints),
        array("f", bits.tobytes()),
        counts,
    )


def _same(a: DeviceBaseline, b: DeviceBaseline) -> bool:
    """Equal to the bit (``==`` on floats would call nan unequal and -0.0 equal to 0.0)."""
    return (
        (a.first_start, a.last_hour, a.last_day, a.day_ordinal)
        == (b.first_start, b.last_hour, b.last_day, b.day_ordinal)
        and a.floats.tobytes() == b.floats.tobytes()
        and a.counts.tobytes() == b.counts.tobytes()
    )


@settings(max_examples=200, deadline=None)
@given(baselines())
def test_round_trip_is_exact_for_any_bits(baseline: DeviceBaseline) -> None:
    data = baseline.dump()
    assert data[:1] == b"\x02"
    again = DeviceBaseline.load(data)
    assert _same(again, baseline)
    assert again.dump() == data


@settings(max_examples=50, deadline=None)
@given(baselines())
def test_version_1_json_still_loads(baseline: DeviceBaseline) -> None:
    old = dump_v1(baseline)
    assert _same(DeviceBaseline.load(old), baseline)
    assert _same(DeviceBaseline.load(old.decode()), baseline)


def test_special_floats_survive() -> None:
    bits = array("I", bytes(4 * FLOATS))
    for i, pattern in enumerate(SPECIAL_BITS):
        bits[10 * i] = pattern  # as bits: a float would quiet the signalling nan
    baseline = DeviceBaseline(floats=array("f", bits.tobytes()))
    again = DeviceBaseline.load(baseline.dump())
    got = struct.unpack(f"={FLOATS}I", again.floats.tobytes())
    assert [got[10 * i] for i in range(len(SPECIAL_BITS))] == SPECIAL_BITS


def _learned_over_the_benchmark(devices: int, per_device: int) -> list[DeviceBaseline]:
    """Baselines as ``bench.memory`` makes them: the benchmark's workload through the worker's
    fold and detector."""
    workload = generate(devices * per_device, devices)
    scorer = StreamScorer(ProcessingConfig())
    wall = time.time()
    values = [value for _, value in workload.single]
    for start in range(0, len(values), 2000):
        scorer.process(values[start : start + 2000], int(wall * 1e6), wall)
    return list(scorer.detector.baselines.values())


@pytest.mark.parametrize("per_device", [4, 100])
def test_benchmark_baselines_are_compact(per_device: int) -> None:
    learned = _learned_over_the_benchmark(50, per_device)
    assert learned
    for baseline in learned:
        data = baseline.dump()
        assert _same(DeviceBaseline.load(data), baseline)
        nonzero = sum(1 for bits in array("I", baseline.floats.tobytes()) if bits)
        # stored: header, crc and three low bytes per nonzero float; the bitmap, the floats'
        # top bytes and the counts are deflated to well under half their size
        deflated = (FLOATS // 8 + 1) + nonzero + 2 * COUNTS
        assert len(data) < 2 + 4 * 8 + 4 + 3 * nonzero + deflated // 2 < RAW_BYTES


def test_mature_baseline_is_smaller_than_its_arrays() -> None:
    """Six weeks of hours: every slot filled, the low mantissa bytes are stored."""
    from streams.anomaly import AnomalyDetector

    detector = AnomalyDetector()
    for window in daily_pattern(devices=1, days=42):
        detector.score(window)
    baseline = detector.baselines["dev-0"]
    data = baseline.dump()
    assert _same(DeviceBaseline.load(data), baseline)
    assert len(data) < RAW_BYTES


def _sample() -> bytes:
    detector_input = list(daily_pattern(devices=1, days=3))
    from streams.anomaly import AnomalyDetector

    detector = AnomalyDetector()
    for window in detector_input:
        detector.score(window)
    return detector.baselines["dev-0"].dump()


def test_truncated_or_damaged_dumps_are_refused() -> None:
    assert_refuses_damage(DeviceBaseline.load, _sample())


def _resealed(body: bytes) -> bytes:
    """A body with a valid checksum: what only a writer bug or another format could give."""
    return body + struct.pack("<I", zlib.crc32(body))


def test_wrong_versions_flags_and_sizes_are_named() -> None:
    data = _sample()
    with pytest.raises(ValueError, match="version b'\\\\x03'"):
        DeviceBaseline.load(b"\x03" + data[1:])
    with pytest.raises(ValueError, match="version 99"):
        DeviceBaseline.load(dump_v1(DeviceBaseline()).replace(b'"v":1', b'"v":99'))
    with pytest.raises(ValueError, match="flags"):
        DeviceBaseline.load(_resealed(data[:1] + bytes([data[1] | 0x80]) + data[2:-4]))
    with pytest.raises(ValueError, match="wrong size"):
        decode(data, FLOATS - 8, COUNTS)
    with pytest.raises(ValueError, match="wrong size"):
        DeviceBaseline.load(dump_v1(DeviceBaseline()).replace(b'"n":"', b'"n":"AAAA'))
    with pytest.raises(ValueError, match="corrupt"):
        DeviceBaseline.load(b'{"v":1,')
    with pytest.raises(ValueError, match="64-bit"):
        DeviceBaseline(first_start=2**63).dump()
