"""WindowAggregate.json_bytes is the metrics topic's value: it must equal pydantic's own
``model_dump_json`` byte for byte for every value the model accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from models.metrics import PERIODS, WindowAggregate, json_many

floats = st.floats(allow_nan=True, allow_infinity=True)
optional_floats = st.none() | floats
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3)), None]
)


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    moment = draw(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30)))
    return moment.replace(tzinfo=draw(zones))


@given(
    device_id=st.text(min_size=1, max_size=40),
    period=st.sampled_from(PERIODS),
    start=instants(),
    end=instants(),
    counts=st.tuples(st.integers(0, 2**40), st.integers(0, 2**40)),
    power=st.tuples(optional_floats, optional_floats, optional_floats),
    energy=floats,
    cost=st.decimals(allow_nan=False, allow_infinity=False),
    coverage=st.tuples(floats, floats),
    first=st.none() | instants(),
    last=st.none() | instants(),
    score=optional_floats,
    flag=st.none() | st.booleans(),
    revision=st.integers(0, 2**31),
)
def test_json_bytes_equals_pydantic(
    device_id: str,
    period: str,
    start: datetime,
    end: datetime,
    counts: tuple[int, int],
    power: tuple[float | None, float | None, float | None],
    energy: float,
    cost: Decimal,
    coverage: tuple[float, float],
    first: datetime | None,
    last: datetime | None,
    score: float | None,
    flag: bool | None,
    revision: int,
) -> None:
    window = WindowAggregate(
        device_id=device_id,
        period=period,  # type: ignore[arg-type]
        window_start=start,
        window_end=end,
        reading_count=counts[0],
        power_reading_count=counts[1],
        power_mean_w=power[0],
        power_min_w=power[1],
        power_max_w=power[2],
        energy_kwh=energy,
        cost=cost,
        currency="EUR",
        coverage=coverage[0],
        covered_seconds=coverage[1],
        first_ts=first,
        last_ts=last,
        anomaly_score=score,
        is_anomaly=flag,
        revision=revision,
    )
    assert window.json_bytes() == window.model_dump_json().encode()


@given(
    ids=st.lists(
        st.text(max_size=30) | st.sampled_from(['},{"device_id":', '"}', "\\"]),
        min_size=0,
        max_size=6,
    ),
    currency=st.text(max_size=20) | st.just('x},{"device_id":"y'),
    energy=floats,
)
def test_json_many_equals_json_bytes_of_each(ids: list[str], currency: str, energy: float) -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    windows = [
        WindowAggregate(
            device_id=device_id,
            period="hour",
            window_start=start,
            window_end=start + timedelta(hours=1),
            reading_count=1,
            power_reading_count=0,
            power_mean_w=None,
            power_min_w=None,
            power_max_w=None,
            energy_kwh=energy,
            cost=Decimal("0.1"),
            currency=currency,
            coverage=1.0,
            covered_seconds=3600.0,
            first_ts=start,
            last_ts=None,
            revision=k,
        )
        for k, device_id in enumerate(ids)
    ]
    assert json_many(windows) == [w.json_bytes() for w in windows]


def test_json_many_of_reordered_fields_falls_back() -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    values = {
        "device_id": "a", "period": "hour", "window_start": start,
        "window_end": start + timedelta(hours=1), "reading_count": 1,
        "power_reading_count": 0, "power_mean_w": None, "power_min_w": None,
        "power_max_w": None, "energy_kwh": 0.5, "cost": Decimal("0.1"), "currency": "EUR",
        "coverage": 1.0, "covered_seconds": 3600.0, "first_ts": start, "last_ts": None,
        "anomaly_score": None, "is_anomaly": None, "revision": 0,
    }  # fmt: skip
    odd = WindowAggregate.trusted(dict(reversed(list(values.items()))))
    windows = [WindowAggregate(**values), odd, WindowAggregate(**values)]
    assert json_many(windows) == [w.json_bytes() for w in windows]
