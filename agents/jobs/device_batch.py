"""``device_batch``: readings of one device from the request, judged and folded like the
stream does (same decoder, acceptance rules and arithmetic), from a fresh device state."""

from __future__ import annotations

import time
from typing import Any

import orjson

from agents.jobs.context import JobContext
from agents.jobs.windows import write_windows
from models.api import decimal_text
from models.jobs import DeviceBatchParameters
from streams.config import config_from_settings
from streams.decode import INVALID_SCHEMA, Rejection
from streams.device_state import DeviceState
from streams.processor import BatchResult, StreamProcessor

# Rejected readings listed one by one in the result (all are counted by reason).
MAX_LISTED_REJECTIONS = 100
CHUNK = 1000


async def run_device_batch(ctx: JobContext) -> dict[str, Any]:
    params = ctx.parameters
    assert isinstance(params, DeviceBatchParameters)
    processor = StreamProcessor(config_from_settings(ctx.settings))
    device_id = params.device_id
    states: dict[str, DeviceState] = {}
    result = BatchResult()
    now_us = round(time.time() * 1e6)
    readings = []
    for index, element in enumerate(params.readings):
        if isinstance(element, dict):
            named = element.get("device_id", device_id)
            if named != device_id:
                raw = orjson.dumps(element)
                processor.counters.readings_received += 1
                processor.counters.rejected_by_reason[INVALID_SCHEMA] += 1
                result.rejections.append(
                    Rejection(
                        INVALID_SCHEMA,
                        f"device_id {named!r} is not this job's device {device_id!r}",
                        raw,
                        msg=index,
                    )
                )
                continue
            element = {**element, "device_id": device_id}
        readings.extend(processor.decode(orjson.dumps(element), now_us, result, index))
        if index % CHUNK == CHUNK - 1:
            await ctx.progress(50 * index / len(params.readings))
    processor.fold(readings, states, time.time(), result)
    emissions = {(e.period, e.window_start): e for e in result.emissions}
    state = states.get(device_id)
    if state is not None:
        emissions.update({(e.period, e.window_start): e for e in processor.flush(device_id, state)})
    await ctx.progress(60)
    currency = ctx.settings.effective_tariff.currency
    windows = [emissions[key].to_model(currency) for key in sorted(emissions)]
    written = await write_windows(ctx, windows)
    counters = processor.counters
    return {
        "device_id": device_id,
        "readings_received": counters.readings_received,
        "readings_accepted": counters.readings_accepted,
        "readings_rejected": sum(counters.rejected_by_reason.values()),
        "rejected_by_reason": dict(sorted(counters.rejected_by_reason.items())),
        "duplicates": counters.duplicates,
        "spikes": counters.spikes,
        "rejected": [
            {"index": r.msg, "reason": r.reason, "detail": r.detail}
            for r in sorted(result.rejections, key=lambda r: r.msg)[:MAX_LISTED_REJECTIONS]
        ],
        "windows_written": len(written),
        "windows": [
            {
                "period": w.period,
                "window_start": w.window_start.isoformat().replace("+00:00", "Z"),
                "window_end": w.window_end.isoformat().replace("+00:00", "Z"),
                "reading_count": w.reading_count,
                "energy_kwh": w.energy_kwh,
                "cost": decimal_text(w.cost),
                "coverage": w.coverage,
                "revision": w.revision,
            }
            for w in written
        ],
    }
