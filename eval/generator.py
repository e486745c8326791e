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
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import orjson

KINDS: Final = ("spike", "stuck", "night_load", "level_shift", "schedule_change")
Profile = Literal["household", "office", "shop", "always_on"]
LabelKey = tuple[str, str, int]  # device_id, period, window_start (us)

HOUR: Final = 3600
DAY: Final = 86400
US: Final = 1_000_000
# 2026-01-05 00:00 UTC, a Monday
DEFAULT_START: Final = 1_767_571_200

_KIND_WEIGHTS: Final = {
    "spike": 0.3,
    "stuck": 0.2,
    "night_load": 0.2,
    "level_shift": 0.15,
    "schedule_change": 0.15,
}


@dataclass(frozen=True)
class Device:
    device_id: str
    profile: Profile
    step_s: int
    reports_power: bool
    reports_energy: bool
    base_w: float
    peak_w: float
    open_h: float  # offices, shops: opening hour; households: weekday morning peak
    close_h: float  # offices, shops: closing hour; households: evening peak
    workdays: tuple[int, ...]  # 0 = Monday
    ev_days: tuple[int, ...]  # households: car charging from 22:00 on these weekdays
    cycle_s: float  # always-on: compressor cycle length
    phase: float  # where in each step the device reports, as a fraction of it
    initial_kwh: float
    epoch_timestamps: bool


@dataclass(frozen=True)
class Anomaly:
    device_id: str
    kind: str
    start: float  # epoch seconds
    end: float
    variant: str = ""  # stuck: flat|zero; level_shift: up|down; schedule_change: hours|days
    magnitude: float = 0.0  # spike and night load: W; level shift: factor; schedule: hours
    shift_days: int = 0  # schedule change: the profile of this many days later is used

    def as_dict(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "kind": self.kind,
            "start": _rfc3339(self.start),
            "end": _rfc3339(self.end),
            "variant": self.variant,
            "magnitude": round(self.magnitude, 3),
            "shift_days": self.shift_days,
        }


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
                    "window_start": _rfc3339(start / US),
                    "kind": kind,
                }
                out.write(orjson.dumps(row) + b"\n")
        with (folder / "anomalies.jsonl").open("wb") as out:
            for anomaly in self.anomalies:
                out.write(orjson.dumps(anomaly.as_dict()) + b"\n")
        return readings, labels


def _rfc3339(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


# -- devices -------------------------------------------------------------------------------
def make_devices(
    count: int, seed: int, steps: tuple[int, ...] = (300, 600, 600, 900)
) -> list[Device]:
    rng = random.Random(f"eval-devices/{seed}")
    profiles: tuple[Profile, ...] = (
        "household",
        "office",
        "household",
        "always_on",
        "shop",
        "household",
        "always_on",
        "office",
    )
    devices = []
    for index in range(count):
        profile = profiles[index % len(profiles)]
        mode = rng.random()
        reports_energy = mode < 0.4
        reports_power = mode >= 0.25  # 25 % counter only, 15 % both, 60 % power only
        ev_days: tuple[int, ...] = ()
        workdays: tuple[int, ...] = (0, 1, 2, 3, 4)
        if profile == "household":
            base_w, peak_w = rng.uniform(100, 300), rng.uniform(1200, 3000)
            open_h, close_h = rng.uniform(6.0, 8.0), rng.uniform(18.0, 20.5)
            if rng.random() < 0.25:
                ev_days = tuple(sorted(rng.sample(range(7), rng.randint(2, 3))))
        elif profile == "office":
            base_w, peak_w = rng.uniform(300, 900), rng.uniform(2000, 8000)
            open_h, close_h = rng.uniform(7.0, 9.5), rng.uniform(16.5, 19.0)
            if rng.random() < 0.3:
                workdays = (0, 1, 2, 3, 4, 5)
        elif profile == "shop":
            base_w, peak_w = rng.uniform(800, 2000), rng.uniform(1500, 5000)
            open_h, close_h = rng.uniform(8.0, 10.0), rng.uniform(18.0, 21.0)
            workdays = (0, 1, 2, 3, 4, 5) if rng.random() < 0.7 else (1, 2, 3, 4, 5, 6)
        else:
            base_w, peak_w = rng.uniform(40, 500), rng.uniform(60, 250)
            open_h, close_h = 0.0, 24.0
        prefix = {"household": "home", "office": "office", "shop": "shop", "always_on": "plug"}
        devices.append(
            Device(
                device_id=f"{prefix[profile]}-{index:03d}",
                profile=profile,
                step_s=rng.choice(steps),
                reports_power=reports_power,
                reports_energy=reports_energy,
                base_w=base_w,
                peak_w=peak_w,
                open_h=open_h,
                close_h=close_h,
                workdays=workdays,
                ev_days=ev_days,
                cycle_s=rng.uniform(1200, 3600),
                phase=rng.random(),
                initial_kwh=round(rng.uniform(0, 30_000), 3),
                epoch_timestamps=rng.random() < 0.2,
            )
        )
    return devices


def _bump(hour: float, centre: float, width: float) -> float:
    distance = min(abs(hour - centre), 24.0 - abs(hour - centre))
    return math.exp(-0.5 * (distance / width) ** 2)


def _ramp(hours: float) -> float:
    return 1.0 / (1.0 + math.exp(-4.0 * hours))


def profile_w(device: Device, ts: float) -> float:
    """The device's typical power at ``ts`` (UTC = local time here), before noise."""
    hour = (ts % DAY) / HOUR
    weekday = int((ts // DAY + 3) % 7)  # 1970-01-01 was a Thursday; 0 = Monday
    if device.profile == "household":
        weekend = weekday >= 5
        morning_at = device.open_h + (1.8 if weekend else 0.0)
        power = device.base_w
        power += 0.45 * device.peak_w * _bump(hour, morning_at, 0.8)
        power += 0.8 * device.peak_w * _bump(hour, device.close_h, 1.4)
        if weekend:
            power += 0.25 * device.peak_w * _bump(hour, 13.0, 2.5)
        charge_day = weekday if hour >= 22.0 else (weekday - 1) % 7
        if charge_day in device.ev_days and (hour >= 22.0 or hour < 1.5):
            power += 3700.0
        return power
    if device.profile in ("office", "shop"):
        if weekday not in device.workdays:
            return device.base_w
        opened = _ramp(hour - device.open_h) * _ramp(device.close_h - hour)
        lunch = 1.0 - 0.15 * _bump(hour, 12.5, 0.6) if device.profile == "office" else 1.0
        return device.base_w + device.peak_w * opened * lunch
    daily = 1.0 + 0.08 * math.sin(2 * math.pi * (hour - 15.0) / 24.0)
    cycling = device.peak_w if (ts % device.cycle_s) < 0.4 * device.cycle_s else 0.0
    return device.base_w * daily + cycling


# -- anomalies -----------------------------------------------------------------------------
def make_anomalies(
    devices: list[Device], start: float, days: int, seed: int, from_day: float
) -> list[Anomaly]:
    rng = random.Random(f"eval-anomalies/{seed}")
    kinds = list(_KIND_WEIGHTS)
    weights = list(_KIND_WEIGHTS.values())
    anomalies: list[Anomaly] = []
    for device in devices:
        busy: list[tuple[float, float]] = []
        for _ in range(rng.choice((1, 2, 3, 3, 4))):
            kind = rng.choices(kinds, weights)[0]
            if kind == "schedule_change" and device.profile == "always_on":
                kind = "level_shift"
            for _attempt in range(20):
                made = _one_anomaly(rng, device, kind, start, days, from_day)
                lo = made[0].start - DAY
                hi = made[-1].end + DAY
                if all(hi <= b_lo or lo >= b_hi for b_lo, b_hi in busy):
                    busy.append((lo, hi))
                    anomalies.extend(made)
                    break
    anomalies.sort(key=lambda a: (a.device_id, a.start))
    return anomalies


def _one_anomaly(
    rng: random.Random, device: Device, kind: str, start: float, days: int, from_day: float
) -> list[Anomaly]:
    day0 = start + from_day * DAY
    last = start + (days - 1) * DAY
    at = rng.uniform(day0, last - 3 * DAY)
    typical_peak = device.base_w + device.peak_w
    if kind == "spike":
        # a faulty sensor or a short: a few spikes within three days
        made = []
        for _ in range(rng.randint(2, 5)):
            when = at + rng.uniform(0.0, 3.0) * DAY
            steps = rng.choice((1, 1, 2))
            watts = max(typical_peak * rng.uniform(4.0, 10.0), 3000.0)
            made.append(
                Anomaly(device.device_id, kind, when, when + steps * device.step_s, "", watts)
            )
        made.sort(key=lambda a: a.start)
        return made
    if kind == "stuck":
        hours = rng.uniform(3.0, 30.0)
        variant = rng.choice(("flat", "zero"))
        return [Anomaly(device.device_id, kind, at, at + hours * HOUR, variant)]
    if kind == "night_load":
        nights = rng.randint(1, 4)
        first = math.floor(at / DAY) * DAY
        extra = max(device.peak_w * rng.uniform(0.3, 1.0), 0.5 * device.base_w)
        made = []
        for night in range(nights):
            begin = first + night * DAY + rng.uniform(0.0, 2.5) * HOUR
            made.append(
                Anomaly(
                    device.device_id, kind, begin, begin + rng.uniform(2.0, 4.0) * HOUR, "", extra
                )
            )
        return made
    if kind == "level_shift":
        up = rng.random() < 0.6
        factor = rng.uniform(1.4, 2.0) if up else rng.uniform(0.35, 0.65)
        length = rng.uniform(2.0, 6.0) * DAY
        return [Anomaly(device.device_id, kind, at, at + length, "up" if up else "down", factor)]
    length = rng.uniform(3.0, 7.0) * DAY
    if device.profile == "household":
        shift = rng.choice((-1, 1)) * rng.uniform(6.0, 11.0)
        return [Anomaly(device.device_id, kind, at, at + length, "hours", shift)]
    shift_days = rng.choice((-1, 1, 2))
    shift_hours = rng.choice((0.0, 0.0, rng.uniform(2.0, 4.0), -rng.uniform(2.0, 4.0)))
    return [Anomaly(device.device_id, kind, at, at + length, "days", shift_hours, shift_days)]


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
            "timestamp": ts if device.epoch_timestamps else _rfc3339(ts),
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
