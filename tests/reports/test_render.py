"""Rendering without a database: CSV, JSON and HTML from ReportData built in memory."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from reports import render_csv, render_html, render_json, summarise
from reports.render_csv import CSV_COLUMNS
from reports.render_html import ANOMALY_COLOR, ENERGY_COLOR
from tests.reports.factory import device_windows, report_data, window

MALICIOUS = '<script>alert("x")</script>&amp;"quoted",comma'
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "source", "wbr"}


class StrictHTML(HTMLParser):
    """Checks that every element is closed in order (a well-formedness check for HTML)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> without an open element"
        opened = self.stack.pop()
        assert opened == tag, f"<{opened}> closed by </{tag}>"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(body: bytes) -> StrictHTML:
    parser = StrictHTML()
    parser.feed(body.decode("utf-8"))
    parser.close()
    assert parser.stack == [], f"unclosed elements: {parser.stack}"
    return parser


def svgs(body: bytes) -> list[ET.Element]:
    """Every inline chart, parsed as XML (SVG must be well-formed XML)."""
    fragments = re.findall(r"<svg\b.*?</svg>", body.decode("utf-8"), flags=re.S)
    return [ET.fromstring(fragment) for fragment in fragments]


SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def march() -> list:  # type: ignore[type-arg]
    windows = []
    windows += device_windows(
        "meter-a", date(2026, 3, 1), 31, "Europe/Berlin", scale=1.0, flag_hour=(3, 19), flag_day=10
    )
    windows += device_windows("meter-b", date(2026, 3, 1), 31, "Europe/Berlin", scale=2.5)
    windows += device_windows(MALICIOUS, date(2026, 3, 5), 5, "Europe/Berlin", scale=0.5)
    return windows


def test_csv_parses_back_with_the_stored_numbers(march: list) -> None:  # type: ignore[type-arg]
    data = report_data(march, "2026-03-01", "2026-04-01", "Europe/Berlin")
    rows = list(csv.DictReader(io.StringIO(render_csv(data).decode("utf-8"))))
    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == len(march)
    by_key = {(w.device_id, w.period, w.window_start): w for w in march}
    for row in rows:
        start = datetime.fromisoformat(row["window_start"].replace("Z", "+00:00"))
        stored = by_key[(row["device_id"], row["period"], start)]
        assert float(row["energy_kwh"]) == stored.energy_kwh
        assert Decimal(row["cost"]) == stored.cost
        assert row["currency"] == "EUR"
        assert float(row["coverage"]) == stored.coverage
        assert float(row["power_max_w"]) == stored.power_max_w
        assert row["is_anomaly"] == ("true" if stored.is_anomaly else "false")
        assert datetime.fromisoformat(row["window_start_local"]) == start
    assert {row["device_id"] for row in rows} == {"meter-a", "meter-b", MALICIOUS}
    day_rows = [r for r in rows if r["device_id"] == "meter-a" and r["period"] == "day"]
    assert math.fsum(float(r["energy_kwh"]) for r in day_rows) == pytest.approx(
        math.fsum(w.energy_kwh for w in march if w.device_id == "meter-a" and w.period == "day")
    )


def test_csv_writes_nulls_as_empty_cells() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    bare = window("m", "hour", start, start + timedelta(hours=1), 0.5)
    bare = bare.model_copy(update={"power_max_w": None, "anomaly_score": None, "is_anomaly": None})
    rows = list(
        csv.DictReader(
            io.StringIO(
                render_csv(
                    report_data([bare], "2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z")
                ).decode()
            )
        )
    )
    assert rows[0]["power_max_w"] == rows[0]["anomaly_score"] == rows[0]["is_anomaly"] == ""


def test_json_totals_are_the_sums_of_the_day_windows(march: list) -> None:  # type: ignore[type-arg]
    data = report_data(march, "2026-03-01", "2026-04-01", "Europe/Berlin")
    document = json.loads(render_json(data))
    days = [w for w in march if w.period == "day"]
    totals = document["totals"]
    assert totals["energy_kwh"] == pytest.approx(math.fsum(w.energy_kwh for w in days), rel=1e-12)
    assert Decimal(totals["cost"]) == sum((w.cost for w in days), Decimal(0))
    assert totals["devices"] == 3
    assert totals["anomalies"] == 2  # one hour and one day window of meter-a
    assert totals["hour_windows"] + totals["day_windows"] == len(march)
    assert document["currency"] == "EUR"
    assert document["period"]["days"] == 31
    for device in document["devices"]:
        own = [w for w in days if w.device_id == device["device_id"]]
        assert Decimal(device["cost"]) == sum((w.cost for w in own), Decimal(0))
        assert device["energy_kwh"] == pytest.approx(math.fsum(w.energy_kwh for w in own))
        assert len(device["daily"]) == 31
        assert len(device["hourly_profile_kwh"]) == 24
    # Highest energy first; the overall series adds up to the total.
    assert [d["device_id"] for d in document["devices"]] == ["meter-b", "meter-a", MALICIOUS]
    overall = document["overall"]["daily"]
    assert sum(Decimal(p["cost"]) for p in overall if p["cost"]) == Decimal(totals["cost"])
    flagged_day = next(p for p in document["devices"][1]["daily"] if p["flagged_day_windows"])
    assert flagged_day["date"] == "2026-03-11"


def test_days_are_local_and_dst_days_have_their_length(march: list) -> None:  # type: ignore[type-arg]
    summary = summarise(report_data(march, "2026-03-01", "2026-04-01", "Europe/Berlin"))
    assert summary.days[0] == date(2026, 3, 1) and summary.days[-1] == date(2026, 3, 31)
    assert summary.period_seconds == (31 * 24 - 1) * 3600  # spring forward on 29 March
    meter_a = next(d for d in summary.devices if d.device_id == "meter-a")
    assert meter_a.coverage == pytest.approx(1.0)
    # The factory's profile peaks at local noon; hour windows are UTC hours.
    profile = [v or 0.0 for v in meter_a.hourly_profile]
    assert profile.index(max(profile)) == 12
    partial = next(d for d in summary.devices if d.device_id == MALICIOUS)
    assert partial.days_with_data == 5
    assert partial.coverage == pytest.approx(5 / (31 - 1 / 24), rel=1e-9)


def test_a_day_without_its_day_window_is_summed_from_its_hours() -> None:
    windows = device_windows("m", date(2026, 3, 1), 2)
    today = [w for w in windows if not (w.period == "day" and w.window_start.day == 2)]
    summary = summarise(report_data(today, "2026-03-01", "2026-03-03"))
    second = summary.devices[0].daily[1]
    assert second.from_hours
    hours = [w for w in windows if w.period == "hour" and w.window_start.day == 2]
    assert second.energy_kwh == pytest.approx(math.fsum(h.energy_kwh for h in hours))
    assert second.cost == sum((h.cost for h in hours), Decimal(0))
    assert summary.energy_kwh == pytest.approx(
        math.fsum(w.energy_kwh for w in windows if w.period == "day")
    )


def test_windows_in_another_currency_are_left_out_of_costs() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    windows = [
        window("m", "day", start, start + timedelta(days=1), 2.0, cost=Decimal("0.60")),
        window(
            "m",
            "day",
            start + timedelta(days=1),
            start + timedelta(days=2),
            1.0,
            cost=Decimal("5"),
            currency="USD",
        ),
    ]
    data = report_data(windows, "2026-03-01", "2026-03-03")
    summary = summarise(data)
    assert summary.cost == Decimal("0.60")
    assert summary.energy_kwh == 3.0
    assert summary.other_currencies == {"USD": 1}
    assert b"another currency" in render_html(data, summary)


def test_html_is_well_formed_with_accessible_svg_charts(march: list) -> None:  # type: ignore[type-arg]
    body = render_html(report_data(march, "2026-03-01", "2026-04-01", "Europe/Berlin"))
    parsed = parse_html(body)
    charts = svgs(body)
    assert len(charts) == 3 * (1 + 3)  # overall plus each device: energy, profile, cost
    for chart in charts:
        assert chart.get("role") == "img"
        title = chart.find(f"{SVG}title")
        assert title is not None and title.text
        assert chart.find(f"{SVG}desc") is not None
    titles = [chart.find(f"{SVG}title").text for chart in charts]  # type: ignore[union-attr]
    assert "Daily energy: all devices" in titles
    assert "Average hourly profile: meter-a" in titles
    assert "Daily cost: meter-b" in titles
    # Bars in the series colour; flagged days in the anomaly colour.
    text = body.decode()
    assert text.count(f'fill="{ENERGY_COLOR}"') >= 31
    assert f'fill="{ANOMALY_COLOR}"' in text
    # Self-contained: no scripts, no external resources.
    assert "script" not in parsed.tags
    assert not re.search(r"""(src|href)=["'](?!#)""", text)
    assert "@import" not in text and "url(" not in text
    assert "Flagged anomalies" in "".join(parsed.text)


def test_html_escapes_device_ids(march: list) -> None:  # type: ignore[type-arg]
    body = render_html(report_data(march, "2026-03-01", "2026-04-01", "Europe/Berlin")).decode()
    assert "<script" not in body.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;amp;" in body
    parsed = parse_html(body.encode())
    assert "script" not in parsed.tags
    assert MALICIOUS in "".join(parsed.text)


def test_empty_data_gives_a_clear_no_data_report() -> None:
    data = report_data([], "2026-03-01", "2026-03-08", device_ids=["meter-x"])
    body = render_html(data)
    parsed = parse_html(body)
    text = " ".join(parsed.text)
    assert "No data." in text and "meter-x" in text
    assert svgs(body) == []
    assert render_csv(data).decode().strip() == ",".join(CSV_COLUMNS)
    document = json.loads(render_json(data))
    assert document["totals"]["devices"] == 0
    assert document["totals"]["energy_kwh"] == 0
    assert document["totals"]["cost"] == "0"
    assert document["devices"] == [] and document["anomalies"] == []


def test_many_devices_are_capped_in_sections_and_fast() -> None:
    windows = []
    for index in range(100):
        windows += device_windows(f"d{index:03d}", date(2026, 3, 1), 31, scale=1 + index / 10)
    data = report_data(windows, "2026-03-01", "2026-04-01")
    summary = summarise(data)
    body = render_html(data, summary, max_table_devices=40)
    parse_html(body)
    assert len(svgs(body)) == 3 * (1 + 10)
    text = body.decode()
    assert "other 90 are in the device table" in text
    assert "60 more devices" in text
    assert summary.devices[0].device_id == "d099"
