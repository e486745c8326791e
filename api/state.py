"""The typed lifespan state every handler reads (``request.state[...]``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypedDict

from api.job_queue import JobPublisher
from api.kafka import KafkaInspector
from service.settings import Settings
from storage.base import MetricsReader, StatsStore
from storage.jobs import PostgresJobStore

# A readiness check returns when its dependency answers; raising (anything) or returning
# False means it is down (PostgresRepository.ping answers False rather than raising).
ReadinessCheck = Callable[[], Awaitable[object]]


class AppState(TypedDict):
    settings: Settings
    reader: MetricsReader
    stats_store: StatsStore
    kafka: KafkaInspector
    readiness: Mapping[str, ReadinessCheck]
    check_timeout_s: float
    jobs: PostgresJobStore
    job_publisher: JobPublisher
