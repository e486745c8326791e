"""Faust's consumer, changed for the pipeline's acks: jumps in fetched offsets are left to the
pipeline, and waiting for acks (before a rebalance, at shutdown) keeps writing checkpoints."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.transport.consumer import Consumer as FaustConsumer

from agents.resources import WorkerResources

logger = logging.getLogger(__name__)

# Faust treats a jump in fetched offsets as a legitimate hole (compaction, transaction
# markers) and commits past it. Its consumer can also drop records around a suspended flow,
# so a jump may hide unprocessed readings: the pipeline repairs jumps by seeking back, and
# only holes it has proven real are handed to Faust (see agents/contiguity.py).
faust_add_gap = FaustConsumer._add_gap


async def _no_implicit_gaps(self: Any, tp: Any, offset_from: int, offset_to: int) -> None:
    logger.debug("offset jump %s %s..%s left to the pipeline", tp, offset_from, offset_to)


_faust_wait_empty = FaustConsumer.wait_empty


def install(resources: WorkerResources) -> None:
    """Make every Faust consumer of this process leave offset jumps to the pipeline of
    ``resources`` and write its state checkpoints while waiting for acks."""

    async def _wait_empty_checkpointing(self: Any) -> None:
        """Before a rebalance and at shutdown Faust waits until every record in flight is
        acked; the readings' records are acked at state checkpoints, so keep writing them
        (at once, not after STATE_INTERVAL) until the wait is over."""
        keeper = asyncio.ensure_future(_checkpoint_while_waiting())
        try:
            await _faust_wait_empty(self)
        finally:
            keeper.cancel()

    async def _checkpoint_while_waiting() -> None:
        if not resources.started:
            return
        pipeline = await resources.ready()
        while True:
            try:
                await pipeline.checkpoint_states(force=True)
            except Exception as exc:  # a failed store stops the worker through its batches
                logger.warning("state checkpoint failed while waiting for acks: %r", exc)
                return
            await asyncio.sleep(0.2)

    FaustConsumer._add_gap = _no_implicit_gaps  # type: ignore[method-assign]
    FaustConsumer.wait_empty = _wait_empty_checkpointing  # type: ignore[method-assign]
