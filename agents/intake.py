"""Readings-topic records in batches, straight from the Faust consumer's fetch loop.

Faust hands every fetched record to its stream on its own: per record, its fetch loop
starts two tasks (``wait_first`` of the delivery and of a flow-suspension wait), the
conductor decodes it into an event and queues it, and the stream takes it off the queue;
about 0.2 ms a record here, the ceiling of a Faust agent that does nothing. The worker folds
whole batches anyway, so the fetch loop appends the readings topic's records to an
``Intake`` instead, and the batch step takes them in batches. Records of other topics go
through Faust's channels as before.

Acks are unchanged: a batch's records are tracked when its step starts and acked when it
has stored everything (Faust then commits the offsets on its own schedule, contiguous ones
only), so a rebalance waits for the batch in flight like it waits for a stream's events.
Records still in the intake when partitions are revoked are dropped, never acked: the next
owner reads them again from the committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING, Consumer
from mode import Service

logger = logging.getLogger(__name__)


class Intake:
    """A bounded buffer of fetched records of ``topics`` (a full one pauses fetching)."""

    def __init__(self, topics: Iterable[str], maxsize: int) -> None:
        self.topics = frozenset(topics)
        self.maxsize = maxsize
        self.buffer: deque[Any] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._wanted = 1
        self._wanted_bytes = 1
        self.bytes = 0  # sum of the buffered records' value sizes

    def __len__(self) -> int:
        return len(self.buffer)

    async def put(self, message: Any) -> None:
        while len(self.buffer) >= self.maxsize:
            self._room.clear()
            await self._room.wait()
        self.buffer.append(message)
        self.bytes += _size(message)
        if len(self.buffer) >= self._wanted or self.bytes >= self._wanted_bytes:
            self._arrived.set()

    async def take(
        self, max_records: int, within: float, max_bytes: int | None = None
    ) -> list[Any]:
        """Up to ``max_records`` records and (beyond the first) ``max_bytes`` of values,
        waiting for a first one and then at most ``within`` seconds for the batch to fill
        (like Faust's ``take_events``)."""
        buffer = self.buffer
        limit = max_bytes if max_bytes is not None else 1 << 62
        while not buffer:
            self._wanted = 1
            self._arrived.clear()
            await self._arrived.wait()
        if len(buffer) < max_records and self.bytes < limit:
            self._wanted = max_records
            self._wanted_bytes = limit
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), within)
            self._wanted = 1
            self._wanted_bytes = 1
        batch = [buffer.popleft()]
        taken = _size(batch[0])
        while buffer and len(batch) < max_records:
            size = _size(buffer[0])
            if taken + size > limit:
                break
            batch.append(buffer.popleft())
            taken += size
        self.bytes -= taken
        self._room.set()
        return batch

    def drop(self, tps: Iterable[tuple[str, int]] | None = None) -> int:
        """Forget buffered records (of ``tps``, or all): their partitions were revoked."""
        if tps is None:
            dropped = len(self.buffer)
            self.buffer.clear()
            self.bytes = 0
        else:
            gone = set(tps)
            kept = [m for m in self.buffer if (m.topic, m.partition) not in gone]
            dropped = len(self.buffer) - len(kept)
            self.buffer.clear()  # in place: a waiting take() holds this deque
            self.buffer.extend(kept)
            self.bytes = sum(_size(m) for m in kept)
        self._room.set()
        return dropped


def install(intake: Intake) -> None:
    """Make every Faust consumer of this process put ``intake``'s topics into it."""

    async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - worker
        # Faust's Consumer._drain_messages (faust-streaming 0.15), with the intake's topics
        # put into the intake instead of each record awaited through the conductor.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        fast_topics = intake.topics
        put = intake.put
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            if message.topic in fast_topics:
                                await put(message)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            set_read_offset(tp, offset)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    Consumer._drain_messages = _drain_messages  # type: ignore[method-assign]


def _size(message: Any) -> int:
    value = getattr(message, "value", None)
    return len(value) if value else 0


def track(consumer: Any, messages: Iterable[Any]) -> None:
    """Mark records as in progress (a rebalance waits for their ack), and tell Faust's
    monitor their partitions' stream is processing (as a stream's event would: Faust's
    consumer thread logs an error every few seconds for a partition that has fetched
    records, lags and whose stream has not taken an event for ``stream_processing_timeout``)."""
    unacked = consumer._unacked_messages
    tps = set()
    for message in messages:
        unacked.add(message)
        tps.add(message.tp)
    monitor = getattr(consumer.app, "monitor", None)
    if monitor is not None and monitor.stream_inbound_time is not None:
        now = time.monotonic()
        for tp in tps:
            monitor.stream_inbound_time[tp] = now


def ack(consumer: Any, messages: Iterable[Any]) -> None:
    """The records' batch is stored: Faust may commit their offsets."""
    acknowledge = consumer.ack
    for message in messages:
        acknowledge(message)


def ack_when_stored(
    consumer: Any,
    records: list[Any],
    stop_worker: Callable[[BaseException], Awaitable[None]],
) -> Callable[[asyncio.Future[None]], None]:
    """A done callback for the storing of ``records``' batch: ack them once it is stored,
    or ``stop_worker`` with its failure."""

    def done(stored: asyncio.Future[None]) -> None:
        if stored.cancelled():
            return
        exc = stored.exception()
        if exc is not None:
            _background.add(task := asyncio.ensure_future(stop_worker(exc)))
            task.add_done_callback(_background.discard)
            return
        ack(consumer, records)

    return done


_background: set[asyncio.Future[None]] = set()
