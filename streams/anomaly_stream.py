"""The stream path with anomaly scores: fold message batches, score emitted hour and day
windows in a batch-independent order. Shared by ``energy-processing score``, the evaluation
(``python -m eval``) and, once wired, the worker.

Order matters because the shared model learns from every device: a batch's emissions are
scored in the order one-message-at-a-time processing would emit them (by the message whose
reading made each window final, then the device's first reading in that message, then
period and window start). So when each device's readings arrive in time order, the scores
do not depend on how the messages are split into batches. (A reading that arrives out of
order within GRACE can revise a window already emitted; which value was learned then
depends on the batch split.)
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from streams.anomaly import SCORED_PERIODS, AnomalyDetector
from streams.anomaly_config import AnomalyConfig
from streams.anomaly_score import AnomalyScore
from streams.config import ProcessingConfig
from streams.decode import Reading
from streams.device_state import DeviceState
from streams.emission import Emission
from streams.processor import BatchResult, StreamProcessor
from streams.timeparse import format_us
from streams.windows import PERIOD_CODES

WindowKey = tuple[str, str, int]  # device_id, period, window_start (us)

_ID_TS_MSG = attrgetter("device_id", "ts", "msg")


@dataclass(slots=True)
class ScoredWindow:
    emission: Emission
    result: AnomalyScore
    final: bool
    _fields: dict[str, Any] | None = None

    @property
    def fields(self) -> dict[str, Any]:
        """``emission.fields()``, made when first asked for."""
        if self._fields is None:
            self._fields = self.emission.fields()
        return self._fields


def order_emissions(
    readings: Sequence[Reading], emissions: Sequence[Emission], grace_us: int
) -> list[Emission]:
    """``emissions`` of one fold, in the order message-by-message folding would emit them.

    ``readings``: the batch's valid readings in arrival order (what was passed to fold).
    A window [s, e) becomes final with the device's first reading at or after ``e + GRACE``
    (rejected readings never raise the device's maximum, so they need no special care);
    a revision without such a reading is placed at the device's last reading.
    """
    if not emissions:
        return []
    # Per device, its running maximum of ts: the values and the positions where it rose.
    # The first reading at or after a time is where the maximum first reaches it.
    tops: dict[str, list[int]] = {}
    rises: dict[str, list[int]] = {}
    last: dict[str, int] = {}  # device -> position of its last reading
    first_in_msg: dict[tuple[int, str], int] = {}
    for position, (device_id, ts, msg) in enumerate(map(_ID_TS_MSG, readings)):
        if (msg, device_id) not in first_in_msg:
            first_in_msg[msg, device_id] = position
        top = tops.get(device_id)
        if top is None:
            tops[device_id] = [ts]
            rises[device_id] = [position]
        elif ts > top[-1]:
            top.append(ts)
            rises[device_id].append(position)
        last[device_id] = position
    after = len(readings)
    codes = PERIOD_CODES

    def key(emission: Emission) -> tuple[int, int, int, int]:
        device_id = emission.device_id
        top = tops.get(device_id)
        if top is None:
            return (after, 0, codes[emission.period], emission.window_start)
        lo = bisect_left(top, emission.window_end + grace_us)
        position = rises[device_id][lo] if lo < len(top) else last[device_id]
        msg = readings[position].msg
        return (msg, first_in_msg[msg, device_id], codes[emission.period], emission.window_start)

    return sorted(emissions, key=key)


@dataclass
class StreamScorer:
    """A StreamProcessor, its device states and an AnomalyDetector, driven like the worker."""

    processing: ProcessingConfig
    anomaly: AnomalyConfig | None = None
    processor: StreamProcessor = field(init=False)
    detector: AnomalyDetector = field(init=False)
    states: MutableMapping[str, DeviceState] = field(default_factory=dict)
    # detector time per scored window (ns), when a list is given
    timings: list[int] | None = None
    touched: set[str] = field(default_factory=set)  # devices with readings in the last batch

    def __post_init__(self) -> None:
        self.processor = StreamProcessor(self.processing)
        anomaly = self.anomaly or AnomalyConfig(timezone=self.processing.timezone)
        self.detector = AnomalyDetector(anomaly)

    def process(self, values: Iterable[bytes], now_us: int, wall: float) -> list[ScoredWindow]:
        """Fold one batch of message values; score its hour and day emissions."""
        processor = self.processor
        result = BatchResult()
        readings: list[Reading] = []
        for index, raw in enumerate(values):
            readings.extend(processor.decode(raw, now_us, result, index))
        processor.fold(readings, self.states, wall, result)
        self.touched = {reading.device_id for reading in readings}
        ordered = order_emissions(readings, result.emissions, processor.engine.grace)
        return self.score(ordered)

    def finish(self) -> list[ScoredWindow]:
        """End of input: flush every device (its open windows are scored, not learned)."""
        emissions: list[Emission] = []
        for device_id, state in self.states.items():
            emissions.extend(self.processor.flush(device_id, state))
        return self.score(emissions)

    def score(self, emissions: Iterable[Emission]) -> list[ScoredWindow]:
        """Score ``emissions`` in the given order (see ``score_emissions``)."""
        return score_emissions(
            lambda device_id: self.detector,
            emissions,
            self.states,
            self.processor.engine.grace,
            self.timings,
        )


def score_emissions(
    detector_for: Callable[[str], AnomalyDetector],
    emissions: Iterable[Emission],
    states: Mapping[str, DeviceState],
    grace_us: int,
    timings: list[int] | None = None,
) -> list[ScoredWindow]:
    """Score the hour and day windows among ``emissions``, in the order given (put a fold's
    emissions through ``order_emissions`` first), after the fold or flush that emitted them.

    ``detector_for(device_id)``: the detector of the device's partition. A window is final
    when the device's watermark (``max_ts - GRACE``) has passed its end; an open window
    (idle flush) is scored but not learned or flagged. Week and month windows are skipped.
    """
    chosen: list[tuple[Emission, bool]] = []
    for emission in emissions:
        if emission.period not in SCORED_PERIODS:
            continue
        state = states.get(emission.device_id)
        max_ts = state.max_ts if state is not None else None
        final = max_ts is not None and emission.window_end <= max_ts - grace_us
        chosen.append((emission, final))
    if timings is not None:  # per window, to time each (the evaluation's cost figures)
        results = []
        for emission, final in chosen:
            fields = emission.fields()
            began = time.perf_counter_ns()
            results.append(detector_for(emission.device_id).score(fields, final))
            timings.append(time.perf_counter_ns() - began)
    else:
        # One batch per detector (they are independent), in the given order within each.
        by_detector: dict[int, tuple[AnomalyDetector, list[int]]] = {}
        for index, (emission, _) in enumerate(chosen):
            detector = detector_for(emission.device_id)
            group = by_detector.get(id(detector))
            if group is None:
                group = by_detector[id(detector)] = (detector, [])
            group[1].append(index)
        if len(by_detector) == 1:  # the usual case: no regrouping needed
            ((detector, _),) = by_detector.values()
            results = detector.score_many(chosen)
        else:
            results_at: list[AnomalyScore | None] = [None] * len(chosen)
            for detector, indices in by_detector.values():
                batch = detector.score_many([chosen[i] for i in indices])
                for index, result in zip(indices, batch, strict=True):
                    results_at[index] = result
            results = [r for r in results_at if r is not None]
    return [
        ScoredWindow(emission, result, final)
        for (emission, final), result in zip(chosen, results, strict=True)
    ]


def score_lines(
    lines: Iterable[bytes],
    scorer: StreamScorer,
    *,
    batch_size: int = 1000,
    clock: Callable[[], float] = time.time,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[ScoredWindow]:
    """Feed JSONL lines (one message each, arrival order) through ``scorer`` in batches and
    flush at the end. Yields each window once, with its last emission (final revision), as
    soon as it can no longer change: when the stream has closed it (the device's state no
    longer tracks it), else at the end. ``progress(messages, windows)`` after each batch."""
    pending: dict[str, dict[WindowKey, ScoredWindow]] = {}
    messages = written = 0
    for batch in batches(lines, batch_size):
        wall = clock()
        for window in scorer.process(batch, int(wall * 1_000_000), wall):
            pending.setdefault(window.emission.device_id, {})[_key(window)] = window
        for device_id in scorer.touched:
            waiting = pending.get(device_id)
            state = scorer.states.get(device_id)
            if not waiting or state is None:
                continue
            emitted = state.emitted
            for key in [k for k in waiting if (PERIOD_CODES[k[1]], k[2]) not in emitted]:
                written += 1
                yield waiting.pop(key)
        messages += len(batch)
        if progress is not None:
            progress(messages, written)
    for window in scorer.finish():
        pending.setdefault(window.emission.device_id, {})[_key(window)] = window
    for waiting in pending.values():
        yield from waiting.values()


def _key(window: ScoredWindow) -> WindowKey:
    emission = window.emission
    return (emission.device_id, emission.period, emission.window_start)


def window_row(window: ScoredWindow) -> dict[str, Any]:
    """One output line of ``energy-processing score``."""
    fields = window.fields
    result = window.result
    return {
        "device_id": fields["device_id"],
        "period": fields["period"],
        "window_start": format_us(fields["window_start"]),
        "window_end": format_us(fields["window_end"]),
        "energy_kwh": fields["energy_kwh"],
        "coverage": fields["coverage"],
        "reading_count": fields["reading_count"],
        "power_mean_w": fields["power_mean_w"],
        "power_max_w": fields["power_max_w"],
        "revision": fields["revision"],
        "final": window.final,
        "anomaly_score": round(result.score, 6),
        "is_anomaly": result.is_anomaly,
        "features": result.features,
    }


def batches(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    """Non-empty lines, stripped, in lists of ``size``."""
    batch: list[bytes] = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        batch.append(line)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
