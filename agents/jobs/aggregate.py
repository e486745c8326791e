"""``aggregate``: recompute windows of a time range from the readings topic.

The job re-reads ``energy.readings`` from the offsets for (the first window that holds
``start``) minus ``AGGREGATE_LOOKBACK``, by Kafka message time, to the current end of the
log, and folds it through the stream's own code (StreamProcessor, same settings) into fresh
device states. It writes the windows of the requested periods and devices that intersect
``[start, end)``: final windows with the stored revision + 1, windows still open with the
stored revision (see agents.jobs.windows). The lookback must cover how long readings take
to reach Kafka after their timestamp, plus the interval that leads into the first window
(up to ``MAX_GAP`` for power readings): readings older than that are not seen, so a window
whose energy depends on them may differ from the stream's.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from agents.jobs.context import JobContext
from agents.jobs.readings_log import ReadingsLog
from agents.jobs.windows import write_windows
from models.jobs import AggregateParameters
from models.metrics import PERIODS
from streams.config import config_from_settings
from streams.decode import Reading
from streams.device_state import DeviceState
from streams.emission import Emission
from streams.processor import BatchResult, StreamProcessor
from streams.timeparse import US_PER_S, datetime_to_us, format_us
from streams.windows import PERIOD_CODES

EmissionKey = tuple[str, str, int]


async def run_aggregate(ctx: JobContext) -> dict[str, Any]:
    params = ctx.parameters
    assert isinstance(params, AggregateParameters)
    settings = ctx.settings
    processor = StreamProcessor(config_from_settings(settings))
    calendar = processor.engine.calendar
    periods = list(params.periods or PERIODS)
    start_us, end_us = datetime_to_us(params.start), datetime_to_us(params.end)
    first_window = min(calendar.window(PERIOD_CODES[p], start_us)[0] for p in periods)
    read_from_us = first_window - round(settings.aggregate_lookback * US_PER_S)
    devices = set(params.device_ids) if params.device_ids else None

    states: dict[str, DeviceState] = {}
    latest: dict[EmissionKey, Emission] = {}
    messages = 0
    partitions: dict[str, list[int]] = {}
    await ctx.progress(0)
    async with ReadingsLog(settings, settings.readings_topic, read_from_us // 1000) as log:
        total = log.total
        partitions = {str(tp.partition): [log.start[tp], log.end[tp]] for tp in log.start}
        async for records in log.batches():
            result = BatchResult()
            readings: list[Reading] = []
            wall = time.time()
            for index, record in enumerate(records):
                # The future-timestamp rule is judged against the time the message was
                # appended, as close as the log keeps to when the stream judged it.
                stamp = record.timestamp
                now_us = stamp * 1000 if stamp is not None and stamp > 0 else round(wall * 1e6)
                decoded = processor.decode(record.value or b"", now_us, result, index)
                readings.extend(r for r in decoded if devices is None or r.device_id in devices)
            processor.fold(readings, states, wall, result)
            _keep(latest, result.emissions)
            messages += len(records)
            await ctx.progress(min(99.0, 99.0 * messages / total) if total else 50)
    for device_id, state in states.items():
        _keep(latest, processor.flush(device_id, state))

    currency = settings.effective_tariff.currency
    grace = processor.engine.grace
    final, still_open = [], []
    for (device_id, period, _), emission in sorted(latest.items()):
        if period not in periods:
            continue
        if emission.window_end <= start_us or emission.window_start >= end_us:
            continue
        state = states[device_id]
        assert state.max_ts is not None
        window = emission.to_model(currency)
        if emission.window_end <= state.max_ts - grace:
            final.append(window)
        else:
            still_open.append(window)
    written = await write_windows(ctx, final, still_open)
    counters = processor.counters
    by_period = Counter(w.period for w in [*final, *still_open])
    return {
        "messages": messages,
        "read_from": format_us(max(read_from_us, 0)),
        "partitions": partitions,
        "readings_received": counters.readings_received,
        "readings_accepted": counters.readings_accepted,
        "readings_rejected": sum(counters.rejected_by_reason.values()),
        "rejected_by_reason": dict(sorted(counters.rejected_by_reason.items())),
        "duplicates": counters.duplicates,
        "spikes": counters.spikes,
        "devices": len(states),
        "windows_written": len(written),
        "windows_final": len(final),
        "windows_open": len(still_open),
        "windows_by_period": {p: by_period[p] for p in periods},
    }


def _keep(latest: dict[EmissionKey, Emission], emissions: list[Emission]) -> None:
    for emission in emissions:
        latest[(emission.device_id, emission.period, emission.window_start)] = emission
