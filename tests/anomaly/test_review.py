"""The daily anomaly review's summary (streams/anomaly_review.py)."""

from __future__ import annotations

from datetime import date

import pytest

from streams.anomaly_review import HISTORY_DAYS, previous_day, review_day, summarise
from streams.timeparse import parse_rfc3339

HOUR = 3_600_000_000
DAY = 24 * HOUR


def rows_for(zone: str, day: date) -> list[dict[str, object]]:
    """Three devices with history; on ``day`` 'hot' has two flagged hours and a flagged day,
    'odd' one flagged hour, 'calm' nothing."""
    review = review_day(day, zone)
    rows: list[dict[str, object]] = []
    for device, daily in (("hot", 24.0), ("odd", 12.0), ("calm", 5.0)):
        start = review.history_start_us
        while start < review.end_us:
            today = start >= review.start_us
            for hour in range(24):
                energy = daily / 24
                flagged = False
                if today and device == "hot" and hour in (2, 3):
                    energy, flagged = 9.0, True
                if today and device == "odd" and hour == 20:
                    energy, flagged = 2.0, True
                rows.append(
                    {
                        "device_id": device,
                        "period": "hour",
                        "window_start": start + hour * HOUR,
                        "energy_kwh": energy,
                        "anomaly_score": 0.9 if flagged else 0.3,
                        "is_anomaly": flagged,
                    }
                )
            total = sum(
                float(r["energy_kwh"])  # type: ignore[arg-type]
                for r in rows[-24:]
            )
            rows.append(
                {
                    "device_id": device,
                    "period": "day",
                    "window_start": start,
                    "energy_kwh": total,
                    "anomaly_score": 0.8 if today and device == "hot" else 0.2,
                    "is_anomaly": today and device == "hot",
                }
            )
            start += DAY
    return rows


def test_summary_counts_devices_top_windows_and_compares_with_the_usual_day() -> None:
    day = date(2026, 11, 26)
    review = review_day(day, "UTC")
    result = summarise(review, rows_for("UTC", day), windows_scored=75)
    assert result["date"] == "2026-11-26"
    assert result["start"] == "2026-11-26T00:00:00Z" and result["end"] == "2026-11-27T00:00:00Z"
    assert result["windows_flagged"] == 4 and result["devices_flagged"] == 2
    assert result["flag_rate"] == pytest.approx(4 / 75, abs=1e-6)
    hot, odd = result["devices"]
    assert hot["device_id"] == "hot" and hot["flagged_hours"] == 2 and hot["day_flagged"]
    assert hot["usual_day_kwh"] == pytest.approx(24.0)
    assert hot["energy_kwh"] == pytest.approx(22 * 1.0 + 18.0)
    assert hot["ratio_to_usual"] == pytest.approx(40.0 / 24.0, abs=1e-4)
    assert hot["usual_basis"] == "same weekday" and hot["usual_days"] == 4
    assert odd["device_id"] == "odd" and odd["flagged_windows"] == 1
    top = result["top_windows"]
    assert [w["anomaly_score"] for w in top] == sorted(
        (w["anomaly_score"] for w in top), reverse=True
    )
    hour_window = next(w for w in top if w["device_id"] == "hot" and w["period"] == "hour")
    assert hour_window["usual_kwh"] == pytest.approx(1.0)
    assert hour_window["ratio_to_usual"] == pytest.approx(9.0)
    assert "calm" not in {d["device_id"] for d in result["devices"]}


def test_top_is_capped_and_no_flags_gives_an_empty_review() -> None:
    day = date(2026, 11, 26)
    review = review_day(day, "UTC")
    assert (
        len(summarise(review, rows_for("UTC", day), windows_scored=75, top=2)["top_windows"]) == 2
    )
    calm = [r for r in rows_for("UTC", day) if r["device_id"] == "calm"]
    empty = summarise(review, calm, windows_scored=25)
    assert empty["devices"] == [] and empty["windows_flagged"] == 0 and empty["top_windows"] == []


@pytest.mark.parametrize(
    ("zone", "day", "start", "end"),
    [
        ("Europe/Berlin", date(2026, 10, 25), "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"),
        ("Europe/Berlin", date(2026, 3, 29), "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"),
        ("Asia/Kolkata", date(2026, 1, 5), "2026-01-04T18:30:00Z", "2026-01-05T18:30:00Z"),
    ],
)
def test_review_day_is_the_local_day_window(zone: str, day: date, start: str, end: str) -> None:
    review = review_day(day, zone)
    assert (review.start_us, review.end_us) == (parse_rfc3339(start), parse_rfc3339(end))
    assert review.history_start_us < review.start_us - (HISTORY_DAYS - 1) * DAY


def test_previous_day_is_local() -> None:
    # 2026-11-27 00:30 in Kolkata is still the 26th in UTC.
    now = parse_rfc3339("2026-11-26T19:00:00Z")
    assert previous_day(now, "Asia/Kolkata").day == date(2026, 11, 26)
    assert previous_day(now, "UTC").day == date(2026, 11, 25)
