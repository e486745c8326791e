"""Validation rules of SEMANTICS.md section 1, one row per rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.decode import ReadingDecoder
from streams.timeparse import (
    MAX_TS_US,
    MIN_TS_US,
    TimestampError,
    fast_rfc3339,
    format_us,
    parse_rfc3339,
)

NOW = parse_rfc3339("2026-06-01T12:00:00Z")
DECODER = ReadingDecoder(max_power_w=1_000_000, future_tolerance_us=300_000_000)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b'{"device_id":"a","timestamp":1,"power_w":NaN}', "invalid_json"),
        (b'{"device_id":"a","timestamp":1,"power_w":Infinity}', "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"", "invalid_json"),
        (b"42", "invalid_schema"),
        (b'"text"', "invalid_schema"),
        (b"null", "invalid_schema"),
        (b'{"timestamp":1,"power_w":1}', "invalid_schema"),
        (b'{"device_id":"","timestamp":1,"power_w":1}', "invalid_schema"),
        (b'{"device_id":"a b","timestamp":1,"power_w":1}', "invalid_schema"),
        (b'{"device_id":"a\\n","timestamp":1,"power_w":1}', "invalid_schema"),
        (b'{"device_id":"' + b"x" * 129 + b'","timestamp":1,"power_w":1}', "invalid_schema"),
        (b'{"device_id":7,"timestamp":1,"power_w":1}', "invalid_schema"),
        (b'{"device_id":"a","power_w":1}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":"2026-06-01T10:00:00","power_w":1}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":"2026-06-01","power_w":1}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":"yesterday","power_w":1}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":"2026-02-30T00:00:00Z","power_w":1}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":true,"power_w":1}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":1}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":1,"power_w":null,"energy_kwh":null}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":1,"power_w":"5"}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":1,"power_w":true}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":1,"power_w":1,"voltage_v":"230"}', "invalid_schema"),
        (b'{"device_id":"a","timestamp":1,"power_w":-1}', "out_of_range"),
        (b'{"device_id":"a","timestamp":1,"energy_kwh":-0.001}', "out_of_range"),
        (b'{"device_id":"a","timestamp":1,"power_w":1000000.5}', "out_of_range"),
        (b'{"device_id":"a","timestamp":1,"power_w":1e400}', "out_of_range"),
        (b'{"device_id":"a","timestamp":1,"power_w":1,"current_a":-2}', "out_of_range"),
        (b'{"device_id":"a","timestamp":"2026-06-01T12:05:01Z","power_w":1}', "future_timestamp"),
        (
            b'{"device_id":"a","timestamp":"2026-06-01T14:05:01+02:00","power_w":1}',
            "future_timestamp",
        ),
    ],
)
def test_rejections(raw: bytes, reason: str) -> None:
    decoded = DECODER.decode(raw, NOW)
    assert decoded.readings == []
    assert [r.reason for r in decoded.rejections] == [reason]
    assert decoded.rejections[0].raw == raw
    assert decoded.rejections[0].detail


@pytest.mark.parametrize(
    ("raw", "ts", "power", "energy"),
    [
        (
            b'{"device_id":"a.b_c:d-1","timestamp":"2026-06-01T10:00:00Z","power_w":0}',
            "2026-06-01T10:00:00Z",
            0.0,
            None,
        ),
        (
            b'{"device_id":"a","timestamp":"2026-06-01T12:00:00+02:00","energy_kwh":5,"extra":{"x":1}}',
            "2026-06-01T10:00:00Z",
            None,
            5.0,
        ),
        (
            b'{"device_id":"a","timestamp":"2026-06-01t10:00:00.1234569z","power_w":1,"energy_kwh":null}',
            "2026-06-01T10:00:00.123456Z",
            1.0,
            None,
        ),
        (
            b'{"device_id":"a","timestamp":1780308000,"power_w":1000000}',
            "2026-06-01T10:00:00Z",
            1_000_000.0,
            None,
        ),
        (
            b'{"device_id":"a","timestamp":1780308000.25,"power_w":2}',
            "2026-06-01T10:00:00.25Z",
            2.0,
            None,
        ),
        (
            b'{"device_id":"a","timestamp":"2026-06-01T12:05:00Z","power_w":1}',
            "2026-06-01T12:05:00Z",
            1.0,
            None,
        ),
    ],
)
def test_accepted_forms(raw: bytes, ts: str, power: float | None, energy: float | None) -> None:
    decoded = DECODER.decode(raw, NOW)
    assert decoded.rejections == []
    (reading,) = decoded.readings
    assert reading.ts == parse_rfc3339(ts)
    assert (reading.power_w, reading.energy_kwh) == (power, energy)


def test_rejection_keeps_device_id_when_valid() -> None:
    decoded = DECODER.decode(b'{"device_id":"m-1","timestamp":1,"power_w":-5}', NOW)
    assert decoded.rejections[0].device_id == "m-1"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    decoded = DECODER.decode(raw, NOW)
    assert decoded.received >= 0
    assert (
        len(decoded.readings) + len(decoded.rejections) == decoded.received or decoded.received == 0
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers()
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["device_id", "timestamp", "power_w", "energy_kwh", "voltage_v", "x"]),
            json_values,
        ),
        max_size=5,
    )
)
def test_every_element_is_accepted_or_rejected_once(elements: list[dict[str, object]]) -> None:
    import json

    raw = json.dumps(elements).encode()
    decoded = DECODER.decode(raw, NOW)
    assert decoded.received == len(elements)
    assert len(decoded.readings) + len(decoded.rejections) == len(elements)


_STAMP_PART = st.sampled_from(
    [
        *("2026", "1900", "1899", "9999", "2024", "02", "12", "13", "00", "29", "30", "31"),
        *("23", "24", "59", "60", "T", "t", " ", "-", ":", ".", ".5", ".1234567", "Z", "z"),
        *("+05:30", "-09:30", "+24:00", "+05:60", "٢", "x", ""),
    ]
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(_STAMP_PART, max_size=14).map("".join))
def test_fast_timestamp_path_agrees_with_the_parser(text: str) -> None:
    fast = fast_rfc3339(text)
    try:
        full: int | None = parse_rfc3339(text)
    except TimestampError:
        full = None
    assert fast is None or fast == full


@settings(max_examples=2000, deadline=None)
@given(
    st.integers(MIN_TS_US - 86_400 * 10**6, MAX_TS_US + 86_400 * 10**6),
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+05:30", "-09:30", "+23:59", "-23:59"]),
    st.integers(0, 9),
    st.sampled_from(["T", "t", " "]),
)
def test_fast_timestamp_path_parses_every_valid_form(
    ts: int, offset: str, digits: int, sep: str
) -> None:
    text = format_us(ts).replace("Z", "")[:19].replace("T", sep)
    if digits:
        text += "." + f"{ts % 10**6:06d}{ts % 997:03d}"[:digits]
    text += offset
    try:
        full = parse_rfc3339(text)
    except TimestampError:
        assert fast_rfc3339(text) is None
        return
    assert fast_rfc3339(text) == full
