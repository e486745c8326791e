"""Timers that create jobs: the hourly roll-up, the daily anomaly review and the weekly
cleanup. Each firing is one job with an id derived from the kind and the slot it covers,
so a timer that fires twice (two leaders during a rebalance, a restart) creates it once."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agents.jobs.worker import JobWorker
from models.jobs import JOB_PARAMETERS, Job
from service.settings import Settings
from storage.jobs import PostgresJobStore

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("5d1f9a8e-3c1b-4f55-9b6e-0e8a5c2f7a11")


def scheduled_job_id(app_id: str, kind: str, slot: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{app_id}:{kind}:{slot}")


def slot_for(kind: str, now: datetime, timezone: str, grace_s: float) -> tuple[str, dict[str, Any]]:
    """(slot key, parameters) of the job a timer firing at ``now`` creates."""
    if kind == "rollup":
        closed = now - timedelta(seconds=grace_s)
        hour = closed.astimezone(ZoneInfo("UTC")).replace(minute=0, second=0, microsecond=0)
        hour -= timedelta(hours=1)
        text = hour.isoformat().replace("+00:00", "Z")
        return text, {"hour": text}
    local = now.astimezone(ZoneInfo(timezone))
    if kind == "anomaly_review":
        day: date = local.date() - timedelta(days=1)
        return day.isoformat(), {"date": day.isoformat()}
    if kind == "cleanup":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}", {}
    raise ValueError(f"no timer for job kind {kind!r}")


async def create_scheduled(
    store: PostgresJobStore,
    app_id: str,
    kind: str,
    now: datetime,
    timezone: str,
    grace_s: float,
) -> Job | None:
    """Record the job of this firing as pending; None when it already exists."""
    slot, parameters = slot_for(kind, now, timezone, grace_s)
    parameters = JOB_PARAMETERS[kind].model_validate(parameters).model_dump(mode="json")
    job = await store.create_if_absent(kind, parameters, scheduled_job_id(app_id, kind, slot))
    if job is None:
        logger.info("scheduled job exists already", extra={"kind": kind, "slot": slot})
    else:
        logger.info(
            "scheduled job created", extra={"kind": kind, "slot": slot, "job_id": str(job.id)}
        )
    return job


def schedule_timer(
    app: Any, job_worker: JobWorker, settings: Settings, kind: str, cron: str
) -> None:
    """A leader-only crontab of the Faust ``app`` in TIMEZONE that records the kind's job
    and queues it on ``job_worker``."""
    if not cron:
        logger.info("timer off", extra={"kind": kind})
        return

    async def fire() -> None:
        try:
            store = await job_worker.ensure_store()
            job = await create_scheduled(
                store,
                settings.app_id,
                kind,
                datetime.now(UTC),
                settings.timezone,
                settings.grace,
            )
        except Exception as exc:  # the next firing tries again; pending jobs are reconciled
            logger.warning(
                "timer could not create its job", extra={"kind": kind, "error": repr(exc)}
            )
            return
        if job is not None:
            job_worker.queue.put_nowait(job.id)

    fire.__name__ = fire.__qualname__ = f"schedule_{kind}"
    app.crontab(cron, timezone=ZoneInfo(settings.timezone), on_leader=True)(fire)
