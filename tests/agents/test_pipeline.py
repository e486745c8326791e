"""The worker's batch step without Faust: contiguity repair, routing, output order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from agents.messages import Message
from agents.pipeline import ReadingPipeline, partition_for
from models.metrics import WindowAggregate
from streams.config import ProcessingConfig
from streams.decode import Rejection
from streams.processor import StreamProcessor


class ListOutputs:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    async def dead_letter(self, items: Sequence[tuple[Rejection, Message]]) -> None:
        self.log.append(("dlq", [(r.reason, m.offset) for r, m in items]))

    async def forward(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.log.append(("forward", list(items)))

    async def publish(self, windows: Sequence[WindowAggregate]) -> None:
        self.log.append(("publish", list(windows)))

    async def publish_readings(self, readings: Sequence[Any]) -> None:
        self.log.append(("readings", [(r.device_id, r.ts) for r in readings]))

    async def record_devices(self, seen: Sequence[tuple[str, int, int, dict[str, Any]]]) -> None:
        self.log.append(("devices", list(seen)))

    def save_states(self, states: Sequence[tuple[str, int, bytes]]) -> None:
        self.log.append(("save", [d for d, _, _ in states]))


def reading(device: str, ts: int, power: float = 100.0) -> bytes:
    return orjson.dumps({"device_id": device, "timestamp": ts, "power_w": power})


def make(
    partitions: int = 1, clock: float = 1_900_000_000.0
) -> tuple[ReadingPipeline, ListOutputs]:
    outputs = ListOutputs()
    pipeline = ReadingPipeline(
        StreamProcessor(ProcessingConfig(grace_s=0)),
        {},
        outputs,
        partitions=partitions,
        currency="EUR",
        clock=lambda: clock,
    )
    return pipeline, outputs


def msgs(offsets: list[int], partition: int = 0) -> list[Message]:
    return [Message("r", partition, o, b"d", reading("d", 1_800_000_000 + 60 * o)) for o in offsets]


def test_contiguous_messages_are_admitted_and_redeliveries_dropped() -> None:
    pipeline, _ = make()
    assert [m.offset for m in pipeline.admit(msgs([0, 1, 2]))] == [0, 1, 2]
    assert [m.offset for m in pipeline.admit(msgs([2, 3]))] == [3]
    assert pipeline.redelivered == 1
    assert pipeline.take_seeks() == {}


def test_a_jump_holds_the_partition_and_seeks_back_until_refilled() -> None:
    pipeline, _ = make()
    pipeline.admit(msgs([0, 1, 2]))
    assert pipeline.admit(msgs([5, 6])) == []
    assert pipeline.take_seeks() == {("r", 0): 3}
    assert pipeline.admit(msgs([7])) == []  # stale buffered messages keep being held
    assert [m.offset for m in pipeline.admit(msgs([3, 4, 5, 6, 7]))] == [3, 4, 5, 6, 7]
    assert pipeline.gaps_repaired == 1


def test_first_message_after_assignment_is_checked_against_the_committed_offset() -> None:
    outputs = ListOutputs()
    pipeline = ReadingPipeline(
        StreamProcessor(ProcessingConfig()),
        {},
        outputs,
        partitions=1,
        currency="EUR",
        expected_start=lambda tp: 10,
    )
    assert pipeline.admit(msgs([12, 13])) == []
    assert pipeline.take_seeks() == {("r", 0): 10}


def test_a_hole_is_skipped_only_when_the_broker_confirms_it() -> None:
    pipeline, _ = make()
    pipeline.admit(msgs([0]))
    probes: dict[tuple[str, int], int] = {}
    for _ in range(12):
        assert pipeline.admit(msgs([4])) == []
        pipeline.take_seeks()
        probes.update(pipeline.take_probes())
    assert probes == {("r", 0): 1}
    pipeline.resolve_probe(("r", 0), 1, 1)  # the broker has offset 1: keep repairing
    assert pipeline.admit(msgs([4])) == []
    pipeline.resolve_probe(("r", 0), 1, 4)  # offsets 1..3 do not exist
    assert pipeline.take_seeks() == {("r", 0): 4}
    assert pipeline.accepted_holes == [(("r", 0), 1, 4)]
    assert [m.offset for m in pipeline.admit(msgs([4, 5]))] == [4, 5]


async def test_outputs_are_stored_before_state_is_saved() -> None:
    pipeline, outputs = make()
    batch = [
        Message("r", 0, 0, b"a", reading("a", 1_800_000_000)),
        Message("r", 0, 1, b"a", b"{oops"),
        Message("r", 0, 2, b"a", reading("a", 1_800_003_700)),
        Message("r", 0, 3, b"a", reading("a", 1_700_000_000)),  # late
    ]
    await pipeline.handle(batch)
    kinds = [kind for kind, _ in outputs.log]
    assert kinds[-1] == "save"
    assert set(kinds[:-1]) == {"dlq", "publish", "devices", "readings"}
    assert dict(outputs.log)["readings"] == [
        ("a", 1_800_000_000 * 10**6),
        ("a", 1_800_003_700 * 10**6),
    ]
    assert dict(outputs.log)["devices"] == [
        (
            "a",
            1_800_000_000 * 10**6,
            1_800_003_700 * 10**6,
            {"timestamp": 1_800_003_700 * 10**6, "power_w": 100.0, "energy_kwh": None},
        )
    ]
    dlq = dict(outputs.log)["dlq"]
    assert sorted(dlq) == [("invalid_json", 1), ("late", 3)]


async def test_readings_on_the_wrong_partition_are_forwarded_not_folded() -> None:
    pipeline, outputs = make(partitions=4)
    device = "meter-7"
    wrong = (partition_for(device, 4) + 1) % 4
    await pipeline.handle([Message("r", wrong, 0, None, reading(device, 1_800_000_000))])
    assert outputs.log == [("forward", [(device, reading(device, 1_800_000_000))])]
    assert pipeline.processor.counters.readings_received == 0
    await pipeline.handle(
        [
            Message(
                "rp",
                partition_for(device, 4),
                0,
                device.encode(),
                reading(device, 1_800_000_000),
                True,
            )
        ]
    )
    assert pipeline.processor.counters.readings_accepted == 1


def test_partition_for_matches_the_kafka_default_partitioner() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    for device in ("a", "meter-01", "x" * 128, "dev:9.z_"):
        assert partition_for(device, 6) == DefaultPartitioner()(
            device.encode(), list(range(6)), list(range(6))
        )


def test_oversized_dead_letters_are_cut_with_headers() -> None:
    from agents.messages import MAX_DLQ_VALUE_BYTES, dlq_value

    small = b'{"device_id":"a"}'
    assert dlq_value(small) == (small, [])
    big = b"x" * (MAX_DLQ_VALUE_BYTES * 3)
    value, headers = dlq_value(big)
    assert value == big[:MAX_DLQ_VALUE_BYTES]
    assert dict(headers) == {"truncated": b"true", "original.bytes": str(len(big)).encode()}


def test_a_large_reading_is_forwarded_with_its_contract_fields_only() -> None:
    from agents.messages import forward_value
    from streams.decode import ReadingDecoder

    decoder = ReadingDecoder(max_power_w=1e6, future_tolerance_us=300_000_000)
    now = 1_900_000_000_000_000
    small = b'[{"device_id":"d","timestamp":1800000000.5,"power_w":5,"note":"x"}]'
    reading = decoder.decode(small, now).readings[0]
    assert orjson.loads(forward_value(reading))["note"] == "x"
    big = (
        b'[{"device_id":"d","timestamp":1800000000.5,"energy_kwh":1.25,"note":"'
        + b"y" * 100_000
        + b'"}]'
    )
    reading = decoder.decode(big, now).readings[0]
    forwarded = forward_value(reading)
    assert len(forwarded) < 200
    again = decoder.decode(forwarded, now).readings[0]
    assert (again.device_id, again.ts, again.power_w, again.energy_kwh) == (
        reading.device_id,
        reading.ts,
        reading.power_w,
        reading.energy_kwh,
    )
