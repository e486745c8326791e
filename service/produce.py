"""Send readings to the readings topic: a JSONL or CSV file, or simulated meters.

A JSONL line is one reading object or a JSON array of them and is sent unchanged (even when
it is not valid JSON, so the dead-letter path can be exercised); the key is the line's
``device_id`` when it has one. A CSV file has a header row naming the reading fields
(``device_id``, ``timestamp``, ``power_w``, ``energy_kwh``, ``voltage_v``, ``current_a``;
other columns are passed along); each row becomes one reading object, numbers as JSON
numbers, empty cells left out. With ``batch > 1``, consecutive readings of one device are
joined into JSON arrays of up to ``batch`` readings, the way a gateway batches.
"""

from __future__ import annotations

import asyncio
import csv
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

import orjson
from aiokafka import AIOKafkaProducer

from service.endpoints import bootstrap_servers
from service.settings import Settings

# Futures awaited together; bounds memory while letting aiokafka batch freely.
_INFLIGHT = 20_000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m``, ``6h``, ``2d`` or ``1w``."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 6h or 2d")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def default_bootstrap(settings: Settings) -> str:
    """KAFKA_BROKER_URL, else the embedded broker that ``energy-processing run`` starts."""
    return ",".join(bootstrap_servers(settings))


@dataclass
class Progress:
    """Readings and messages sent so far, shown on one line of ``stream`` updated in place."""

    stream: TextIO | None = field(default_factory=lambda: sys.stderr)
    interval: float = 0.25
    readings: int = 0
    messages: int = 0
    started: float = field(default_factory=time.monotonic)
    total_bytes: int | None = None  # size of the input file, when known
    read_bytes: int = 0
    _shown: float = 0.0

    def add(self, readings: int) -> None:
        self.readings += readings
        self.messages += 1
        now = time.monotonic()
        if self.stream is not None and self.stream.isatty() and now - self._shown >= self.interval:
            self._shown = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        text = (
            f"sent {self.readings:,} readings in {self.messages:,} messages "
            f"({self.readings / elapsed:,.0f} readings/s)"
        )
        if self.total_bytes:
            share = min(self.read_bytes / self.total_bytes, 1.0)
            filled = int(share * 20)
            text = f"[{'#' * filled}{'.' * (20 - filled)}] {share:6.1%} " + text
        return text

    def finish(self) -> None:
        if self.stream is not None:
            prefix = "\r" if self.stream.isatty() else ""
            self.stream.write(prefix + self.line() + "\n")
            self.stream.flush()


@dataclass(frozen=True)
class Message:
    value: bytes
    key: bytes | None
    readings: int


def _key_of(parsed: object) -> str | None:
    if isinstance(parsed, dict):
        device_id = parsed.get("device_id")
        return device_id if isinstance(device_id, str) else None
    if isinstance(parsed, list) and parsed:
        keys = {_key_of(item) if isinstance(item, dict) else None for item in parsed}
        if len(keys) == 1:
            return keys.pop()
    return None


def _count_of(parsed: object) -> int:
    return len(parsed) if isinstance(parsed, list) else 1


def messages_from_lines(lines: Iterable[bytes], batch: int = 1) -> Iterator[Message]:
    """One message per non-blank line, or per-device arrays of up to ``batch`` object lines."""
    pending: dict[str, list[bytes]] = {}
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            parsed: object = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Message(line, None, 1)
            continue
        key = _key_of(parsed)
        if batch <= 1 or key is None or not isinstance(parsed, dict):
            yield Message(line, key.encode() if key else None, _count_of(parsed))
            continue
        group = pending.setdefault(key, [])
        group.append(line)
        if len(group) >= batch:
            yield _array(key, pending.pop(key))
    for key, group in pending.items():
        yield _array(key, group)


def messages_from_readings(
    readings: Iterable[dict[str, str | float]], batch: int = 1
) -> Iterator[Message]:
    """Messages for reading objects, keyed by device, arrays of ``batch`` per device."""
    return _batched(((str(r["device_id"]), orjson.dumps(r)) for r in readings), batch)


def _batched(readings: Iterable[tuple[str | None, bytes]], batch: int) -> Iterator[Message]:
    """(device_id, reading JSON) as one message each, or per-device arrays of ``batch``
    (a reading without a device id always goes alone)."""
    pending: dict[str, list[bytes]] = {}
    for key, value in readings:
        if batch <= 1 or key is None:
            yield Message(value, key.encode() if key else None, 1)
            continue
        group = pending.setdefault(key, [])
        group.append(value)
        if len(group) >= batch:
            yield _array(key, pending.pop(key))
    for key, group in pending.items():
        yield _array(key, group)


def _array(key: str, items: list[bytes]) -> Message:
    return Message(b"[" + b",".join(items) + b"]", key.encode(), len(items))


def new_producer(bootstrap: str, client_id: str = "energy-processing-produce") -> AIOKafkaProducer:
    """A producer tuned for throughput: batches fill for a few milliseconds before sending."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        linger_ms=10,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
    )


async def send_messages(
    producer: AIOKafkaProducer,
    topic: str,
    messages: Iterable[Message],
    progress: Progress | None = None,
) -> int:
    """Send every message with ``send()`` batching; return the number of readings sent."""
    inflight: list[asyncio.Future[object]] = []
    readings = 0
    for message in messages:
        inflight.append(await producer.send(topic, message.value, key=message.key))
        readings += message.readings
        if progress is not None:
            progress.add(message.readings)
        if len(inflight) >= _INFLIGHT:
            await asyncio.gather(*inflight)
            inflight.clear()
    await producer.flush()
    await asyncio.gather(*inflight)
    return readings


async def produce(
    bootstrap: str,
    topic: str,
    messages: Iterable[Message],
    progress: Progress | None = None,
) -> int:
    """Connect, send ``messages`` to ``topic``, wait for every acknowledgement, disconnect."""
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        return await send_messages(producer, topic, messages, progress)
    finally:
        await producer.stop()
        if progress is not None:
            progress.finish()


NUMERIC_FIELDS = frozenset({"power_w", "energy_kwh", "voltage_v", "current_a"})


_CSV_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
_CSV_INTEGER = re.compile(r"[-+]?\d+")


def _csv_value(name: str, text: str) -> object:
    """A CSV cell as the JSON value a producer would send: a plain decimal number in a
    numeric field or the timestamp becomes a JSON number; anything else stays text (the
    worker then judges it: an RFC 3339 timestamp is fine, a non-number power is rejected)."""
    if (name in NUMERIC_FIELDS or name == "timestamp") and _CSV_NUMBER.fullmatch(text):
        if _CSV_INTEGER.fullmatch(text):
            return int(text)
        number = float(text)
        if math.isfinite(number):
            return number
    return text


def readings_from_csv(lines: Iterable[bytes]) -> Iterator[dict[str, object]]:
    """Reading objects from CSV lines with a header row (see the module doc)."""
    text = (line.decode("utf-8-sig") for line in lines)
    reader = csv.DictReader(text)
    if reader.fieldnames is None:
        return
    missing = {"device_id", "timestamp"} - {f.strip() for f in reader.fieldnames}
    if missing:
        raise ValueError(f"CSV header lacks {', '.join(sorted(missing))}: {reader.fieldnames}")
    for row in reader:
        reading = {
            name.strip(): _csv_value(name.strip(), value.strip())
            for name, value in row.items()
            if name is not None and value is not None and value.strip() != ""
        }
        if reading:
            yield reading


def messages_from_csv(lines: Iterable[bytes], batch: int = 1) -> Iterator[Message]:
    """Messages from a CSV file: one reading per message, or per-device arrays."""

    def pairs() -> Iterator[tuple[str | None, bytes]]:
        for reading in readings_from_csv(lines):
            device_id = reading.get("device_id")
            yield (device_id if isinstance(device_id, str) else None), orjson.dumps(reading)

    return _batched(pairs(), batch)


def read_lines(path: str, progress: Progress | None = None) -> Iterator[bytes]:
    """Lines of ``path`` (``-`` for standard input) as bytes; counts bytes into
    ``progress`` (with the file size as its total) for a percentage."""
    if path == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as source:
        if progress is not None:
            try:
                progress.total_bytes = os.fstat(source.fileno()).st_size or None
            except OSError:
                progress.total_bytes = None
        for line in source:
            if progress is not None:
                progress.read_bytes += len(line)
            yield line
