"""``GET /api/v1/stats``: every worker's published counters, summed, plus consumer lag.

Workers publish cumulative counters through StatsStore; this module adds them up. Rates
(``rate_*``) only count for workers that reported recently: a stopped worker's last rate
says nothing about now. ``partitions`` is per-worker detail and is not summed (after a
rebalance two workers may list the same partition).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from api.errors import DependencyUnavailable
from api.kafka import KafkaInspector, KafkaUnavailable, PartitionOffsets, TopicMissing
from api.responses import model_response
from api.state import AppState
from models.api import ConsumerLag, PartitionLag, StatsResponse, StatsTotals, WorkerStats
from models.jobs import JobCounts

log = logging.getLogger(__name__)

STALE_AFTER_S = 60.0
NOT_SUMMED = frozenset({"partitions"})


async def stats(request: Request[AppState]) -> Response:
    state = request.state
    settings = state["settings"]
    records, lag, jobs = await asyncio.gather(
        load_worker_stats(state),
        consumer_lag(state["kafka"], settings.app_id, settings.readings_topic),
        _job_counts(state),
    )
    now = datetime.now(UTC)
    workers = parse_workers(records, now)
    body = StatsResponse(
        generated_at=now,
        stale_after_s=STALE_AFTER_S,
        workers_total=len(workers),
        workers_fresh=sum(not worker.stale for worker in workers),
        totals=sum_totals(workers),
        workers=workers,
        consumer_lag=lag,
        jobs=jobs,
    )
    return model_response(body)


async def _job_counts(state: AppState) -> JobCounts | None:
    try:
        return await asyncio.wait_for(state["jobs"].counts(), state["check_timeout_s"])
    except Exception as exc:  # the statistics still answer without the job counts
        log.warning("could not count jobs", extra={"error": repr(exc)})
        return None


async def load_worker_stats(state: AppState) -> list[dict[str, Any]]:
    try:
        return await state["stats_store"].load_worker_stats()
    except (OSError, TimeoutError) as exc:
        raise DependencyUnavailable(
            "database", f"worker stats could not be read: {type(exc).__name__}"
        ) from exc


def parse_workers(records: Sequence[Mapping[str, Any]], now: datetime) -> list[WorkerStats]:
    """The stored records as WorkerStats by worker id; malformed ones are logged and skipped."""
    workers = []
    for record in records:
        try:
            workers.append(worker_stats(record, now, STALE_AFTER_S))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("skipping a malformed worker stats record", extra={"error": repr(exc)})
    workers.sort(key=lambda worker: worker.worker_id)
    return workers


def worker_stats(record: Mapping[str, Any], now: datetime, stale_after_s: float) -> WorkerStats:
    """One stored record ``{"worker_id", "updated_at", "stats"}`` with its age."""
    updated_at = _aware(record["updated_at"])
    age_s = max(0.0, (now - updated_at).total_seconds())
    raw_stats = record.get("stats")
    return WorkerStats(
        worker_id=str(record["worker_id"]),
        updated_at=updated_at,
        age_s=round(age_s, 3),
        stale=age_s > stale_after_s,
        stats=dict(raw_stats) if isinstance(raw_stats, Mapping) else {},
    )


def sum_totals(workers: Sequence[WorkerStats]) -> StatsTotals:
    """Sum numeric counters (recursing into dicts such as ``rejected_by_reason``)."""
    totals: dict[str, Any] = {}
    reported_rejected = False
    for worker in workers:
        reported_rejected = reported_rejected or _is_number(worker.stats.get("readings_rejected"))
        _add_into(totals, worker.stats, fresh=not worker.stale)
    if not reported_rejected:
        by_reason = totals.get("rejected_by_reason", {})
        totals["readings_rejected"] = sum(v for v in by_reason.values() if _is_number(v))
    return StatsTotals.model_validate(totals)


def _add_into(totals: dict[str, Any], stats: Mapping[str, Any], *, fresh: bool) -> None:
    for key, value in stats.items():
        if key in NOT_SUMMED:
            continue
        if _is_number(value):
            if key.startswith("rate_") and not fresh:
                value = 0
            current = totals.get(key, 0)
            if _is_number(current):
                totals[key] = current + value
        elif isinstance(value, Mapping):
            nested = totals.get(key, {})
            if isinstance(nested, dict):
                _add_into(nested, value, fresh=fresh)
                if nested:  # a dict of statuses (no numbers) is not a total
                    totals[key] = nested


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _aware(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    elif isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime):
        raise TypeError(f"updated_at is {type(value).__name__}, not a date-time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def consumer_lag(kafka: KafkaInspector, group: str, topic: str) -> ConsumerLag:
    """Lag per partition measured against the broker; an outage becomes ``error``, not 500."""
    try:
        offsets = await kafka.group_offsets(group, topic)
    except (KafkaUnavailable, TopicMissing) as exc:
        return ConsumerLag(group=group, topic=topic, total_lag=None, error=str(exc))
    partitions = [partition_lag(offset) for offset in offsets]
    return ConsumerLag(
        group=group,
        topic=topic,
        partitions=partitions,
        total_lag=sum(p.lag for p in partitions),
    )


def partition_lag(offsets: PartitionOffsets) -> PartitionLag:
    """End minus committed; a group that never committed starts from the beginning.

    Clamped at 0: this broker may report an end offset below a commit (DESIGN.md, Tansu).
    """
    position = offsets.committed if offsets.committed is not None else offsets.beginning
    return PartitionLag(
        partition=offsets.partition,
        end_offset=offsets.end,
        committed_offset=offsets.committed,
        lag=max(0, offsets.end - position),
    )
