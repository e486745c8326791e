"""Run the stream fold over arrivals the way the worker does, and collect final windows."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from streams.config import ProcessingConfig
from streams.device_state import DeviceState
from streams.processor import StreamProcessor
from tests.oracle import OracleReading

NOW_US = 4_000_000_000 * 1_000_000  # far future wall clock: nothing is "in the future"


def reading_json(r: OracleReading) -> bytes:
    doc: dict[str, Any] = {"device_id": r.device_id, "timestamp": r.ts / 1e6}
    if r.ts % 1_000_000 == 0:
        doc["timestamp"] = r.ts // 1_000_000
    if r.power_w is not None:
        doc["power_w"] = r.power_w
    if r.energy_kwh is not None:
        doc["energy_kwh"] = r.energy_kwh
    return orjson.dumps(doc)


def run_stream(
    arrivals: list[OracleReading],
    config: ProcessingConfig,
    cuts: list[int] | None = None,
    *,
    restart_at: set[int] | None = None,
) -> tuple[dict[tuple[str, str, int], dict[str, Any]], StreamProcessor]:
    """Feed arrivals in batches split at ``cuts``; at the end idle-flush every device.

    ``restart_at``: batch indexes after which the states are serialised and reloaded,
    as a worker restart restoring from the changelog would.
    """
    processor = StreamProcessor(config)
    states: dict[str, DeviceState] = {}
    values = [reading_json(r) for r in arrivals]
    bounds = sorted({0, len(values), *(c for c in (cuts or []) if 0 < c < len(values))})
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}

    def collect(emissions: list[Any]) -> None:
        for e in emissions:
            key = (e.device_id, e.period, e.window_start)
            fields = e.fields()
            previous = latest.get(key)
            assert previous is None or fields["revision"] == previous["revision"] + 1, key
            latest[key] = fields

    for index, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        result = processor.process_messages(values[lo:hi], states, NOW_US, wall=float(index))
        collect(result.emissions)
        if restart_at and index in restart_at:
            states = {k: DeviceState.from_bytes(v.to_bytes()) for k, v in states.items()}
    for device_id, state in states.items():
        collect(processor.flush(device_id, state))
    final = {k: v for k, v in latest.items() if v["reading_count"] > 0 or v["energy_kwh"] > 0}
    return final, processor
