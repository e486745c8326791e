"""Anomaly scoring in the worker's batch step: scores on the published windows, flagged
windows to the anomalies output, baselines saved with the states, models checkpointed and
restored so that a restarted worker continues exactly where it left off."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from agents.messages import Message
from agents.pipeline import ReadingPipeline
from agents.scoring import BaselineStore, PartitionScorers
from models.metrics import WindowAggregate
from streams.anomaly_config import AnomalyConfig, ModelParams
from streams.config import ProcessingConfig
from streams.device_state import DeviceState
from streams.processor import StreamProcessor
from tests.agents.test_pipeline import ListOutputs

START = 1_799_971_200  # 2027-01-15T00:00:00Z, a Friday
CONFIG = AnomalyConfig(
    hour_model=ModelParams(n_trees=5, height=4, window_size=8),
    day_model=ModelParams(n_trees=5, height=3, window_size=2),
    warmup_days=0.0,
    threshold=0.6,
)


class ScoringOutputs(ListOutputs):
    def __init__(self) -> None:
        super().__init__()
        self.baselines: dict[str, bytes] = {}
        self.anomalies: list[dict[str, Any]] = []

    async def publish_anomalies(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.anomalies.extend(orjson.loads(value) for _, value in items)
        self.log.append(("anomalies", [key for key, _ in items]))

    def save_baselines(self, baselines: Sequence[tuple[str, int, bytes]]) -> None:
        for device_id, _, data in baselines:
            self.baselines[device_id] = data
        self.log.append(("baselines", [d for d, _, _ in baselines]))


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.models: dict[int, bytes] = {}
        self.loads = 0

    async def load_model(self, partition: int) -> bytes | None:
        self.loads += 1
        return self.models.get(partition)

    async def save_model(self, partition: int, model: bytes, windows: int) -> None:
        self.models[partition] = model


def build(
    checkpoints: MemoryCheckpoints,
    states: dict[str, DeviceState] | None = None,
    raw_baselines: dict[str, bytes] | None = None,
) -> tuple[ReadingPipeline, ScoringOutputs]:
    outputs = ScoringOutputs()
    processor = StreamProcessor(ProcessingConfig(grace_s=0))
    scoring = PartitionScorers(
        CONFIG,
        BaselineStore(raw_baselines if raw_baselines is not None else {}),
        checkpoints,
        grace_us=processor.engine.grace,
    )
    pipeline = ReadingPipeline(
        processor,
        states if states is not None else {},
        outputs,
        partitions=1,
        currency="EUR",
        clock=lambda: START + 10 * 86_400.0,
        scoring=scoring,
    )
    return pipeline, outputs


def power(device: int, step: int) -> float:
    """A daily cycle per device; device 1 jumps tenfold on its third day at noon."""
    hour = (step * 10 // 60) % 24
    level = 200.0 + 150.0 * math.sin(hour / 24 * 2 * math.pi) + 20.0 * device
    if device == 1 and 2 * 144 + 72 <= step < 2 * 144 + 78:
        level *= 10
    return level


def batches(days: int = 4, devices: int = 3, per_batch: int = 18) -> list[list[Message]]:
    """Readings every 10 minutes, several devices per message batch."""
    values = []
    for step in range(days * 144):
        for device in range(devices):
            ts = START + step * 600
            doc = {"device_id": f"dev-{device}", "timestamp": ts, "power_w": power(device, step)}
            values.append(orjson.dumps(doc))
    messages = [Message("r", 0, offset, None, value) for offset, value in enumerate(values)]
    return [messages[i : i + per_batch] for i in range(0, len(messages), per_batch)]


def published(outputs: ListOutputs) -> list[WindowAggregate]:
    return [w for kind, items in outputs.log if kind == "publish" for w in items]


async def test_hour_and_day_windows_carry_scores_and_flags_go_to_the_anomalies_output() -> None:
    pipeline, outputs = build(MemoryCheckpoints())
    for batch in batches():
        await pipeline.handle(batch)
    windows = published(outputs)
    scored = [w for w in windows if w.period in ("hour", "day")]
    assert scored and all(w.anomaly_score is not None for w in scored)
    assert all(0.0 <= w.anomaly_score <= 1.0 for w in scored if w.anomaly_score is not None)
    assert all(isinstance(w.is_anomaly, bool) for w in scored)
    assert all(w.anomaly_score is None and w.is_anomaly is None for w in windows if w not in scored)
    flagged = [w for w in scored if w.is_anomaly]
    assert flagged, "the tenfold jump must be flagged with threshold 0.6"
    assert len(outputs.anomalies) == len(flagged)
    record = outputs.anomalies[0]
    assert record["is_anomaly"] is True and record["anomaly_score"] > 0.6
    assert isinstance(record["features"], dict) and record["features"]
    assert {(w.device_id, w.period) for w in flagged} >= {("dev-1", "hour")}
    stats = pipeline.stats()["anomaly"]
    assert stats["windows_scored"] == len(scored)
    assert stats["windows_flagged"] == len(flagged)


async def test_baselines_are_saved_after_outputs_and_before_states() -> None:
    pipeline, outputs = build(MemoryCheckpoints())
    for batch in batches(days=1):
        await pipeline.handle(batch)
    kinds = [kind for kind, _ in outputs.log]
    assert "baselines" in kinds
    for index, kind in enumerate(kinds):
        if kind == "baselines":
            assert kinds[index + 1] == "save"
            assert "publish" in kinds[:index]
    assert set(outputs.baselines) == {"dev-0", "dev-1", "dev-2"}


async def test_a_restarted_pipeline_continues_with_identical_scores() -> None:
    all_batches = batches()
    half = len(all_batches) // 2

    uninterrupted, outputs = build(MemoryCheckpoints())
    for batch in all_batches:
        await uninterrupted.handle(batch)
    expected = [
        (w.device_id, w.period, w.window_start, w.anomaly_score, w.is_anomaly)
        for w in published(outputs)
    ]

    checkpoints = MemoryCheckpoints()
    first, first_outputs = build(checkpoints)
    for batch in all_batches[:half]:
        await first.handle(batch)
    assert await first.checkpoint_models() == 1
    assert await first.checkpoint_models() == 0  # nothing learned since
    # A new worker: states and baselines restored from their changelogs, model from its
    # checkpoint.
    states = {d: DeviceState.from_bytes(s.to_bytes()) for d, s in first.states.items()}
    second, second_outputs = build(checkpoints, states, dict(first_outputs.baselines))
    for batch in all_batches[half:]:
        await second.handle(batch)
    assert checkpoints.loads == 2
    got = [
        (w.device_id, w.period, w.window_start, w.anomaly_score, w.is_anomaly)
        for w in published(first_outputs) + published(second_outputs)
    ]
    assert got == expected


async def test_without_a_checkpoint_a_new_model_starts_cold() -> None:
    all_batches = batches()
    half = len(all_batches) // 2
    first, first_outputs = build(MemoryCheckpoints())
    for batch in all_batches[:half]:
        await first.handle(batch)
    second, _ = build(MemoryCheckpoints(), first.states, dict(first_outputs.baselines))
    await second.handle(all_batches[half])
    learned = second.stats()["anomaly"]["models"]["0"]["hour"]
    assert learned < first.stats()["anomaly"]["models"]["0"]["hour"]


async def test_release_checkpoints_and_drops_the_partition_model() -> None:
    checkpoints = MemoryCheckpoints()
    pipeline, _ = build(checkpoints)
    for batch in batches(days=1):
        await pipeline.handle(batch)
    await pipeline.release_partitions([0])
    assert 0 in checkpoints.models
    assert pipeline.stats()["anomaly"]["models"] == {}


async def test_idle_flush_scores_open_windows_without_flagging() -> None:
    pipeline, outputs = build(MemoryCheckpoints())
    for batch in batches(days=2):
        await pipeline.handle(batch)
    outputs.log.clear()
    pipeline.clock = lambda: START + 20 * 86_400.0
    assert await pipeline.flush_idle(60) > 0
    flushed = published(outputs)
    hours = [w for w in flushed if w.period == "hour"]
    assert hours and all(w.anomaly_score is not None and w.is_anomaly is False for w in hours)


def test_baseline_store_decodes_lazily_and_dumps_changes() -> None:
    pytest.importorskip("river")
    from streams.anomaly_baseline import DeviceBaseline
    from tests.anomaly.conftest import dump_v1

    old = DeviceBaseline(first_start=7, day_ordinal=3)
    raw: dict[str, bytes] = {"a": DeviceBaseline().dump(), "v1": dump_v1(old)}
    store = BaselineStore(raw)
    assert set(store) == {"a", "v1"} and len(store) == 2
    assert isinstance(store["a"], DeviceBaseline)
    assert store["v1"].dump() == old.dump()  # a changelog record of format version 1
    del store["v1"]
    store["b"] = DeviceBaseline()
    assert set(store) == {"a", "b"} and len(store) == 2
    dumped = store.dump(["b", "missing"])
    assert [d for d, _ in dumped] == ["b"] and raw["b"] == dumped[0][1]
    del store["a"]
    assert "a" not in raw
    with pytest.raises(KeyError):
        store["zzz"]
