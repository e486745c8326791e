"""Timers that create jobs: the slot each firing covers, and idempotency (a timer firing
twice creates one job)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agents.jobs.schedule import create_scheduled, scheduled_job_id, slot_for
from storage.jobs import PostgresJobStore


@pytest.mark.parametrize(
    ("kind", "now", "zone", "slot", "parameters"),
    [
        (
            "rollup",
            "2026-11-27T10:10:00+00:00",
            "UTC",
            "2026-11-27T09:00:00Z",
            {"hour": "2026-11-27T09:00:00Z"},
        ),
        # five minutes of grace not yet over at 10:03: the hour before 09:00 is the last closed
        (
            "rollup",
            "2026-11-27T10:03:00+00:00",
            "UTC",
            "2026-11-27T08:00:00Z",
            {"hour": "2026-11-27T08:00:00Z"},
        ),
        (
            "anomaly_review",
            "2026-11-27T00:30:00+01:00",
            "Europe/Berlin",
            "2026-11-26",
            {"date": "2026-11-26"},
        ),
        # 00:30 in Kolkata is still the previous UTC day: the review is of the local day
        (
            "anomaly_review",
            "2026-11-26T19:00:00+00:00",
            "Asia/Kolkata",
            "2026-11-26",
            {"date": "2026-11-26"},
        ),
        ("cleanup", "2026-11-29T03:00:00+01:00", "Europe/Berlin", "2026-W48", {}),
    ],
)
def test_slot_of_a_firing(
    kind: str, now: str, zone: str, slot: str, parameters: dict[str, Any]
) -> None:
    assert slot_for(kind, datetime.fromisoformat(now), zone, 300.0) == (slot, parameters)


def test_ids_differ_by_app_kind_and_slot() -> None:
    ids = {
        scheduled_job_id("a", "rollup", "s1"),
        scheduled_job_id("a", "rollup", "s2"),
        scheduled_job_id("a", "cleanup", "s1"),
        scheduled_job_id("b", "rollup", "s1"),
    }
    assert len(ids) == 4 and scheduled_job_id("a", "rollup", "s1") in ids


async def test_a_timer_firing_twice_creates_one_job(pg_pool: Any) -> None:
    store = PostgresJobStore(pg_pool)
    now = datetime(2026, 11, 27, 0, 30, tzinfo=UTC)
    first = await create_scheduled(store, "app", "anomaly_review", now, "UTC", 300.0)
    second = await create_scheduled(store, "app", "anomaly_review", now, "UTC", 300.0)
    assert first is not None and second is None
    assert first.status == "pending" and first.parameters == {"date": "2026-11-26"}
    count = await pg_pool.fetchval("SELECT count(*) FROM jobs WHERE kind = 'anomaly_review'")
    assert count == 1
