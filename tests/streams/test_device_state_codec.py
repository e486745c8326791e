"""A device state's serialized form: exact to the bit for states the fold makes, smaller
than the JSON of version 1, which still loads, and anything damaged refused with a
ValueError."""

from __future__ import annotations

import itertools
import re
import struct
import zlib
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.workload import generate
from streams.config import ProcessingConfig
from streams.device_state import DeviceState
from streams.processor import StreamProcessor
from tests.damage import assert_refuses_damage
from tests.oracle import OracleReading
from tests.streams.harness import NOW_US, reading_json
from tests.streams.test_oracle_property import scenario

FoldCase = tuple[list[OracleReading], ProcessingConfig, list[int], int]


def _text(state: DeviceState) -> bytes:
    """The fields as orjson writes them: equal texts mean equal bits (-0.0 is not 0.0)."""
    return orjson.dumps(state.dump())


def _assert_exact(state: DeviceState) -> DeviceState:
    data = state.to_bytes()
    assert data[:1] == b"\x02"
    again = DeviceState.from_bytes(data)
    assert again.dump() == state.dump()
    assert _text(again) == _text(state)
    assert again.to_bytes() == data
    return again


@st.composite
def folds(draw: st.DrawFn) -> tuple[FoldCase, list[tuple[int, int]]]:
    """The oracle property test's scenarios, some powers -0.0 (a valid reading), and
    source positions up to the largest 64-bit offset."""
    arrivals, config, cuts, seed = draw(scenario())
    zeroed = draw(st.sets(st.integers(0, len(arrivals) - 1)))
    arrivals = [
        OracleReading(r.device_id, r.ts, -0.0, r.energy_kwh)
        if i in zeroed and r.power_w is not None
        else r
        for i, r in enumerate(arrivals)
    ]
    offset = draw(st.sampled_from([0, 2**31, 2**63 - len(arrivals)]))
    positions = [(draw(st.integers(0, 3)), offset + i) for i in range(len(arrivals))]
    return (arrivals, config, cuts, seed), positions


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(folds())
def test_round_trip_is_exact_and_restored_states_fold_the_same(
    fold: tuple[FoldCase, list[tuple[int, int]]],
) -> None:
    """After every batch: the state restored from its bytes equals the original to the bit,
    and folding the rest into it emits what the original emits."""
    (arrivals, config, cuts, _), positions = fold
    processor = StreamProcessor(config)
    kept: dict[str, DeviceState] = {}
    restored: dict[str, DeviceState] = {}
    values = [reading_json(r) for r in arrivals]
    bounds = sorted({0, len(values), *cuts})
    for index, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        emitted = []
        for states in (kept, restored):
            result = processor.process_messages(
                values[lo:hi], states, NOW_US, float(index), positions[lo:hi]
            )
            emitted.append([e.fields() for e in result.emissions])
        assert emitted[0] == emitted[1]
        restored = {d: _assert_exact(state) for d, state in restored.items()}
        assert {d: _text(s) for d, s in restored.items()} == {d: _text(s) for d, s in kept.items()}
    assert kept
    for device_id, state in kept.items():
        flushed = [e.fields() for e in processor.flush(device_id, state)]
        assert flushed == [e.fields() for e in processor.flush(device_id, restored[device_id])]
        _assert_exact(state)


def test_floats_and_ints_at_their_limits_survive() -> None:
    state = DeviceState(
        max_ts=2**63 - 1,
        readings=[[-(2**63), -0.0, 5e-324], [0, 1.7976931348623157e308, None]],
        emitted={(0, -(2**63)): (2**31, -(2**63)), (3, 0): (0, 2**63 - 1)},
        last_wall=0.1 + 0.2,
        offsets={0: 2**63 - 1, 7: -1},
        partition=0,
    )
    again = _assert_exact(state)
    assert str(again.readings[0][1]) == "-0.0"


def _benchmark_states(devices: int, per_device: int) -> list[DeviceState]:
    """States as ``bench.memory`` makes them: the benchmark's workload through the fold."""
    workload = generate(devices * per_device, devices)
    processor = StreamProcessor(ProcessingConfig())
    states: dict[str, DeviceState] = {}
    values = [value for _, value in workload.single]
    for start in range(0, len(values), 2000):
        processor.process_messages(values[start : start + 2000], states, NOW_US, 0.0)
    return list(states.values())


@pytest.mark.parametrize("per_device", [4, 100])
def test_benchmark_states_are_under_half_their_json(per_device: int) -> None:
    """Young (an hour, a day) and older devices (day, week and month sums, often copies)."""
    states = _benchmark_states(20, per_device)
    assert states
    for state in states:
        _assert_exact(state)
        assert len(state.to_bytes()) < len(_text(state)) / 2


def _sample() -> DeviceState:
    return _benchmark_states(1, 100)[0]


def test_version_1_json_still_loads() -> None:
    state = _sample()
    old = _text(state)
    assert old[:1] == b"["
    assert _text(DeviceState.from_bytes(old)) == old
    assert _text(DeviceState.from_bytes(old.decode())) == old


def test_truncated_or_damaged_bytes_are_refused() -> None:
    assert_refuses_damage(DeviceState.from_bytes, _sample().to_bytes())
    old = _text(_sample())
    for end in range(len(old)):
        with pytest.raises(ValueError):
            DeviceState.from_bytes(old[:end])


def _sealed(body: bytes) -> bytes:
    """Version 2 bytes with a valid checksum around ``body``: what only a writer bug or
    another format could give."""
    packed = b"\x02" + body
    return packed + struct.pack("<I", zlib.crc32(packed))


def _deflated(fields: Any) -> bytes:
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    return _sealed(deflate.compress(orjson.dumps(fields)) + deflate.flush())


def test_wrong_versions_and_shapes_are_named() -> None:
    data = _sample().to_bytes()
    fields = _sample().dump()
    with pytest.raises(ValueError, match="version b'\\\\x03'"):
        DeviceState.from_bytes(b"\x03" + data[1:])
    with pytest.raises(ValueError, match=re.escape("version b'{'")):
        DeviceState.from_bytes(b'{"v":1}')
    with pytest.raises(ValueError, match="device state version 99"):
        DeviceState.from_bytes(orjson.dumps([99, *fields[1:]]))
    with pytest.raises(ValueError, match="device state version 99"):
        DeviceState.from_bytes(_deflated([99, *fields[1:]]))
    with pytest.raises(ValueError, match="empty"):
        DeviceState.from_bytes(b"")
    with pytest.raises(ValueError, match="corrupt: "):
        DeviceState.from_bytes(_sealed(b"\xff\xff\xff"))
    with pytest.raises(ValueError, match="wrong size"):
        DeviceState.from_bytes(_sealed(data[1:-4] + b"\x00"))
    with pytest.raises(ValueError, match="wrong size"):
        DeviceState.from_bytes(_sealed(data[1:-6]))
    with pytest.raises(ValueError, match="not a field list but dict"):
        DeviceState.from_bytes(_deflated({"v": 1}))
    with pytest.raises(ValueError, match="malformed"):
        DeviceState.from_bytes(_deflated(fields[:5]))
    with pytest.raises(ValueError, match="malformed"):
        DeviceState.from_bytes(_deflated([*fields[:3], [[1, 0, [*[0] * 10, "x"]]], *fields[4:]]))
    with pytest.raises(ValueError, match="64-bit"):
        DeviceState(max_ts=2**64).to_bytes()


def test_emitted_fingerprints_are_written_as_the_blake2b_of_the_window_values() -> None:
    """Fingerprints are kept as the window's values until needed; what is written (and
    compared after a restore) is the 64-bit blake2b of their repr, as it always was."""
    import hashlib

    processor = StreamProcessor(ProcessingConfig())
    states: dict[str, DeviceState] = {}
    found = []
    for _, value in generate(400, 2).single:  # until a window is emitted and still open
        processor.process_messages([value], states, NOW_US, 0.0)
        found = [s for s in states.values() if s.emitted]
        if found:
            break
    state = found[0]
    lazy = list(state.emitted.items())
    written = {(p, s): fp for p, s, _, fp in state.dump()[4]}
    for (period, start), (revision, fingerprint) in lazy:
        assert not isinstance(fingerprint, int)  # kept lazily until written
        values, cost = fingerprint
        text = repr((values, cost)).encode()
        expected = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)
        assert written[period, start] == expected
        # digested once: the state keeps what it wrote, as a restored state holds it
        assert state.emitted[period, start] == (revision, expected)
        restored = DeviceState.from_bytes(state.to_bytes())
        assert restored.emitted[period, start][1] == expected
    assert state.dump() == DeviceState.from_bytes(state.to_bytes()).dump()
