"""The report job against a real PostgreSQL: windows written by the sink, read back by
``build_report`` through a fake job context that keeps artifacts and progress."""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.metrics import WindowAggregate
from reports import ReportContext, ReportParameterError, build_report
from service.settings import Settings
from storage.postgres_sink import PostgresSink
from tests.reports.factory import device_windows

pytestmark = pytest.mark.integration

TIMEZONE = "Europe/Berlin"


@dataclass
class FakeJobContext:
    pool: Any
    parameters: dict[str, Any]
    settings: Settings = field(default_factory=lambda: Settings(timezone=TIMEZONE, demo=False))
    job_id: uuid.UUID = field(default_factory=uuid.uuid4)
    progress_seen: list[int] = field(default_factory=list)
    artifacts: dict[str, tuple[str, bytes]] = field(default_factory=dict)

    async def progress(self, percent: int) -> None:
        self.progress_seen.append(percent)

    async def save_artifact(self, name: str, content_type: str, data: bytes) -> None:
        self.artifacts[name] = (content_type, data)


async def store(pool: Any, windows: list[WindowAggregate]) -> None:
    sink = PostgresSink(pool)
    await sink.start()
    await sink.write(windows)


def days_of(windows: list[WindowAggregate], device_id: str | None = None) -> list[WindowAggregate]:
    return [
        w for w in windows if w.period == "day" and (device_id is None or w.device_id == device_id)
    ]


async def test_report_from_postgres_totals_match_the_stored_windows(pg_pool: Any) -> None:
    # February to April: the report asks for March only.
    windows = []
    windows += device_windows("meter-a", date(2026, 2, 27), 35, TIMEZONE, flag_hour=(5, 19))
    windows += device_windows("meter-b", date(2026, 2, 27), 35, TIMEZONE, scale=3.0, flag_day=7)
    windows += device_windows("meter-c", date(2026, 3, 1), 3, TIMEZONE)
    await store(pg_pool, windows)
    zone = ZoneInfo(TIMEZONE)
    march = [
        w
        for w in windows
        if date(2026, 3, 1) <= w.window_start.astimezone(zone).date() < date(2026, 4, 1)
    ]
    ctx = FakeJobContext(pg_pool, {"start": "2026-03-01", "end": "2026-04-01"})
    checked: ReportContext = ctx  # the fake satisfies the protocol build_report needs

    result = await build_report(checked)

    march_days = days_of(march)
    assert result["devices"] == 3
    assert result["energy_kwh"] == pytest.approx(math.fsum(w.energy_kwh for w in march_days))
    assert Decimal(result["cost"]) == sum((w.cost for w in march_days), Decimal(0))
    assert result["currency"] == "EUR"
    assert result["anomalies"] == 2
    assert result["windows"] == len(march)
    assert result["period"]["days"] == 31
    assert [a["name"] for a in result["artifacts"]] == ["report.csv", "report.json", "report.html"]
    assert set(ctx.artifacts) == {"report.csv", "report.json", "report.html"}
    for artifact in result["artifacts"]:
        content_type, body = ctx.artifacts[artifact["name"]]
        assert artifact["bytes"] == len(body) > 0
        assert artifact["content_type"] == content_type
    assert ctx.artifacts["report.html"][0].startswith("text/html")
    assert ctx.progress_seen == sorted(ctx.progress_seen) and ctx.progress_seen[-1] == 100

    document = json.loads(ctx.artifacts["report.json"][1])
    assert Decimal(document["totals"]["cost"]) == Decimal(result["cost"])
    assert document["job_id"] == str(ctx.job_id)
    rows = list(csv.DictReader(io.StringIO(ctx.artifacts["report.csv"][1].decode())))
    assert len(rows) == len(march)
    assert sum(Decimal(r["cost"]) for r in rows if r["period"] == "day") == Decimal(result["cost"])
    assert b"meter-b" in ctx.artifacts["report.html"][1]


async def test_device_filter_and_formats(pg_pool: Any) -> None:
    windows = device_windows("meter-a", date(2026, 3, 1), 3) + device_windows(
        "meter-b", date(2026, 3, 1), 3, scale=2.0
    )
    await store(pg_pool, windows)
    ctx = FakeJobContext(
        pg_pool,
        {
            "device_ids": ["meter-b", "meter-unknown"],
            "start": "2026-03-02T00:00:00Z",
            "end": "2026-03-03T00:00:00Z",
            "formats": ["json"],
        },
        settings=Settings(timezone="UTC", demo=False),
    )
    result = await build_report(ctx)
    assert set(ctx.artifacts) == {"report.json"}
    assert result["devices"] == 1 and result["device_ids"] == ["meter-b"]
    second_day = [w for w in days_of(windows, "meter-b") if w.window_start.day == 2]
    assert Decimal(result["cost"]) == second_day[0].cost


async def test_no_data_is_a_report_not_an_error(pg_pool: Any) -> None:
    ctx = FakeJobContext(pg_pool, {"start": "2026-03-01", "end": "2026-03-02"})
    result = await build_report(ctx)
    assert result["empty"] is True and result["devices"] == 0
    assert b"No data." in ctx.artifacts["report.html"][1]


async def test_bad_parameters_fail_before_any_work(pg_pool: Any) -> None:
    ctx = FakeJobContext(pg_pool, {"start": "2026-03-02", "end": "2026-03-01"})
    with pytest.raises(ReportParameterError, match=r"^end: "):
        await build_report(ctx)
    assert ctx.artifacts == {} and ctx.progress_seen == []
