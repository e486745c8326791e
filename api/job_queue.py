"""Publishing job requests to ``energy.jobs`` (key: the job id; value: ``{"job_id", "kind"}``).

The job is already recorded as ``pending`` when it is published, so a failed publish loses
nothing: workers run jobs left pending longer than ``JOB_PENDING_TIMEOUT``. The producer is
started lazily and dropped after a failure, so a broker outage only makes publishing fail
(within a short timeout), never the request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol
from uuid import UUID

import orjson
from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 5.0


class JobPublisher(Protocol):
    async def publish(self, job_id: UUID, kind: str) -> bool:
        """True once the broker acknowledged the request; False (logged) otherwise."""
        ...

    async def close(self) -> None: ...


def job_message(job_id: UUID, kind: str) -> tuple[bytes, bytes]:
    """(key, value) of the ``energy.jobs`` message for a job."""
    return str(job_id).encode(), orjson.dumps({"job_id": str(job_id), "kind": kind})


class AiokafkaJobPublisher:
    def __init__(self, bootstrap: str, topic: str, timeout: float = PUBLISH_TIMEOUT_S) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def publish(self, job_id: UUID, kind: str) -> bool:
        key, value = job_message(job_id, kind)
        try:
            async with asyncio.timeout(self.timeout):
                producer = await self._started()
                await producer.send_and_wait(self.topic, value, key=key)
        except Exception as exc:  # aiokafka raises many unrelated types for one outage
            log.warning(
                "could not publish a job request; it stays pending for a worker to pick up",
                extra={"job_id": str(job_id), "topic": self.topic, "error": repr(exc)},
            )
            await self._drop()
            return False
        return True

    async def close(self) -> None:
        await self._drop()

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    client_id="energy-processing-api",
                    acks="all",
                    request_timeout_ms=int(self.timeout * 1000),
                )
                try:
                    await producer.start()
                except BaseException:
                    await _quietly(producer)
                    raise
                self._producer = producer
            return self._producer

    async def _drop(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await _quietly(producer)


async def _quietly(producer: AIOKafkaProducer) -> None:
    try:
        await asyncio.wait_for(producer.stop(), PUBLISH_TIMEOUT_S)
    except Exception as exc:  # stopping a producer of a dead broker may fail in many ways
        log.debug("stopping the jobs producer failed", extra={"error": repr(exc)})
