"""``Emission.to_model`` builds ``WindowAggregate`` without validation
(``WindowAggregate.trusted``): the result must equal the validated model of the same values,
field for field, type for type, and byte for byte in JSON, for every value a fold can hold."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.metrics import PERIODS, WindowAggregate
from streams.accumulator import Acc
from streams.emission import Emission
from streams.timeparse import us_to_datetime

US_PER_DAY = 86_400_000_000
instants = st.integers(-2_000_000 * US_PER_DAY // 100, 2_900_000 * US_PER_DAY)
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53)


@st.composite
def emissions(draw: st.DrawFn) -> Emission:
    acc = Acc(draw(st.integers(1, 3)))
    acc.count = draw(st.integers(0, 2**40))
    acc.pcount = draw(st.integers(0, 2**40))
    acc.psum = draw(numbers)
    acc.pmin = draw(st.none() | numbers)
    acc.pmax = draw(st.none() | numbers)
    acc.energy = draw(numbers)
    acc.covered = draw(st.integers(0, 2**50))
    acc.first = draw(st.none() | instants)
    acc.last = draw(st.none() | instants)
    start = draw(instants)
    end = start + draw(st.integers(1, 40 * US_PER_DAY))
    cost = draw(st.decimals(allow_nan=False, allow_infinity=False))
    return Emission(
        draw(st.text(min_size=1, max_size=20)),
        draw(st.sampled_from(PERIODS)),
        start,
        end,
        acc,
        cost,
        draw(st.integers(0, 2**31)),
    )


def validated(emission: Emission, currency: str, score: Any, flag: Any) -> WindowAggregate:
    """The model through pydantic's validation, from ``fields()`` (the contract's values)."""
    values = emission.fields()
    for name in ("window_start", "window_end", "first_ts", "last_ts"):
        if values[name] is not None:
            values[name] = us_to_datetime(values[name])
    return WindowAggregate(currency=currency, anomaly_score=score, is_anomaly=flag, **values)


@given(
    emission=emissions(),
    score=st.none() | st.floats() | st.integers(0, 1),
    flag=st.none() | st.booleans(),
)
def test_to_model_equals_the_validated_model(
    emission: Emission, score: float | None, flag: bool | None
) -> None:
    try:
        expected = validated(emission, "EUR", score, flag)
    except OverflowError:  # int psum / pcount beyond a float: validation cannot build it either
        return
    model = emission.to_model("EUR", score, flag)
    assert repr(model) == repr(expected)  # NaN != NaN, so compare the reprs
    assert list(model.__dict__) == list(expected.__dict__)
    assert [type(v) for v in model.__dict__.values()] == [
        type(v) for v in expected.__dict__.values()
    ]
    assert model.json_bytes() == expected.json_bytes() == expected.model_dump_json().encode()
    assert repr(model.model_dump()) == repr(expected.model_dump())
    assert model.model_fields_set == expected.model_fields_set


def test_trusted_takes_the_values_as_they_are() -> None:
    """No validation: what it is given is what it holds (a wrong type is not caught)."""
    values = validated(
        Emission("d", "hour", 0, 3_600_000_000, Acc(1), Decimal("0.1"), 0), "EUR", None, None
    ).model_dump()
    values["reading_count"] = "not a count"
    model = WindowAggregate.trusted(values)
    assert model.reading_count == "not a count"  # type: ignore[comparison-overlap]
    with pytest.raises(ValueError):
        WindowAggregate(**values)
