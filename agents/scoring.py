"""Anomaly scoring in the worker: one detector (shared Half-Space Trees models) per readings
partition, device baselines kept beside the device states, model checkpoints in PostgreSQL.

Why per partition: a rebalance moves a partition's devices to another worker, and their
model moves with them (restored from its checkpoint). Baselines are per device and go to a
changelog-backed table with the device states, before offsets are committed, so they are
exact after a crash. A model checkpoint is taken every ANOMALY_CHECKPOINT_INTERVAL and on
revocation; after a crash the model relearns the replayed batches from its last checkpoint,
so scores (never the aggregates) can differ slightly from an uninterrupted run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, Protocol

from models.metrics import WindowAggregate
from streams.anomaly import AnomalyDetector
from streams.anomaly_baseline import DeviceBaseline
from streams.anomaly_config import AnomalyConfig
from streams.anomaly_stream import ScoredWindow, order_emissions, score_emissions
from streams.decode import Reading
from streams.device_state import DeviceState
from streams.emission import Emission

logger = logging.getLogger(__name__)

LOAD_RETRY_MAX_S = 10.0


class ModelCheckpoints(Protocol):
    """Where the per-partition models are kept (PostgreSQL table ``anomaly_models``)."""

    async def load_model(self, partition: int) -> bytes | None: ...

    async def save_model(self, partition: int, model: bytes, windows: int) -> None: ...


class BaselineStore(MutableMapping[str, DeviceBaseline]):
    """Device baselines over a raw mapping ``device_id -> DeviceBaseline.dump()`` bytes (the
    Faust table's data, restored from its changelog; records written before format version 2
    are JSON, and load too), decoded on first use and kept decoded."""

    def __init__(self, raw: MutableMapping[str, bytes]) -> None:
        self.raw = raw
        self.cache: dict[str, DeviceBaseline] = {}

    def __getitem__(self, device_id: str) -> DeviceBaseline:
        baseline = self.cache.get(device_id)
        if baseline is None:
            baseline = DeviceBaseline.load(self.raw[device_id])
            self.cache[device_id] = baseline
        return baseline

    def get(self, device_id: str, default: Any = None) -> Any:
        """``Mapping.get``, without the KeyError round trip when the baseline is decoded."""
        baseline = self.cache.get(device_id)
        if baseline is not None:
            return baseline
        return super().get(device_id, default)

    def __setitem__(self, device_id: str, baseline: DeviceBaseline) -> None:
        self.cache[device_id] = baseline

    def __delitem__(self, device_id: str) -> None:
        found = self.cache.pop(device_id, None) is not None
        if self.raw.pop(device_id, None) is None and not found:
            raise KeyError(device_id)

    def __iter__(self) -> Iterator[str]:
        yield from self.raw
        yield from (k for k in self.cache if k not in self.raw)

    def __len__(self) -> int:
        return len(self.raw) + sum(1 for k in self.cache if k not in self.raw)

    def dump(self, device_ids: Iterable[str]) -> list[tuple[str, bytes]]:
        """Serialise these devices' baselines (and keep the raw mapping in step)."""
        out = []
        for device_id in device_ids:
            baseline = self.cache.get(device_id)
            if baseline is None:
                continue
            data = baseline.dump()
            self.raw[device_id] = data
            out.append((device_id, data))
        return out

    def forget_decoded(self) -> None:
        """Drop decoded copies (after a rebalance the raw data is the truth again)."""
        self.cache.clear()


class PartitionScorers:
    """Scores a batch's hour and day windows with the detector of each device's partition."""

    def __init__(
        self,
        config: AnomalyConfig,
        baselines: BaselineStore,
        checkpoints: ModelCheckpoints,
        *,
        grace_us: int,
    ) -> None:
        self.config = config
        self.baselines = baselines
        self.checkpoints = checkpoints
        self.grace_us = grace_us
        self.detectors: dict[int, AnomalyDetector] = {}
        self._saved: dict[int, int] = {}  # partition -> windows learned at the last save
        self.scored = 0
        self.flagged = 0

    def _learned(self, detector: AnomalyDetector) -> int:
        return sum(model.learned for model in detector.models.values())

    async def prepare(self, partitions: Iterable[int]) -> None:
        """Make sure each partition has its detector, restored from its checkpoint."""
        for partition in set(partitions):
            if partition in self.detectors:
                continue
            detector = AnomalyDetector(self.config, self.baselines)
            data = await self._load(partition)
            if data is not None:
                try:
                    detector.load_model(data)
                except Exception as exc:  # a corrupt or foreign checkpoint: start afresh
                    logger.warning(
                        "anomaly model checkpoint of partition %s unusable, starting afresh: %r",
                        partition,
                        exc,
                    )
            learned = self._learned(detector)
            self._saved[partition] = learned
            self.detectors[partition] = detector
            logger.info(
                "anomaly model ready",
                extra={
                    "partition": partition,
                    "restored": data is not None,
                    "windows_learned": learned,
                },
            )

    async def _load(self, partition: int) -> bytes | None:
        delay = 0.5
        warned = False
        while True:
            try:
                return await self.checkpoints.load_model(partition)
            except Exception as exc:
                # Starting without the model would throw away what it learned: wait.
                if not warned:
                    logger.warning(
                        "cannot load the anomaly model of partition %s yet, retrying: %s",
                        partition,
                        exc,
                    )
                    warned = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, LOAD_RETRY_MAX_S)

    async def score(
        self,
        readings: Sequence[Reading] | None,
        emissions: Sequence[Emission],
        states: Mapping[str, DeviceState],
    ) -> dict[int, ScoredWindow]:
        """Score ``emissions`` (of one fold of ``readings``, or of an idle flush when
        ``readings`` is None); returns ``id(emission) -> ScoredWindow``."""
        candidates = [e for e in emissions if e.period in ("hour", "day")]
        if not candidates:
            return {}
        partitions = {_partition(states, e.device_id) for e in candidates}
        await self.prepare(partitions)
        if readings is not None:
            candidates = order_emissions(readings, candidates, self.grace_us)
        detectors = self.detectors

        def detector_for(device_id: str) -> AnomalyDetector:
            return detectors[_partition(states, device_id)]

        scored = score_emissions(detector_for, candidates, states, self.grace_us)
        self.scored += len(scored)
        self.flagged += sum(1 for s in scored if s.result.is_anomaly)
        return {id(s.emission): s for s in scored}

    def changed_baselines(self) -> list[tuple[str, bytes]]:
        """Baselines changed since the last call, serialised for the changelog."""
        changed: set[str] = set()
        for detector in self.detectors.values():
            changed |= detector.take_changed()
        return self.baselines.dump(sorted(changed))

    async def checkpoint(self, partitions: Iterable[int] | None = None) -> int:
        """Save the models that learned since their last save; returns how many were saved.
        A failure is logged and retried at the next checkpoint."""
        saved = 0
        chosen = self.detectors if partitions is None else set(partitions)
        for partition in sorted(chosen):
            detector = self.detectors.get(partition)
            if detector is None:
                continue
            learned = self._learned(detector)
            if learned == self._saved.get(partition):
                continue
            try:
                await self.checkpoints.save_model(partition, detector.dump_model(), learned)
            except Exception as exc:
                logger.warning("could not checkpoint the anomaly model of %s: %s", partition, exc)
                continue
            self._saved[partition] = learned
            saved += 1
        return saved

    async def release(self, partitions: Iterable[int]) -> None:
        """On revocation: checkpoint these partitions' models and drop them."""
        chosen = set(partitions) & set(self.detectors)
        if not chosen:
            return
        await self.checkpoint(chosen)
        for partition in chosen:
            self.detectors.pop(partition, None)
            self._saved.pop(partition, None)
        self.baselines.forget_decoded()

    def stats(self) -> dict[str, Any]:
        return {
            "windows_scored": self.scored,
            "windows_flagged": self.flagged,
            "models": {
                str(p): {period: m.learned for period, m in d.models.items()}
                for p, d in sorted(self.detectors.items())
            },
        }


def _partition(states: Mapping[str, DeviceState], device_id: str) -> int:
    state = states.get(device_id)
    partition = state.partition if state is not None else None
    return partition if partition is not None else 0


def anomaly_record(window: WindowAggregate, scored: ScoredWindow) -> bytes:
    """The ``energy.anomalies`` message: the window, its score and the features behind it."""
    import orjson

    doc = window.model_dump(mode="json")
    doc["features"] = scored.result.features
    doc["final"] = scored.final
    return orjson.dumps(doc)
