"""Each partition's messages folded contiguously, whatever the consumer delivers.

The Faust consumer can drop records when its flow is suspended around a rebalance or
recovery, and deliver some twice; it commits only contiguously acked offsets, so a hole
stays uncommitted until refilled. ``ContiguousOffsets`` (a part of ``ReadingPipeline``)
drops what was already folded, holds a partition that jumped and asks for a seek back, and
skips a hole only when the broker confirms it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

logger = logging.getLogger(__name__)

MAX_REPAIRS = 5

TP = tuple[str, int]  # (topic, partition)


class Positioned(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


M = TypeVar("M", bound=Positioned)


class ContiguousOffsets:
    """The last folded offset per partition, and the repairs of jumps past it."""

    def __init__(self, expected_start: Callable[[TP], int | None] = lambda tp: None) -> None:
        self.expected_start = expected_start
        self.positions: dict[TP, int] = {}  # last offset folded per tp
        self.redelivered = 0
        self.gaps_repaired = 0
        self.accepted_holes: list[tuple[TP, int, int]] = []
        self._repairs: dict[TP, tuple[int, int, int]] = {}  # expected, seen, seeks
        self._seeks: dict[TP, int] = {}
        self._probes: dict[TP, int] = {}

    def admit(self, messages: Sequence[M]) -> list[M]:
        """Keep each partition's messages contiguous, whatever the consumer delivers.

        The Faust consumer can drop records when its flow is suspended around a rebalance
        or recovery, and deliver some twice. A message at or below the partition's last
        folded offset is dropped (already folded); a jump past the next offset holds the
        partition: its messages are not folded and a seek back to the missing offset is
        requested (``take_seeks``). Faust commits only contiguously acked offsets, so the
        hole stays uncommitted until refilled. A jump that persists for ``MAX_REPAIRS``
        seeks is checked against the broker (``take_probes``/``resolve_probe``).
        """
        admitted: list[M] = []
        positions = self.positions
        for message in messages:
            tp = (message.topic, message.partition)
            offset = message.offset
            position = positions.get(tp)
            if position is None:
                start = self.expected_start(tp)
                position = start - 1 if start is not None else offset - 1
                positions[tp] = position
            if offset <= position:
                self.redelivered += 1
                continue
            if offset > position + 1:
                repair = self._repairs.get(tp)
                if repair is None or repair[0] != position + 1:
                    repair = (position + 1, offset, 0)
                    logger.warning(
                        "offset gap: %s:%s jumped from %s to %s; seeking back",
                        message.topic,
                        message.partition,
                        position,
                        offset,
                    )
                    self.gaps_repaired += 1
                if tp not in self._seeks:
                    self._seeks[tp] = position + 1
                    repair = (repair[0], repair[1], repair[2] + 1)
                    if repair[2] % MAX_REPAIRS == 0:
                        self._probes[tp] = position + 1
                self._repairs[tp] = repair
                continue
            elif tp in self._repairs:
                del self._repairs[tp]
            positions[tp] = offset
            admitted.append(message)
        return admitted

    def take_probes(self) -> dict[TP, int]:
        """Partitions whose gap persists: ask the broker where the log really continues."""
        probes, self._probes = self._probes, {}
        return probes

    def resolve_probe(self, tp: TP, expected: int, first: int | None) -> None:
        """``first``: the first offset the broker returns when read from ``expected``.
        Only a broker-confirmed hole (e.g. transaction markers) is skipped."""
        if first is None or first <= expected or self.positions.get(tp) != expected - 1:
            return
        logger.warning(
            "accepting a hole in the log: offsets %s..%s of %s:%s do not exist",
            expected,
            first - 1,
            tp[0],
            tp[1],
        )
        self.positions[tp] = first - 1
        self.accepted_holes.append((tp, expected, first))
        self._repairs.pop(tp, None)
        self._seeks[tp] = first

    def take_seeks(self) -> dict[TP, int]:
        """Partitions to seek back (topic, partition) -> offset, once each."""
        seeks, self._seeks = self._seeks, {}
        return seeks

    def forget_partitions(self, tps: Iterable[TP]) -> None:
        """On revocation: the next owner (maybe us again) starts from the committed offset."""
        for tp in tps:
            self.positions.pop(tp, None)
            self._repairs.pop(tp, None)
            self._seeks.pop(tp, None)
