"""The benchmark's workload: meters reporting power and a cumulative energy register.

``devices`` meters report every ``step`` seconds (each with its own phase, under a minute),
``readings`` in total, starting at a fixed Monday in the past, so one run's data is the
same as any other's. Two forms of the same readings: one reading per message, interleaved
in time (as most producers send), and arrays of up to ``batch`` consecutive readings of a
device (as gateways send). Every message is keyed by its ``device_id``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import orjson

from streams.timeparse import US_PER_HOUR, US_PER_S, format_us, parse_rfc3339

START = "2026-01-05T00:00:00Z"  # a Monday, well in the past
STEP_S = 3000  # 50 min: with 100 readings a device spans about 3.5 days
GRACE_US = 300 * US_PER_S  # the service's default GRACE
US_PER_DAY = 24 * US_PER_HOUR

Message = tuple[bytes, bytes]  # key, value


@dataclass(frozen=True)
class Workload:
    devices: int
    per_device: int
    single: list[Message]
    batched: list[Message]
    # windows that every device's watermark has passed: what the worker must store
    final_windows: int
    cutoff_us: int  # window_end <= cutoff_us marks them
    payload_bytes: int

    @property
    def readings(self) -> int:
        return self.devices * self.per_device


def generate(readings: int, devices: int, *, batch: int = 100, seed: int = 0) -> Workload:
    devices = max(1, min(devices, readings))
    per_device = max(1, readings // devices)
    rng = random.Random(seed)
    start = parse_rfc3339(START)
    # Ticks fall on whole minutes and each device's phase is under a minute, so a
    # timestamp is its tick's "YYYY-MM-DDTHH:MM:" and the device's "SS.fffZ".
    prefixes = [format_us(start + k * STEP_S * US_PER_S)[:17] for k in range(per_device)]
    rows: list[list[bytes]] = []  # per device, its readings' JSON in time order
    firsts: list[int] = []
    lasts: list[int] = []
    for index in range(devices):
        device_id = f"meter-{index:06d}"
        phase_us = rng.randrange(60 * US_PER_S // 1000) * 1000  # ms precision, < 60 s
        base_w = rng.uniform(60.0, 900.0)
        peak_w = base_w * rng.uniform(1.5, 6.0)
        register = round(rng.uniform(0.0, 20_000.0), 3)
        values = []
        ts = start + phase_us
        suffix = f"{phase_us // US_PER_S:02d}.{phase_us % US_PER_S // 1000:03d}Z"
        for k in range(per_device):
            hour = (ts // US_PER_HOUR) % 24
            daily = 0.5 + 0.5 * math.sin((hour - 6) / 24 * 2 * math.pi)
            power = round(base_w + (peak_w - base_w) * daily * rng.random(), 1)
            values.append(
                orjson.dumps(
                    {
                        "device_id": device_id,
                        "timestamp": prefixes[k] + suffix,
                        "power_w": power,
                        "energy_kwh": register,
                    }
                )
            )
            register = round(register + power * STEP_S / 3.6e6, 3)
            ts += STEP_S * US_PER_S
        rows.append(values)
        firsts.append(start + phase_us)
        lasts.append(ts - STEP_S * US_PER_S)
    keys = [f"meter-{index:06d}".encode() for index in range(devices)]
    single = [(keys[d], rows[d][k]) for k in range(per_device) for d in range(devices)]
    batched = []
    for chunk in range(0, per_device, batch):
        for d in range(devices):
            batched.append((keys[d], b"[" + b",".join(rows[d][chunk : chunk + batch]) + b"]"))
    cutoff = min(lasts) - GRACE_US
    final = sum(_final_windows(first, cutoff) for first in firsts)
    payload = sum(len(value) for _, value in single)
    return Workload(devices, per_device, single, batched, final, cutoff, payload)


def _final_windows(first: int, cutoff: int) -> int:
    """Hour and (UTC) day windows from the one holding ``first`` up to those ending by
    ``cutoff``: the energy register covers every one of them, so each is emitted."""
    count = 0
    for length in (US_PER_HOUR, US_PER_DAY):
        window_start = first - first % length
        if window_start + length <= cutoff:
            count += (cutoff - window_start) // length
    return count
