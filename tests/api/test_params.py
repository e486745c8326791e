"""The hand-written parsers accept exactly what the documented MetricsParams schema allows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from api.params import parse_datetime, parse_device_id, parse_limit, parse_period
from models.api import MetricsParams

ID_ALPHABET = st.sampled_from("azAZ09._:-/ é\n+")


def accepted(parse: object, value: str) -> bool:
    try:
        parse(value)  # type: ignore[operator]
    except ValueError:
        return False
    return True


def schema_accepts(**fields: object) -> bool:
    try:
        MetricsParams.model_validate(fields)
    except ValidationError:
        return False
    return True


@given(st.text(ID_ALPHABET, max_size=130) | st.text(max_size=3))
def test_device_id_rule_matches_the_schema(text: str) -> None:
    assert accepted(parse_device_id, text) == schema_accepts(device_id=text)


@given(st.integers(min_value=-10, max_value=2000))
def test_limit_rule_matches_the_schema(number: int) -> None:
    assert accepted(parse_limit, str(number)) == schema_accepts(limit=number)


@pytest.mark.parametrize("value", ["hour", "day", "week", "month", "year", "Hour", ""])
def test_period_rule_matches_the_schema(value: str) -> None:
    assert accepted(parse_period, value) == schema_accepts(period=value)


@given(
    st.datetimes(
        min_value=datetime(1900, 1, 2),
        max_value=datetime(9998, 12, 30),
        timezones=st.timezones(),
        allow_imaginary=False,
    )
)
def test_any_aware_instant_round_trips(moment: datetime) -> None:
    offset = moment.utcoffset()
    assert offset is not None
    assume(offset.total_seconds() % 60 == 0)  # RFC 3339 offsets have no seconds
    assert parse_datetime(moment.isoformat()) == moment.astimezone(UTC)
