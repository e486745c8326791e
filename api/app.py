"""``create_app(settings)``: the Starlette application and its typed lifespan.

Run it with ``uvicorn api.app:create_app --factory`` (settings from the environment) or
``energy-processing api``. Tests inject a reader, a stats store and a Kafka inspector;
whatever is not injected is built from the settings when the lifespan starts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware

from api.auth import AuthMiddleware, verifier_from_settings
from api.errors import EXCEPTION_HANDLERS
from api.job_queue import AiokafkaJobPublisher, JobPublisher
from api.kafka import DEFAULT_TIMEOUT_S, AiokafkaInspector, KafkaInspector, bootstrap_servers
from api.middleware import DEFAULT_MAX_BODY_BYTES, RequestMiddleware
from api.routes import routes
from api.state import AppState, ReadinessCheck
from service.endpoints import database_dsn
from service.settings import Settings, load_settings
from storage.base import MetricsReader, StatsStore
from storage.jobs import PostgresJobStore
from storage.postgres import create_pool
from storage.postgres_repository import PostgresRepository

log = logging.getLogger(__name__)

POOL_MAX_SIZE = 10


def create_app(
    settings: Settings | None = None,
    *,
    reader: MetricsReader | None = None,
    stats_store: StatsStore | None = None,
    kafka: KafkaInspector | None = None,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    jobs: PostgresJobStore | None = None,
    job_publisher: JobPublisher | None = None,
    check_timeout_s: float = DEFAULT_TIMEOUT_S,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Starlette:
    """The API application.

    ``reader``/``stats_store``: where metrics and worker stats come from; when either is
    missing, the lifespan opens an asyncpg pool on ``DATABASE_URL`` (or on the embedded
    server ``make run`` started in ``DATA_DIR``) and uses a PostgresRepository.
    ``kafka``: broker access for ``/ready`` and consumer lag (default: aiokafka clients on
    ``KAFKA_BROKER_URL``, connected lazily). ``readiness``: the checks ``/ready`` runs,
    by name; by default ``broker`` and ``database`` (the injected reader's ``ping`` when it
    has one). ``jobs``: the jobs repository (default: on the same pool as the reader, or
    a pool of its own). ``job_publisher``: where job requests are published (default:
    an aiokafka producer on ``JOBS_TOPIC``, started lazily).

    Raises ConfigurationError when no JWT key is configured and AUTH_DISABLED is not set
    (see api.auth), so a misconfigured API never starts open.
    """
    if settings is None:
        settings = load_settings()
    resolved = settings
    verifier = verifier_from_settings(resolved)
    middleware = [Middleware(RequestMiddleware, max_body_bytes=max_body_bytes)]
    if verifier is None:
        log.warning(
            "API authentication is DISABLED (AUTH_DISABLED=true): every endpoint is open; "
            "for local use only"
        )
    else:
        middleware.append(Middleware(AuthMiddleware, verifier=verifier))
        log.info(
            "API authentication: JWT %s",
            verifier.algorithm,
            extra={"issuer": verifier.issuer, "audience": verifier.audience},
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        async with AsyncExitStack() as stack:
            the_reader, the_stats, database_ping = reader, stats_store, _ping_of(reader)
            the_jobs = jobs
            if the_reader is None or the_stats is None or the_jobs is None:
                pool = await _open_pool(resolved, stack)
                repository = PostgresRepository(pool)
                if the_jobs is None:
                    the_jobs = PostgresJobStore(pool)
                if the_reader is None:
                    the_reader, database_ping = repository, repository.ping
                if the_stats is None:
                    the_stats = repository
                if database_ping is None:
                    database_ping = repository.ping
            the_publisher = job_publisher
            if the_publisher is None:
                the_publisher = AiokafkaJobPublisher(
                    bootstrap_servers(resolved), resolved.jobs_topic
                )
                stack.push_async_callback(the_publisher.close)
            the_kafka = kafka
            if the_kafka is None:
                the_kafka = AiokafkaInspector(bootstrap_servers(resolved), check_timeout_s)
                stack.push_async_callback(the_kafka.close)
            checks = dict(readiness) if readiness is not None else {}
            if readiness is None:
                checks["broker"] = the_kafka.check
                if database_ping is not None:
                    checks["database"] = database_ping
                checks["sinks"] = _sinks_check(the_stats)
            yield AppState(
                settings=resolved,
                reader=the_reader,
                stats_store=the_stats,
                kafka=the_kafka,
                readiness=checks,
                check_timeout_s=check_timeout_s,
                jobs=the_jobs,
                job_publisher=the_publisher,
            )

    return Starlette(
        routes=routes(),
        middleware=middleware,
        exception_handlers=dict(EXCEPTION_HANDLERS),
        lifespan=lifespan,
    )


SINK_STATUS_FRESH_S = 60.0


class SinkDown(Exception):
    """A running worker reports a store it cannot write to (it retries; nothing is lost)."""


def _sinks_check(stats_store: StatsStore) -> ReadinessCheck:
    """Down while a worker that reported in the last minute has a sink in an outage."""

    async def check() -> bool:
        now = datetime.now(UTC)
        problems = []
        try:
            records = await stats_store.load_worker_stats()
        except Exception:  # the database check reports an unreachable database
            return True
        for record in records:
            updated = record.get("updated_at")
            if (
                not isinstance(updated, datetime)
                or (now - updated).total_seconds() > SINK_STATUS_FRESH_S
            ):
                continue
            sinks = (record.get("stats") or {}).get("sinks") or {}
            for name, status in sinks.items():
                if isinstance(status, dict) and status.get("healthy") is False:
                    problems.append(
                        f"{name} down since {status.get('outage_since')} on worker "
                        f"{record.get('worker_id')}: {status.get('last_error')}"
                    )
        if problems:
            raise SinkDown("; ".join(problems))
        return True

    return check


def _ping_of(reader: object) -> ReadinessCheck | None:
    ping = getattr(reader, "ping", None)
    return ping if callable(ping) else None


async def _open_pool(settings: Settings, stack: AsyncExitStack) -> Any:
    # min_size=0: no connection is opened at start, so the API comes up while the database
    # is down and /ready names it, instead of failing to start.
    pool = await create_pool(database_dsn(settings), min_size=0, max_size=POOL_MAX_SIZE)
    stack.push_async_callback(pool.close)
    return pool
