"""Hostile input for the reading decoder (issue: reliability, bad input): arbitrary bytes,
deep or huge JSON, wrong types, NaN/Infinity, absurd timestamps, 10 MB messages, invalid
UTF-8. The decoder never raises, every reading is accepted or rejected with a reason exactly
once, and memory stays proportional to the message."""

from __future__ import annotations

import json
import tracemalloc

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.decode import ReadingDecoder
from streams.timeparse import parse_rfc3339

NOW = parse_rfc3339("2026-06-01T12:00:00Z")
DECODER = ReadingDecoder(max_power_w=1_000_000, future_tolerance_us=300_000_000)
REASONS = {"invalid_json", "invalid_schema", "out_of_range", "future_timestamp"}


def check(raw: bytes) -> tuple[int, list[str]]:
    decoded = DECODER.decode(raw, NOW)
    reasons = [r.reason for r in decoded.rejections]
    assert set(reasons) <= REASONS
    assert len(decoded.readings) + len(reasons) == max(decoded.received, 1) or (
        decoded.received == len(decoded.readings) + len(reasons)
    )
    for rejection in decoded.rejections:
        assert rejection.detail  # a human-readable reason
    return len(decoded.readings), reasons


@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
def test_deep_nesting_is_rejected_not_a_crash(depth: int) -> None:
    for raw in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        accepted, reasons = check(raw)
        assert accepted == 0 and len(reasons) >= 1


def test_deep_nesting_inside_a_reading_field_is_a_schema_error() -> None:
    deep = b"[" * 200 + b"]" * 200
    _, reasons = check(b'{"device_id":"a","timestamp":1,"power_w":' + deep + b"}")
    assert reasons == ["invalid_schema"]


def test_a_10_mb_array_is_decoded_with_bounded_memory() -> None:
    element = {"device_id": "meter-1", "timestamp": 1_780_000_000, "power_w": 100.0}
    items = []
    for index in range(140_000):
        items.append({**element, "timestamp": 1_780_000_000 + index})
    raw = orjson.dumps(items)
    assert len(raw) > 8_000_000
    tracemalloc.start()
    try:
        decoded = DECODER.decode(raw, NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(decoded.readings) == 140_000 and not decoded.rejections
    # the parsed array plus compact readings: a small multiple of the message
    assert peak < 25 * len(raw), peak


@pytest.mark.parametrize(
    "raw",
    [
        b'{"device_id":"' + b"x" * 10_000_000 + b'","timestamp":1,"power_w":1}',
        b'{"device_id":"a","timestamp":1,"power_w":1,"blob":"' + b"y" * 10_000_000 + b'"}',
        b'{"device_id":"a","timestamp":"' + b"9" * 10_000_000 + b'","power_w":1}',
        b'{"device_id":"a","timestamp":' + b"9" * 5_000 + b',"power_w":1}',
    ],
)
def test_10_mb_fields_are_judged(raw: bytes) -> None:
    accepted, reasons = check(raw)
    assert accepted + len(reasons) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"device_id":"\xff\xfe","timestamp":1,"power_w":1}',
        b'{"device_id":"a","timestamp":"2026-06-01T10:00:00Z\xc3","power_w":1}',
        b'[{"device_id":"a","timestamp":1,"power_w":1},\xed\xa0\x80]',
        b'{"device_id":"\\ud800","timestamp":1,"power_w":1}',
    ],
)
def test_invalid_utf8_and_lone_surrogates(raw: bytes) -> None:
    accepted, reasons = check(raw)
    assert accepted == 0 and reasons


absurd_timestamps = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "1970-01-01T00:00:00+23:59",
            "2026-06-01T12:00:00-23:59",
            "2026-13-01T00:00:00Z",
            "2026-06-01T24:00:00Z",
            "2026-06-01T12:00:60Z",
            "2026-06-01T12:00:00.1234567891234Z",
            "+002026-06-01T12:00:00Z",
            "",
        ]
    ),
    st.text(max_size=40),
)


@settings(max_examples=400, deadline=None)
@given(
    timestamp=absurd_timestamps,
    power=st.one_of(
        st.none(),
        st.floats(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.booleans(),
        st.text(max_size=5),
        st.lists(st.integers(), max_size=2),
    ),
)
def test_absurd_timestamps_and_values_are_judged_once(timestamp: object, power: object) -> None:
    doc = {"device_id": "m-1", "timestamp": timestamp, "power_w": power}
    try:
        raw = json.dumps(doc, allow_nan=True).encode()
    except (OverflowError, ValueError):
        return
    decoded = DECODER.decode(raw, NOW)
    assert len(decoded.readings) + len(decoded.rejections) == 1
    for reading in decoded.readings:
        assert reading.ts <= NOW + 300_000_000


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=2_000))
def test_arbitrary_bytes_inside_an_array_are_judged_per_element(noise: bytes) -> None:
    raw = b'[{"device_id":"a","timestamp":1,"power_w":1},' + noise + b"]"
    decoded = DECODER.decode(raw, NOW)
    assert decoded.received >= 1
    assert len(decoded.readings) + len(decoded.rejections) == decoded.received


def test_an_integer_beyond_the_double_range_is_out_of_range() -> None:
    _, reasons = check(b'{"device_id":"a","timestamp":1,"power_w":1' + b"0" * 400 + b"}")
    assert reasons == ["out_of_range"]


def test_an_accepted_reading_with_a_deep_extra_field_keeps_its_fields_when_re_encoded() -> None:
    from streams.decode import reading_bytes

    deep = b"[" * 600 + b"]" * 600
    raw = b'[{"device_id":"a","timestamp":1780000000,"power_w":5,"extra":' + deep + b"}]"
    decoded = DECODER.decode(raw, NOW)
    assert len(decoded.readings) == 1
    again = orjson.loads(reading_bytes(decoded.readings[0]))
    assert again["device_id"] == "a" and again["power_w"] == 5
