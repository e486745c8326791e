"""Report parameters: whole local days, defaults, and errors that name the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reports.parameters import FORMATS, ReportParameterError, parse_parameters
from reports.svg import nice_ticks, tick_format


def test_dates_are_local_days_and_defaults_apply() -> None:
    parameters = parse_parameters({"start": "2026-03-01", "end": "2026-04-01"}, "Europe/Berlin")
    assert parameters.start == datetime(2026, 2, 28, 23, tzinfo=UTC)
    assert parameters.end == datetime(2026, 3, 31, 22, tzinfo=UTC)
    assert parameters.formats == FORMATS
    assert parameters.device_ids is None


def test_instants_widen_to_whole_local_days() -> None:
    parameters = parse_parameters(
        {
            "start": "2026-03-10T13:45:00Z",
            "end": datetime(2026, 3, 12, 6, tzinfo=UTC),
            "device_ids": ["b", "a", "b"],
            "formats": ["html", "csv"],
        },
        "UTC",
    )
    assert parameters.start == datetime(2026, 3, 10, tzinfo=UTC)
    assert parameters.end == datetime(2026, 3, 13, tzinfo=UTC)
    assert parameters.device_ids == ("b", "a")
    assert parameters.formats == ("csv", "html")
    assert parameters.requested_start == datetime(2026, 3, 10, 13, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"end": "2026-03-02"}, "start"),
        ({"start": "2026-03-02"}, "end"),
        ({"start": "yesterday", "end": "2026-03-02"}, "start"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "end"),
        ({"start": "2026-03-01", "end": "2026-03-01"}, "end"),
        ({"start": "2020-01-01", "end": "2026-03-01"}, "end"),
        ({"start": "2026-03-01", "end": "2026-03-02", "formats": ["pdf"]}, "formats"),
        ({"start": "2026-03-01", "end": "2026-03-02", "formats": []}, "formats"),
        ({"start": "2026-03-01", "end": "2026-03-02", "device_ids": "meter"}, "device_ids"),
        ({"start": "2026-03-01", "end": "2026-03-02", "device_ids": []}, "device_ids"),
        ({"start": "2026-03-01", "end": "2026-03-02", "device_ids": [""]}, "device_ids"),
        ({"start": "2026-03-01", "end": "2026-03-02", "devices": ["a"]}, "devices"),
        ({"start": 17, "end": "2026-03-02"}, "start"),
    ],
)
def test_bad_parameters_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ReportParameterError) as caught:
        parse_parameters(raw, "UTC")
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("maximum", "ticks"),
    [
        (0.0, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (7.3, [0, 2, 4, 6, 8]),
        (10.0, [0, 2, 4, 6, 8, 10]),
        (0.043, [0, 0.01, 0.02, 0.03, 0.04, 0.05]),
        (2300.0, [0, 500, 1000, 1500, 2000, 2500]),
    ],
)
def test_nice_ticks(maximum: float, ticks: list[float]) -> None:
    assert nice_ticks(maximum) == pytest.approx(ticks)
    assert nice_ticks(maximum)[-1] >= maximum


def test_tick_labels_have_enough_decimals() -> None:
    assert tick_format([0, 0.01, 0.02])(0.02) == "0.02"
    assert tick_format([0, 500, 1000])(1000) == "1,000"
