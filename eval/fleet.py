"""The simulated fleet of the anomaly evaluation: devices, their typical load, and the
anomalies injected into them (``eval.generator`` turns both into readings and labels).

Devices: households (morning and evening peaks; some charge an electric car on fixed
weekday nights), offices and shops (opening hours on working days), always-on loads (a
compressor's duty cycle). Anomalies (``KINDS``): a few power spikes within three days, a
stuck meter (it repeats its last values, or reports zero, and the register stops), an
abnormal night load on 1-4 nights, a sustained level shift, a changed weekly schedule
(working days or hours moved, a household on night shifts).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

KINDS: Final = ("spike", "stuck", "night_load", "level_shift", "schedule_change")
Profile = Literal["household", "office", "shop", "always_on"]

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
            "start": rfc3339(self.start),
            "end": rfc3339(self.end),
            "variant": self.variant,
            "magnitude": round(self.magnitude, 3),
            "shift_days": self.shift_days,
        }


def rfc3339(ts: float) -> str:
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
