"""Labelled synthetic meter readings for the anomaly evaluation; deterministic given a seed.

Devices: households (morning and evening peaks, appliances, some charge an electric car on
fixed weekday nights), offices and shops (opening hours on working days), always-on loads
(a compressor's duty cycle). Some report only a cumulative ``energy_kwh`` register, some
only ``power_w``, some both, every 5, 10 or 15 minutes. Normal life varies: measurement
noise, a per-day factor, a fleet-wide slow swing (weather), random appliance use.

Anomalies (``KINDS``): a power spike (one or two readings), a stuck meter (it repeats its
last values, or reports zero, and the register stops), an abnormal night load, a sustained
level shift, and a changed weekly schedule (working days or hours moved, a household on
night shifts). Each reading is generated twice from the same random draws, with and
without the anomaly, so the energy an anomaly adds or removes per window is known exactly.

Labels are per window (device_id, period, window_start in us; UTC hours and UTC days, the
processor's windows with ``TIMEZONE=UTC``):

- ``stuck``: at least half of the hour's readings are stuck;
- ``level_shift``: the hour overlaps the shift by at least 30 minutes;
- ``spike``, ``night_load``, ``schedule_change``: the anomaly changes the hour's energy by at
  least 25 % of its normal energy plus 5 % of the device's mean hourly energy;
- a day carries the kind of its labelled hours (the most frequent one), if it has any.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from eval.fleet import (
    DAY,
    DEFAULT_START,
    HOUR,
    KINDS,
    US,
    Anomaly,
    Device,
    make_anomalies,
    make_devices,
    profile_w,
    rfc3339,
)

__all__ = ["KINDS", "Dataset", "LabelKey", "generate", "read_labels"]

LabelKey = tuple[str, str, int]  # device_id, period, window_start (us)


@dataclass
class Dataset:
    start: float
    end: float
    devices: list[Device]
    anomalies: list[Anomaly]
    lines: list[bytes]  # reading objects as JSON, in arrival order
    labels: dict[LabelKey, str] = field(default_factory=dict)
    # device_id -> hour window start (us) -> (clean kWh, kWh as generated); for diagnostics
    hours: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)

    def write(self, folder: Path) -> tuple[Path, Path]:
        """Write ``readings.jsonl`` and ``labels.jsonl`` (plus ``anomalies.jsonl``)."""
        folder.mkdir(parents=True, exist_ok=True)
        readings = folder / "readings.jsonl"
        with readings.open("wb") as out:
            for line in self.lines:
                out.write(line)
                out.write(b"\n")
        labels = folder / "labels.jsonl"
        with labels.open("wb") as out:
            for (device_id, period, start), kind in sorted(self.labels.items()):
                row = {
                    "device_id": device_id,
                    "period": period,
                    "window_start": rfc3339(start / US),
                    "kind": kind,
                }
                out.write(orjson.dumps(row) + b"\n")
        with (folder / "anomalies.jsonl").open("wb") as out:
            for anomaly in self.anomalies:
                out.write(orjson.dumps(anomaly.as_dict()) + b"\n")
        return readings, labels


def read_labels(path: Path) -> dict[LabelKey, str]:
    """Labels written by ``Dataset.write``, keyed like ``Dataset.labels``."""
    labels: dict[LabelKey, str] = {}
    with path.open("rb") as lines:
        for line in lines:
            row = orjson.loads(line)
            stamp = datetime.fromisoformat(row["window_start"].replace("Z", "+00:00"))
            start = round(stamp.timestamp()) * US
            labels[(row["device_id"], row["period"], start)] = row["kind"]
    return labels


# -- readings ------------------------------------------------------------------------------
@dataclass(slots=True)
class _Hour:
    clean_kwh: float = 0.0
    kwh: float = 0.0
    readings: int = 0
    stuck: int = 0
    # kind -> kWh its readings added or removed (left rectangle: a reading's anomaly owns
    # the interval that starts at it)
    changed: dict[str, float] = field(default_factory=dict)


def _appliances(
    rng: random.Random, device: Device, day_start: float
) -> list[tuple[float, float, float]]:
    """Random appliance use of one day: (start, end, W)."""
    events: list[tuple[float, float, float]] = []
    weekday = int((day_start // DAY + 3) % 7)
    if device.profile == "household":
        for _ in range(_poisson(rng, 5.0 if weekday >= 5 else 3.5)):
            at = day_start + rng.uniform(6.0, 23.0) * HOUR
            events.append((at, at + rng.uniform(3, 8) * 60, rng.uniform(1500, 2200)))
        if rng.random() < 0.5:
            at = day_start + rng.uniform(17.0, 19.5) * HOUR
            events.append((at, at + rng.uniform(30, 70) * 60, rng.uniform(1800, 2400)))
        if rng.random() < 0.35:
            at = day_start + rng.uniform(8.0, 20.0) * HOUR
            events.append((at, at + rng.uniform(60, 120) * 60, rng.uniform(400, 900)))
    elif device.profile == "office" and weekday in device.workdays and rng.random() < 0.15:
        at = day_start + device.close_h * HOUR
        events.append((at, at + rng.uniform(1.0, 2.5) * HOUR, 0.3 * device.peak_w))
    return events


def _poisson(rng: random.Random, mean: float) -> int:
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _spread(
    hours: dict[int, _Hour], a: float, b: float, clean: float, energy: float, kind: str
) -> None:
    """Attribute an interval's energies to the UTC hours it overlaps, uniformly."""
    length = b - a
    x = a
    while x < b:
        hour_start = math.floor(x / HOUR) * HOUR
        y = min(b, hour_start + HOUR)
        share = (y - x) / length
        hour = hours.setdefault(hour_start * US, _Hour())
        hour.clean_kwh += clean * share
        hour.kwh += energy * share
        if kind and kind != "stuck":
            hour.changed[kind] = hour.changed.get(kind, 0.0) + (energy - clean) * share
        x = y


def _device_readings(
    device: Device,
    anomalies: list[Anomaly],
    start: float,
    end: float,
    seed: int,
    swing_phase: float,
    hours: dict[int, _Hour],
) -> Iterator[tuple[float, bytes]]:
    """(timestamp, JSON) of one device's readings in time order; fills ``hours``."""
    rng = random.Random(f"eval-readings/{seed}/{device.device_id}")
    day_factor: dict[int, float] = {}
    appliances: list[tuple[float, float, float]] = []  # start, end, W
    register = device.initial_kwh
    # ts, clean W, true W, reported W, reported kWh, anomaly kind
    previous: tuple[float, float, float, float, float, str] | None = None
    stuck_payload: tuple[float, float] | None = None  # power, register
    step = device.step_s
    tick = 0
    pointer = 0
    while True:
        jitter = rng.uniform(-0.1, 0.1) * step
        ts = round(start + (tick + 0.1 + 0.8 * device.phase) * step + jitter, 3)
        tick += 1
        if ts >= end:
            return
        day = int((ts - start) // DAY)
        if day not in day_factor:
            day_factor[day] = math.exp(rng.gauss(0.0, 0.12))
            appliances = [a for a in appliances if a[1] > ts]
            appliances += _appliances(rng, device, start + day * DAY)
        while pointer < len(anomalies) and anomalies[pointer].end <= ts:
            pointer += 1
        active = anomalies[pointer] if pointer < len(anomalies) else None
        if active is not None and active.start > ts:
            active = None

        swing = 1.0 + 0.1 * math.sin(2 * math.pi * (ts - start) / (41 * DAY) + swing_phase)
        noise = max(0.0, 1.0 + rng.gauss(0.0, 0.05)) * day_factor[day] * swing
        extra = sum(w for a, b, w in appliances if a <= ts < b)
        clean_w = profile_w(device, ts) * noise + extra
        true_w = clean_w
        kind = active.kind if active is not None else ""
        if active is not None:
            if kind == "spike":
                true_w = active.magnitude
            elif kind == "night_load":
                true_w = clean_w + active.magnitude
            elif kind == "level_shift":
                true_w = clean_w * active.magnitude
            elif kind == "schedule_change":
                moved = ts + active.shift_days * DAY + active.magnitude * HOUR
                true_w = profile_w(device, moved) * noise + extra

        stuck = kind == "stuck"
        if previous is not None and not stuck:
            register += previous[2] * (ts - previous[0]) / 3.6e6  # a stuck register stops
        reported_w = round(true_w, 1)
        reported_kwh = round(register, 3)
        if stuck:
            assert active is not None
            if stuck_payload is None:
                flat = previous[3] if previous is not None else reported_w
                stuck_payload = (flat if active.variant == "flat" else 0.0, reported_kwh)
            reported_w, reported_kwh = stuck_payload
        else:
            stuck_payload = None

        if previous is not None:
            prev_ts, prev_clean, _, prev_w, prev_kwh, prev_kind = previous
            dt = ts - prev_ts
            if device.reports_energy:
                energy = max(reported_kwh - prev_kwh, 0.0)
            else:
                energy = prev_w * dt / 3.6e6
            _spread(hours, prev_ts, ts, prev_clean * dt / 3.6e6, energy, prev_kind)
        hour = hours.setdefault(math.floor(ts / HOUR) * HOUR * US, _Hour())
        hour.readings += 1
        hour.stuck += stuck
        previous = (ts, clean_w, true_w, reported_w, reported_kwh, kind)

        payload: dict[str, object] = {
            "device_id": device.device_id,
            "timestamp": ts if device.epoch_timestamps else rfc3339(ts),
        }
        if device.reports_power:
            payload["power_w"] = reported_w
        if device.reports_energy:
            payload["energy_kwh"] = reported_kwh
        yield ts, orjson.dumps(payload)


def _label_device(
    device: Device,
    anomalies: list[Anomaly],
    hours: dict[int, _Hour],
    labels: dict[LabelKey, str],
) -> None:
    if not hours:
        return
    mean_kwh = sum(h.clean_kwh for h in hours.values()) / len(hours)
    hour_labels: dict[int, str] = {}
    for start, hour in hours.items():
        if hour.readings and hour.stuck * 2 >= hour.readings:
            hour_labels[start] = "stuck"
            continue
        for kind, delta in hour.changed.items():
            if kind != "level_shift" and abs(delta) >= 0.25 * hour.clean_kwh + 0.05 * mean_kwh:
                hour_labels[start] = kind
    for anomaly in anomalies:
        if anomaly.kind != "level_shift":
            continue
        first = math.floor(anomaly.start / HOUR) * HOUR
        for hour_start in range(first, math.ceil(anomaly.end / HOUR) * HOUR, HOUR):
            overlap = min(anomaly.end, hour_start + HOUR) - max(anomaly.start, hour_start)
            if overlap >= HOUR / 2 and hour_start * US in hours:
                hour_labels.setdefault(hour_start * US, "level_shift")
    days: dict[int, Counter[str]] = {}
    for start, kind in hour_labels.items():
        labels[(device.device_id, "hour", start)] = kind
        day_start = start // (DAY * US) * DAY * US
        days.setdefault(day_start, Counter())[kind] += 1
    for day_start, kinds in days.items():
        labels[(device.device_id, "day", day_start)] = kinds.most_common(1)[0][0]


def generate(
    seed: int = 2,
    devices: int = 64,
    weeks: int = 8,
    start: float = DEFAULT_START,
    anomalies_from_day: float = 2.0,
    duplicates: float = 0.002,
    steps: tuple[int, ...] = (300, 600, 600, 900),
) -> Dataset:
    """Readings (arrival order), labels and the injected anomalies of a simulated fleet;
    each device reports every ``steps[i]`` seconds for a random ``i``."""
    fleet = make_devices(devices, seed, steps)
    days = 7 * weeks
    end = start + days * DAY
    injected = make_anomalies(fleet, start, days, seed, anomalies_from_day)
    by_device: dict[str, list[Anomaly]] = {}
    for anomaly in injected:
        by_device.setdefault(anomaly.device_id, []).append(anomaly)
    swing_phase = random.Random(f"eval-swing/{seed}").uniform(0, 2 * math.pi)
    dataset = Dataset(start, end, fleet, injected, [])
    streams = []
    hour_tables: dict[str, dict[int, _Hour]] = {}
    for device in fleet:
        table = hour_tables[device.device_id] = {}
        streams.append(
            _device_readings(
                device, by_device.get(device.device_id, []), start, end, seed, swing_phase, table
            )
        )
    # Arrival order: by timestamp plus a small transport delay (devices interleave, each
    # device stays in order); a few readings are sent twice.
    rng = random.Random(f"eval-arrival/{seed}")
    merged = heapq.merge(*streams, key=lambda item: item[0])
    lines = dataset.lines
    pending: list[tuple[float, int, bytes]] = []
    counter = 0
    for ts, line in merged:
        heapq.heappush(pending, (ts + rng.uniform(0.0, 20.0), counter, line))
        counter += 1
        if rng.random() < duplicates:
            heapq.heappush(pending, (ts + rng.uniform(20.0, 60.0), counter, line))
            counter += 1
        while pending and pending[0][0] <= ts:
            lines.append(heapq.heappop(pending)[2])
    while pending:
        lines.append(heapq.heappop(pending)[2])
    for device in fleet:
        table = hour_tables[device.device_id]
        _label_device(device, by_device.get(device.device_id, []), table, dataset.labels)
        dataset.hours[device.device_id] = {s: (h.clean_kwh, h.kwh) for s, h in table.items()}
    return dataset
