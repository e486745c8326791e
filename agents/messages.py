"""Kafka records as the pipeline sees them: a consumed ``Message`` (made from Faust's events
too), and the values it writes for a rejected record (dead-letter topic) and a reading in the
wrong partition (repartition topic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streams.decode import Reading, reading_bytes
from streams.timeparse import format_us

# Kafka's default limit for one record is 1 MiB (max.message.bytes, the producer's
# max_request_size); outputs stay well below it whatever the input was.
MAX_DLQ_VALUE_BYTES = 512 * 1024
MAX_FORWARD_VALUE_BYTES = 64 * 1024


def dlq_value(raw: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The DLQ value for rejected bytes, and extra headers: a value above
    MAX_DLQ_VALUE_BYTES is cut there (``truncated``, ``original.bytes`` headers); the whole
    message stays on its source topic at the ``source.*`` headers' position."""
    if len(raw) <= MAX_DLQ_VALUE_BYTES:
        return raw, []
    return raw[:MAX_DLQ_VALUE_BYTES], [
        ("truncated", b"true"),
        ("original.bytes", str(len(raw)).encode()),
    ]


def forward_value(reading: Reading) -> bytes:
    """A reading re-sent to its device's partition: its own JSON text, or, when that is
    large (big unknown fields), just the contract's fields (the rest is ignored anyway)."""
    value = reading_bytes(reading)
    if len(value) <= MAX_FORWARD_VALUE_BYTES:
        return value
    return orjson.dumps(
        {
            "device_id": reading.device_id,
            "timestamp": format_us(reading.ts),
            "power_w": reading.power_w,
            "energy_kwh": reading.energy_kwh,
        }
    )


@dataclass(slots=True)
class Message:
    """One consumed record. ``source`` is the partition for the readings topic and
    ``-1 - partition`` for the repartition topic (see StreamProcessor.fold)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    repartitioned: bool = False

    @property
    def source(self) -> int:
        return -1 - self.partition if self.repartitioned else self.partition


def messages_from_events(events: Any, repartitioned: bool) -> list[Message]:
    """Faust stream events as the pipeline's messages."""
    out = []
    for event in events:
        msg = event.message
        value = event.value
        out.append(
            Message(
                msg.topic,
                msg.partition,
                msg.offset,
                msg.key,
                value if isinstance(value, bytes) else b"" if value is None else bytes(value),
                repartitioned,
            )
        )
    return out
