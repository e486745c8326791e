"""Simulated meters for the demo and ``produce --simulate``: deterministic given a seed.

Households peak in the morning and evening, offices draw on weekday working hours,
always-on loads hum with a fridge-like duty cycle. Some devices report ``power_w``, some a
cumulative ``energy_kwh`` register, some both. A few anomalies are injected on purpose:
a power spike, a stuck meter, a night-time load burst and a register reset.

The register integrates the true power with the left rectangle rule of SEMANTICS.md
section 3, so power and counter readings of one device describe the same energy.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

Profile = Literal["household", "office", "always_on"]
AnomalyKind = Literal["spike", "stuck", "night_burst", "reset"]
ReadingPayload = dict[str, str | float]

HOUR = 3600.0
DAY = 86400.0

# Anomalies repeat with this period, measured from the simulation start (night bursts: see
# ``NIGHT_BURST_EVERY_DAYS``), so a long demo keeps showing them.
ANOMALY_PERIOD = DAY
SPIKE_AT = 2 * HOUR + 10 * 60
SPIKE_POWER_W = 25_000.0
STUCK_FROM, STUCK_UNTIL = 3 * HOUR, 5 * HOUR
RESET_AT = 4 * HOUR
NIGHT_BURST_FROM, NIGHT_BURST_UNTIL = 2 * HOUR, 3.5 * HOUR  # UTC time of day
NIGHT_BURST_EVERY_DAYS = 7
NIGHT_BURST_W = 6_000.0


@dataclass(frozen=True)
class SimDevice:
    """One simulated meter and how it reports."""

    device_id: str
    profile: Profile
    reports_power: bool
    reports_energy: bool
    reports_voltage: bool
    epoch_timestamps: bool
    base_w: float
    peak_w: float
    phase_s: float
    report_phase: float  # where in each step the device reports, as a fraction of it
    initial_kwh: float


class SimulatedReading(NamedTuple):
    ts: float
    device_id: str
    payload: ReadingPayload


def make_devices(count: int, seed: int) -> list[SimDevice]:
    """``count`` devices: about half households, a quarter offices, a quarter always-on."""
    rng = random.Random(f"devices/{seed}")
    devices = []
    for index in range(count):
        profile: Profile = ("household", "office", "household", "always_on")[index % 4]
        reports_energy = index % 5 == 2 or index % 7 == 3
        reports_power = not reports_energy or index % 7 == 3
        if profile == "household":
            base_w, peak_w = rng.uniform(120, 260), rng.uniform(1500, 2600)
        elif profile == "office":
            base_w, peak_w = rng.uniform(300, 600), rng.uniform(2000, 6000)
        else:
            base_w, peak_w = rng.uniform(50, 400), rng.uniform(80, 150)
        prefix = {"household": "home", "office": "office", "always_on": "plug"}[profile]
        devices.append(
            SimDevice(
                device_id=f"{prefix}-{index:03d}",
                profile=profile,
                reports_power=reports_power,
                reports_energy=reports_energy,
                reports_voltage=index % 3 == 0,
                epoch_timestamps=index % 6 == 5,
                base_w=round(base_w, 1),
                peak_w=round(peak_w, 1),
                phase_s=rng.uniform(-45 * 60, 45 * 60),
                report_phase=rng.uniform(0, 1),
                initial_kwh=round(rng.uniform(0, 20_000), 3),
            )
        )
    return devices


def load_w(device: SimDevice, ts: float) -> float:
    """The device's typical power at ``ts`` (epoch seconds), before noise and anomalies."""
    local = ts + device.phase_s
    hour = (local % DAY) / HOUR
    weekday = int((local // DAY + 3) % 7)  # 1970-01-01 was a Thursday; 0 = Monday
    weekend = weekday >= 5
    if device.profile == "household":
        morning_at = 9.0 if weekend else 7.0
        morning = 0.5 * device.peak_w * _bump(hour, morning_at, 1.0)
        evening = device.peak_w * _bump(hour, 19.5, 1.5)
        return device.base_w + morning + evening
    if device.profile == "office":
        if weekend:
            return device.base_w
        open_hours = _logistic(hour - 8.0) * _logistic(18.0 - hour)
        return device.base_w + device.peak_w * open_hours
    cycling = device.peak_w if (local % 1800.0) < 720.0 else 0.0
    return device.base_w + cycling


def _bump(hour: float, centre: float, width: float) -> float:
    distance = min(abs(hour - centre), 24.0 - abs(hour - centre))
    return math.exp(-0.5 * (distance / width) ** 2)


def _logistic(hours: float) -> float:
    return 1.0 / (1.0 + math.exp(-3.0 * hours))


def rfc3339(ts: float) -> str:
    """``ts`` (epoch seconds, millisecond precision) as RFC 3339 UTC with ``Z``."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Simulation:
    """The readings of ``devices`` meters, each reporting every ``step_s`` seconds from ``start``.

    Examples
    --------
    >>> sim = Simulation(start=1_700_000_000, step_s=60, devices=3, seed=7)
    >>> [r.payload["device_id"] for r in sim.readings(end=1_700_000_060)]
    ['home-000', 'office-001', 'home-002']
    """

    def __init__(
        self, start: float | datetime, step_s: float = 60.0, devices: int = 36, seed: int = 0
    ) -> None:
        if step_s <= 0:
            raise ValueError("step_s must be positive")
        if devices < 1:
            raise ValueError("devices must be at least 1")
        self.start = start.timestamp() if isinstance(start, datetime) else float(start)
        self.step_s = float(step_s)
        self.seed = seed
        self.devices = make_devices(devices, seed)
        self.anomaly_devices = self._pick_anomaly_devices()

    def _pick_anomaly_devices(self) -> dict[AnomalyKind, str]:
        rng = random.Random(f"anomalies/{self.seed}")
        power_only = [d for d in self.devices if d.reports_power and not d.reports_energy]
        chosen: dict[AnomalyKind, str] = {}

        def pick(kind: AnomalyKind, candidates: list[SimDevice]) -> None:
            free = [d for d in candidates if d.device_id not in chosen.values()]
            if free:
                chosen[kind] = rng.choice(free).device_id

        pick("spike", [d for d in power_only if d.profile == "household"] or power_only)
        pick("stuck", power_only)
        pick("night_burst", [d for d in self.devices if d.profile == "office"])
        pick("reset", [d for d in self.devices if d.reports_energy])
        return chosen

    def anomaly_at(self, device_id: str, ts: float) -> AnomalyKind | None:
        """The anomaly injected into ``device_id``'s reading at ``ts``, if any."""
        device = next((d for d in self.devices if d.device_id == device_id), None)
        if device is None:
            return None
        return self._anomaly(device, self._tick_of(device, ts), ts)

    def _nominal_ts(self, device: SimDevice, tick: int) -> float:
        # Devices report at their own offset within the step; the margin keeps the jitter of
        # the first reading from reaching back before ``start``.
        return self.start + (tick + 0.1 + 0.4 * device.report_phase) * self.step_s

    def _tick_of(self, device: SimDevice, ts: float) -> int:
        # Jitter stays within a tenth of a step, so rounding recovers the tick exactly.
        return round((ts - self._nominal_ts(device, 0)) / self.step_s)

    def _anomaly(self, device: SimDevice, tick: int, ts: float) -> AnomalyKind | None:
        ticks_per_period = max(1, round(ANOMALY_PERIOD / self.step_s))
        since = (tick % ticks_per_period) * self.step_s
        for kind, target in self.anomaly_devices.items():
            if target != device.device_id:
                continue
            if kind == "spike" and tick % ticks_per_period == round(SPIKE_AT / self.step_s):
                return kind
            if kind == "reset" and tick % ticks_per_period == round(RESET_AT / self.step_s):
                return kind
            if kind == "stuck" and STUCK_FROM <= since < STUCK_UNTIL:
                return kind
            if kind == "night_burst":
                days_since_start = int(ts // DAY) - int(self.start // DAY)
                in_night = NIGHT_BURST_FROM <= ts % DAY < NIGHT_BURST_UNTIL
                # The first night (the start day or the next) and then once a week.
                if in_night and days_since_start % NIGHT_BURST_EVERY_DAYS in (0, 1):
                    return kind
        return None

    def readings(self, end: float | datetime | None = None) -> Iterator[SimulatedReading]:
        """All readings with timestamp ``< end`` (forever if None), in nondecreasing time."""
        end_ts = end.timestamp() if isinstance(end, datetime) else end
        streams = [self._device_readings(device) for device in self.devices]
        heap: list[tuple[float, int, SimulatedReading]] = []
        for index, stream in enumerate(streams):
            first = next(stream)
            heapq.heappush(heap, (first.ts, index, first))
        while heap:
            ts, index, reading = heapq.heappop(heap)
            if end_ts is not None and ts >= end_ts:
                return
            yield reading
            following = next(streams[index])
            heapq.heappush(heap, (following.ts, index, following))

    def _device_readings(self, device: SimDevice) -> Iterator[SimulatedReading]:
        rng = random.Random(f"readings/{self.seed}/{device.device_id}")
        register_kwh = device.initial_kwh
        previous_ts: float | None = None
        previous_true_w = 0.0
        stuck_w: float | None = None
        tick = 0
        while True:
            jitter = rng.uniform(-0.1, 0.1) * self.step_s
            ts = round(self._nominal_ts(device, tick) + jitter, 3)
            anomaly = self._anomaly(device, tick, ts)
            tick += 1

            true_w = load_w(device, ts) * max(0.0, 1.0 + rng.gauss(0.0, 0.06))
            if device.profile == "household" and rng.random() < 0.02:
                true_w += rng.uniform(1500, 2200)  # a kettle or an oven switching on
            if anomaly == "spike":
                true_w = SPIKE_POWER_W
            elif anomaly == "night_burst":
                true_w += NIGHT_BURST_W

            if previous_ts is not None:
                register_kwh += previous_true_w * (ts - previous_ts) / 3.6e6
            if anomaly == "reset":
                register_kwh = 0.0
            previous_ts, previous_true_w = ts, true_w

            reported_w = round(true_w, 1)
            if anomaly == "stuck":
                stuck_w = reported_w if stuck_w is None else stuck_w
                reported_w = stuck_w
            else:
                stuck_w = None

            payload: ReadingPayload = {
                "device_id": device.device_id,
                "timestamp": ts if device.epoch_timestamps else rfc3339(ts),
            }
            if device.reports_power:
                payload["power_w"] = reported_w
            if device.reports_energy:
                payload["energy_kwh"] = round(register_kwh, 6)
            if device.reports_voltage:
                payload["voltage_v"] = round(230.0 + rng.gauss(0.0, 2.0), 1)
            yield SimulatedReading(ts, device.device_id, payload)


def simulate(
    start: float | datetime,
    step_s: float = 60.0,
    devices: int = 36,
    seed: int = 0,
    end: float | datetime | None = None,
) -> Iterator[ReadingPayload]:
    """Reading objects (SEMANTICS.md section 1) of a ``Simulation``, in nondecreasing time."""
    for reading in Simulation(start, step_s, devices, seed).readings(end):
        yield reading.payload
