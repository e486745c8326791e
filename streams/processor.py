"""Batch fold over many devices: decode, judge, fold, collect emissions and rejections.

The same code serves the Faust worker and the tests (and is meant for the offline and job
paths to come); the caller provides the state mapping (a Faust table or a dict).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field

from streams.config import ProcessingConfig
from streams.decode import LATE, Reading, ReadingDecoder, Rejection, reading_bytes
from streams.device import Engine
from streams.device_state import DeviceState
from streams.emission import Emission
from streams.timeparse import format_us


@dataclass(slots=True)
class BatchResult:
    emissions: list[Emission] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    # device ids whose state changed (write them back to the changelog once per batch)
    touched: set[str] = field(default_factory=set)
    # accepted readings, in arrival order per device
    accepted: list[Reading] = field(default_factory=list)
    # device_id -> (earliest accepted reading time of the batch, latest accepted ever), us
    devices: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(slots=True)
class Counters:
    """Processing counters since start; added up across workers by the API."""

    readings_received: int = 0
    readings_accepted: int = 0
    duplicates: int = 0
    spikes: int = 0
    windows_emitted: int = 0
    windows_revised: int = 0
    replayed: int = 0  # readings skipped because their message was already folded
    rejected_by_reason: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "readings_received": self.readings_received,
            "readings_accepted": self.readings_accepted,
            "readings_rejected": sum(self.rejected_by_reason.values()),
            "rejected_by_reason": dict(self.rejected_by_reason),
            "duplicates": self.duplicates,
            "spikes": self.spikes,
            "windows_emitted": self.windows_emitted,
            "windows_revised": self.windows_revised,
            "replayed": self.replayed,
        }


class StreamProcessor:
    """Holds the engine and counters; folds batches of raw message values."""

    def __init__(self, config: ProcessingConfig) -> None:
        self.config = config
        self.engine = Engine(config)
        self.decoder = ReadingDecoder(
            max_power_w=config.max_power_w, future_tolerance_us=config.future_tolerance_us
        )
        self.counters = Counters()

    def decode(self, raw: bytes, now_us: int, result: BatchResult, msg: int = 0) -> list[Reading]:
        decoded = self.decoder.decode(raw, now_us, msg)
        self.counters.readings_received += decoded.received
        for rejection in decoded.rejections:
            self.counters.rejected_by_reason[rejection.reason] += 1
        result.rejections.extend(decoded.rejections)
        return decoded.readings

    def fold(
        self,
        readings: Iterable[Reading],
        states: MutableMapping[str, DeviceState],
        wall: float,
        result: BatchResult,
        positions: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        """Fold valid readings (arrival order) into device states.

        ``positions[reading.msg]`` is the (source, offset) of the reading's message, where
        source is the partition for the readings topic and ``-1 - partition`` for the
        repartition topic. A device skips messages at or below the offset it already folded
        per source (a replay after a crash between the changelog write and the offset
        commit), so nothing counts twice.
        """
        by_device: dict[str, list[Reading]] = {}
        for reading in readings:
            group = by_device.get(reading.device_id)
            if group is None:
                by_device[reading.device_id] = [reading]
            else:
                group.append(reading)
        counters = self.counters
        process = self.engine.process
        touched = result.touched
        accepted = result.accepted
        emitted = result.emissions
        devices = result.devices
        for device_id, group in by_device.items():
            state = states.get(device_id)
            if state is None:
                state = DeviceState()
            if positions is not None:
                group = self._skip_replayed(state, group, positions)
                if not group:
                    continue
            outcome = process(device_id, state, group, wall)
            states[device_id] = state
            touched.add(device_id)
            counters.readings_accepted += outcome.accepted
            accepted.extend(outcome.accepted_readings)
            counters.duplicates += outcome.duplicates
            counters.spikes += outcome.spikes
            for late in outcome.late:
                counters.rejected_by_reason[LATE] += 1
                result.rejections.append(self.late_rejection(late, state))
            if outcome.emissions:
                self._count(outcome.emissions)
                emitted.extend(outcome.emissions)
            if outcome.accepted:
                if len(group) == 1:
                    first = group[0].ts
                elif outcome.late:
                    late_ids = {id(r) for r in outcome.late}
                    first = min(r.ts for r in group if id(r) not in late_ids)
                else:
                    first = min(r.ts for r in group)
                seen = devices.get(device_id)
                if seen is not None and seen[0] < first:
                    first = seen[0]
                assert state.max_ts is not None
                devices[device_id] = (first, state.max_ts)

    def _skip_replayed(
        self, state: DeviceState, group: list[Reading], positions: Sequence[tuple[int, int]]
    ) -> list[Reading]:
        fresh: list[Reading] = []
        offsets = state.offsets
        for reading in group:
            partition, offset = positions[reading.msg]
            if offset <= offsets.get(partition, -1):
                self.counters.replayed += 1
                continue
            fresh.append(reading)
        # Mark the device's messages folded. Offsets of one batch only grow per partition.
        for reading in fresh:
            partition, offset = positions[reading.msg]
            if offset > offsets.get(partition, -1):
                offsets[partition] = offset
            state.partition = partition if partition >= 0 else -1 - partition
        return fresh

    def process_messages(
        self,
        values: Iterable[bytes],
        states: MutableMapping[str, DeviceState],
        now_us: int,
        wall: float,
        positions: Sequence[tuple[int, int]] | None = None,
    ) -> BatchResult:
        """Decode and fold a batch of message values in arrival order."""
        result = BatchResult()
        readings: list[Reading] = []
        for index, raw in enumerate(values):
            readings.extend(self.decode(raw, now_us, result, index))
        self.fold(readings, states, wall, result, positions)
        return result

    def flush(self, device_id: str, state: DeviceState) -> list[Emission]:
        emissions = self.engine.flush(device_id, state)
        self._count(emissions)
        return emissions

    def _count(self, emissions: list[Emission]) -> None:
        counters = self.counters
        counters.windows_emitted += len(emissions)
        for emission in emissions:
            if emission.revision:
                counters.windows_revised += 1

    def late_rejection(self, reading: Reading, state: DeviceState) -> Rejection:
        assert state.max_ts is not None
        watermark = state.max_ts - self.engine.grace
        return Rejection(
            LATE,
            f"timestamp {format_us(reading.ts)} is before the device's watermark "
            f"{format_us(watermark)} (max accepted {format_us(state.max_ts)} minus GRACE)",
            reading_bytes(reading),
            device_id=reading.device_id,
            element_index=reading.element,
            ts=reading.ts,
            msg=reading.msg,
        )
