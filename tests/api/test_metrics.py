"""GET /api/v1/metrics against a list-backed reader: validation, shape, pagination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from models.api import MetricItem, MetricsResponse, Problem
from tests.api.fakes import T0, FakeReader, window

URL = "/api/v1/metrics"
ITEM_FIELDS = [
    "device_id",
    "period",
    "window_start",
    "window_end",
    "reading_count",
    "power_mean_w",
    "power_min_w",
    "power_max_w",
    "energy_kwh",
    "cost",
    "currency",
    "coverage",
    "first_ts",
    "last_ts",
    "anomaly_score",
    "is_anomaly",
    "revision",
    "power_reading_count",
    "covered_seconds",
]


def problem_of(response: Any, status: int = 400) -> Problem:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return Problem.model_validate_json(response.content)


def assert_rejected(client: TestClient, params: dict[str, str], field: str, rule: str) -> None:
    problem = problem_of(client.get(URL, params=params))
    assert problem.status == 400
    assert [(e.field, e.message) for e in problem.errors if e.field == field], problem
    messages = [e.message for e in problem.errors if e.field == field]
    assert any(rule in message for message in messages), messages
    assert problem.title == "Invalid parameters"
    assert f"{field}: " in problem.detail


@pytest.mark.parametrize(
    ("params", "field", "rule"),
    [
        ({"start": "yesterday"}, "start", "RFC 3339"),
        ({"start": "2024-13-01T00:00:00Z"}, "start", "not a valid date-time"),
        ({"start": "2024-02-30T00:00:00Z"}, "start", "not a valid date-time"),
        ({"start": "2024-03-01T25:00:00Z"}, "start", "not a valid date-time"),
        ({"end": "2024-03-01T00:00:00+24:00"}, "end", "offset out of range"),
        ({"end": "2024-03-01"}, "end", "no UTC offset"),
        ({"start": "2024-03-01T00:00:00"}, "start", "no UTC offset"),
        ({"start": "2024-03-01 00:00:00"}, "start", "no UTC offset"),
        ({"start": "2024-03-01T00:00:00 01:00"}, "start", "%2B"),
        ({"start": "1709251200"}, "start", "RFC 3339"),
        ({"start": ""}, "start", "RFC 3339"),
        (
            {"start": "2024-03-02T00:00:00Z", "end": "2024-03-01T00:00:00Z"},
            "start",
            "must not be after end",
        ),
        (
            {"start": "2024-03-01T02:00:00+01:00", "end": "2024-03-01T00:30:00Z"},
            "start",
            "must not be after end",
        ),
        ({"period": "year"}, "period", "one of hour, day, week, month"),
        ({"period": "HOUR"}, "period", "one of hour, day, week, month"),
        ({"period": ""}, "period", "one of hour, day, week, month"),
        ({"limit": "0"}, "limit", "must be between 1 and 1000"),
        ({"limit": "1001"}, "limit", "must be between 1 and 1000"),
        ({"limit": "99999999999999999999"}, "limit", "between 1 and 1000"),
        ({"limit": "abc"}, "limit", "must be an integer between 1 and 1000"),
        ({"limit": "-1"}, "limit", "integer"),
        ({"limit": "1.5"}, "limit", "integer"),
        ({"limit": " 5"}, "limit", "integer"),
        ({"limit": ""}, "limit", "integer"),
        ({"device_id": ""}, "device_id", "1-128 characters"),
        ({"device_id": "a" * 129}, "device_id", "1-128 characters"),
        ({"device_id": "dev 1"}, "device_id", "1-128 characters"),
        ({"device_id": "dev/1"}, "device_id", "1-128 characters"),
        ({"device_id": "dév"}, "device_id", "1-128 characters"),
        ({"device_id": "dev-1\n"}, "device_id", "1-128 characters"),
        ({"cursor": "not-a-cursor"}, "cursor", "not a cursor issued by this service"),
        ({"cursor": ""}, "cursor", "not a cursor issued by this service"),
        ({"cursor": "x" * 2049}, "cursor", "not a cursor issued by this service"),
        ({"anomalies_only": "yes"}, "anomalies_only", "one of true, false, 1, 0"),
        ({"anomalies_only": "True"}, "anomalies_only", "one of true, false, 1, 0"),
        ({"anomalies_only": ""}, "anomalies_only", "one of true, false, 1, 0"),
        ({"anomalies_only": "2"}, "anomalies_only", "one of true, false, 1, 0"),
    ],
)
def test_every_bad_parameter_is_400_naming_field_and_rule(
    client: TestClient, params: dict[str, str], field: str, rule: str
) -> None:
    assert_rejected(client, params, field, rule)


def test_repeated_parameter_is_rejected(client: TestClient) -> None:
    problem = problem_of(client.get(f"{URL}?limit=5&limit=6"))
    assert [(e.field, e.message) for e in problem.errors] == [
        ("limit", "must be given at most once")
    ]


def test_all_faults_are_reported_together(client: TestClient, reader: FakeReader) -> None:
    problem = problem_of(client.get(URL, params={"limit": "0", "period": "year", "start": "x"}))
    assert {e.field for e in problem.errors} == {"limit", "period", "start"}
    assert problem.type == "/docs#problem-invalid-parameters"
    assert reader.queries == []  # nothing reached the store


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-03-01T00:00:00Z", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01t00:00:00z", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T01:30:00+01:30", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-02-29T19:00:00-05:00", datetime(2024, 3, 1, tzinfo=UTC)),
        ("2024-03-01T00:00:00.1234567Z", datetime(2024, 3, 1, 0, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_dates_are_parsed_to_utc(
    client: TestClient, reader: FakeReader, raw: str, expected: datetime
) -> None:
    response = client.get(URL, params={"start": raw, "end": "2030-01-01T00:00:00Z"})
    assert response.status_code == 200, response.text
    start = reader.queries[-1].start
    assert start == expected
    assert start is not None and start.utcoffset() == timedelta(0)


def test_valid_filters_reach_the_reader(client: TestClient, reader: FakeReader) -> None:
    response = client.get(
        URL,
        params={
            "device_id": "Plant.A:meter_7-x",
            "period": "day",
            "start": "2024-03-01T00:00:00Z",
            "end": "2024-03-01T00:00:00Z",
            "limit": "1000",
            "anomalies_only": "1",
            "unknown_param": "ignored",
        },
    )
    assert response.status_code == 200, response.text
    query = reader.queries[-1]
    assert query.device_id == "Plant.A:meter_7-x"
    assert query.period == "day"
    assert query.start == query.end == datetime(2024, 3, 1, tzinfo=UTC)
    assert query.limit == 1000
    assert query.anomalies_only is True
    assert query.cursor is None


def test_defaults(client: TestClient, reader: FakeReader) -> None:
    assert client.get(URL).status_code == 200
    query = reader.queries[-1]
    assert (query.limit, query.anomalies_only, query.device_id, query.period) == (
        100,
        False,
        None,
        None,
    )
    for value, expected in (("true", True), ("0", False), ("false", False)):
        client.get(URL, params={"anomalies_only": value})
        assert reader.queries[-1].anomalies_only is expected


def test_response_shape(client: TestClient, reader: FakeReader) -> None:
    reader.windows = [window(cost="1.234567890")]
    response = client.get(URL)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["items", "next_cursor"]
    assert body["next_cursor"] is None
    (item,) = body["items"]
    assert sorted(item) == sorted(ITEM_FIELDS)
    assert item == {
        "device_id": "dev-1",
        "period": "hour",
        "window_start": "2024-03-01T00:00:00Z",
        "window_end": "2024-03-01T01:00:00Z",
        "reading_count": 12,
        "power_reading_count": 10,
        "power_mean_w": 500.0,
        "power_min_w": 120.5,
        "power_max_w": 900.0,
        "energy_kwh": 0.5,
        "cost": "1.234567890",
        "currency": "EUR",
        "coverage": 1.0,
        "covered_seconds": 3600.0,
        "first_ts": "2024-03-01T00:01:00Z",
        "last_ts": "2024-03-01T00:56:00.000250Z",
        "anomaly_score": 0.25,
        "is_anomaly": False,
        "revision": 0,
    }
    # The served body is exactly what the documented model describes.
    MetricsResponse.model_validate(body)
    assert set(MetricItem.model_fields) == set(ITEM_FIELDS)


@pytest.mark.parametrize(
    ("stored", "served"),
    [
        ("1.234567890", "1.234567890"),
        ("0.3", "0.300000"),
        ("0", "0.000000"),
        ("1E-9", "0.000000001"),
        ("12345678901234.123456789012", "12345678901234.123456789012"),
        ("-0.5", "-0.500000"),
    ],
)
def test_cost_is_an_exact_decimal_string(
    client: TestClient, reader: FakeReader, stored: str, served: str
) -> None:
    reader.windows = [window(cost=stored)]
    item = client.get(URL).json()["items"][0]
    assert item["cost"] == served
    assert Decimal(item["cost"]) == Decimal(stored)
    MetricItem.model_validate(item)


def test_timestamps_are_utc_with_z_even_if_stored_with_an_offset(
    client: TestClient, reader: FakeReader
) -> None:
    from datetime import timezone

    plus2 = timezone(timedelta(hours=2))
    reader.windows = [window(start=datetime(2024, 3, 1, 2, 0, tzinfo=plus2))]
    item = client.get(URL).json()["items"][0]
    assert item["window_start"] == "2024-03-01T00:00:00Z"
    assert item["window_end"] == "2024-03-01T01:00:00Z"
    assert item["first_ts"] == "2024-03-01T00:01:00Z"


def test_nullable_fields_are_null(client: TestClient, reader: FakeReader) -> None:
    stored = window().model_copy(
        update={
            "power_mean_w": None,
            "power_min_w": None,
            "power_max_w": None,
            "first_ts": None,
            "last_ts": None,
            "anomaly_score": None,
            "is_anomaly": None,
        }
    )
    reader.windows = [stored]
    item = client.get(URL).json()["items"][0]
    for key in ("power_mean_w", "first_ts", "last_ts", "anomaly_score", "is_anomaly"):
        assert item[key] is None
    MetricItem.model_validate(item)


def test_pagination_round_trip(client: TestClient, reader: FakeReader) -> None:
    reader.windows = [
        window(device_id=f"dev-{d}", start=T0 + timedelta(hours=h), is_anomaly=(h % 3 == 0))
        for d in range(3)
        for h in range(7)
    ]
    reader.windows.sort(key=lambda w: (w.device_id, w.period, w.window_start))
    seen: list[tuple[str, str]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "4"} | ({"cursor": cursor} if cursor else {})
        body = client.get(URL, params=params).json()
        pages += 1
        assert len(body["items"]) <= 4
        seen += [(item["device_id"], item["window_start"]) for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 6  # 21 items in pages of 4
    expected = [
        (w.device_id, w.window_start.isoformat().replace("+00:00", "Z")) for w in reader.windows
    ]
    assert seen == expected
    # Filters stay applied across pages.
    first = client.get(URL, params={"anomalies_only": "true", "limit": "2"}).json()
    second = client.get(
        URL, params={"anomalies_only": "true", "limit": "2", "cursor": first["next_cursor"]}
    ).json()
    flagged = [i["is_anomaly"] for i in first["items"] + second["items"]]
    assert flagged == [True] * 4


def test_reader_cursor_rejection_is_400(client: TestClient, reader: FakeReader) -> None:
    problem = problem_of(client.get(URL, params={"cursor": "bm90LWEta2V5"}))
    assert [e.field for e in problem.errors] == ["cursor"]


def test_database_outage_is_503_problem(client: TestClient, reader: FakeReader) -> None:
    reader.query_error = ConnectionRefusedError("connection refused")
    response = client.get(URL)
    problem = problem_of(response, 503)
    assert problem.title == "Database unavailable"
    assert response.headers["retry-after"] == "5"
    assert "refused" not in problem.detail or "ConnectionRefusedError" in problem.detail
