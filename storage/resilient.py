"""Retry a sink through outages without ever dropping a batch.

``ResilientSink.write`` returns only once the batch is stored: a ``SinkUnavailable`` is
retried forever with capped exponential backoff and jitter (or after the store's
``retry_after``). The caller awaits it, so during an outage it stops consuming and committing
offsets: backpressure instead of loss. A ``SinkRejected`` is raised at once: the data itself
is wrong and retrying would loop forever. One warning line marks the start of an outage and
one info line its end, however many retries lie between.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from models.metrics import WindowAggregate
from storage.base import Sink, SinkRejected, SinkUnavailable

logger = logging.getLogger(__name__)


class ResilientSink:
    """Wraps any ``Sink``; exposes health and counters for stats and metrics.

    The delay before retry ``n`` (from 0) is ``min(max_delay, base_delay * 2**n)`` scaled by a
    random factor in ``[1 - jitter, 1]``, and at least the store's ``retry_after`` (up to
    ``max_retry_after``).
    """

    def __init__(
        self,
        inner: Sink,
        *,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        jitter: float = 0.5,
        max_retry_after: float = 300.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        if base_delay <= 0 or max_delay < base_delay or not 0 <= jitter <= 1:
            raise ValueError("need 0 < base_delay <= max_delay and 0 <= jitter <= 1")
        self.inner = inner
        self.name = inner.name
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.jitter = jitter
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self._random = random_fraction

        self.healthy = True
        self.outage_since: datetime | None = None
        self.last_error: str | None = None
        self.pending_batches = 0
        """Batches handed to ``write`` and not yet stored."""
        self.writes = 0
        """Batches stored."""
        self.points = 0
        """Windows in the stored batches."""
        self.failures = 0
        """Failed attempts (each retry that failed counts)."""
        self.rejections = 0
        self.outages = 0
        self.last_write_latency_s: float | None = None
        """Duration of the last successful attempt (not counting earlier failed ones)."""
        self._outage_started_monotonic = 0.0
        self._outage_retries = 0

    async def start(self) -> None:
        """Start the inner sink, waiting through an outage like ``write`` does."""
        await self._until_done(self.inner.start)

    async def close(self) -> None:
        await self.inner.close()

    async def write(self, batch: Sequence[WindowAggregate]) -> None:
        """Store ``batch``; return only when stored. Raises ``SinkRejected``."""
        if not batch:
            return
        self.pending_batches += 1
        try:
            latency = await self._until_done(lambda: self.inner.write(batch))
        finally:
            self.pending_batches -= 1
        self.writes += 1
        self.points += len(batch)
        self.last_write_latency_s = latency

    async def _until_done(self, attempt: Callable[[], Awaitable[None]]) -> float:
        retry = 0
        while True:
            started = time.monotonic()
            try:
                await attempt()
            except SinkUnavailable as exc:
                self.failures += 1
                self._on_unavailable(exc)
                await self._sleep(self._delay(retry, exc.retry_after))
                retry += 1
                self._outage_retries += 1
                continue
            except SinkRejected as exc:
                self.rejections += 1
                self.last_error = str(exc)
                raise
            latency = time.monotonic() - started
            self._on_success()
            return latency

    def _delay(self, retry: int, retry_after: float | None) -> float:
        backoff = min(self.max_delay, self.base_delay * 2.0 ** min(retry, 32))
        delay = backoff * (1 - self.jitter * self._random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay

    def _on_unavailable(self, exc: SinkUnavailable) -> None:
        self.last_error = exc.detail
        if not self.healthy:
            return
        self.healthy = False
        self.outages += 1
        self.outage_since = datetime.now(UTC)
        self._outage_started_monotonic = time.monotonic()
        self._outage_retries = 0
        logger.warning(
            "sink %s unavailable, holding writes and retrying until it recovers: %s",
            self.name,
            exc.detail,
        )

    def _on_success(self) -> None:
        if self.healthy:
            return
        duration = time.monotonic() - self._outage_started_monotonic
        logger.info(
            "sink %s recovered after %.1f s and %d retries",
            self.name,
            duration,
            self._outage_retries,
        )
        self.healthy = True
        self.outage_since = None
        self._outage_retries = 0

    def stats(self) -> dict[str, Any]:
        """Counters and health as plain JSON-able values (for worker stats)."""
        return {
            "name": self.name,
            "healthy": self.healthy,
            "outage_since": self.outage_since.isoformat() if self.outage_since else None,
            "last_error": self.last_error,
            "pending_batches": self.pending_batches,
            "writes": self.writes,
            "points": self.points,
            "failures": self.failures,
            "rejections": self.rejections,
            "outages": self.outages,
            "last_write_latency_s": self.last_write_latency_s,
        }
