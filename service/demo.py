"""The demo feed of ``energy-processing run``: simulated meters replayed fast, then live.

Simulated time starts ``DEMO_HISTORY`` (6 h) in the past, on an hour boundary, and runs
``DEMO_SPEED`` times faster than the wall clock until it catches up with the present; from
then on it follows the wall clock. A reading is sent only once simulated time has reached
its timestamp, so no reading is ever in the future (the service rejects those beyond
``FUTURE_TOLERANCE``) and each device's readings arrive in time order (never ``late``).
At 240x the first hourly window is final (watermark = max_ts - GRACE past its end) after
about 16 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from service.produce import new_producer
from service.settings import Settings
from streams.simulate import Simulation, rfc3339

log = logging.getLogger(__name__)

DEMO_HISTORY = 6 * 3600.0
DEMO_STEP = 60.0
DEMO_SEED = 2024
_TICK = 0.1  # wall seconds between sends while catching up


@dataclass(frozen=True)
class DemoClock:
    """Simulated time for a wall clock reading: fast from ``history`` ago, then real time.

    ``sim(wall) = min(sim_start + (wall - wall_start) * speed, wall)``, so it never passes
    the wall clock.
    """

    wall_start: float
    sim_start: float
    speed: float

    @classmethod
    def starting(cls, wall_start: float, history: float, speed: float) -> DemoClock:
        sim_start = math.floor((wall_start - history) / 3600.0) * 3600.0
        return cls(wall_start=wall_start, sim_start=sim_start, speed=speed)

    def sim(self, wall: float) -> float:
        return min(self.sim_start + (wall - self.wall_start) * self.speed, wall)

    def wall_for(self, sim: float) -> float:
        """The wall time at which simulated time reaches ``sim``."""
        fast = self.wall_start + (sim - self.sim_start) / self.speed
        return max(min(fast, sim), self.wall_start)

    @property
    def caught_up_at(self) -> float:
        """Wall time from which simulated time equals the wall clock."""
        if self.speed <= 1:
            return math.inf
        return self.wall_start + (self.wall_start - self.sim_start) / (self.speed - 1)


async def run_demo(
    settings: Settings,
    bootstrap: str,
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> int:
    """Produce simulated readings to the readings topic until ``stop`` is set."""
    demo_clock = DemoClock.starting(clock(), DEMO_HISTORY, settings.demo_speed)
    simulation = Simulation(
        start=demo_clock.sim_start,
        step_s=DEMO_STEP,
        devices=settings.demo_devices,
        seed=DEMO_SEED,
    )
    log.info(
        "demo: simulated meters are replayed fast from a few hours ago, then live",
        extra={
            "devices": settings.demo_devices,
            "speed": settings.demo_speed,
            "from": rfc3339(demo_clock.sim_start),
            "topic": settings.readings_topic,
            "anomalies": ",".join(f"{k}:{v}" for k, v in simulation.anomaly_devices.items()),
        },
    )
    producer = new_producer(bootstrap, client_id=f"{settings.app_id}-demo")
    await producer.start()
    failures = _FailureLog()
    sent = 0
    live = False
    next_hour = demo_clock.sim_start + 3600.0
    readings = simulation.readings()
    upcoming = next(readings)
    try:
        while not stop.is_set():
            now_sim = demo_clock.sim(clock())
            while upcoming.ts <= now_sim:
                value = orjson.dumps(upcoming.payload)
                key = upcoming.device_id.encode()
                delivery = await producer.send(settings.readings_topic, value, key=key)
                delivery.add_done_callback(failures.check)
                sent += 1
                upcoming = next(readings)
            if now_sim >= next_hour:
                log.debug("demo progress", extra={"simulated": rfc3339(now_sim), "sent": sent})
                next_hour += 3600.0
            if not live and clock() >= demo_clock.caught_up_at:
                live = True
                log.info("demo: caught up with the wall clock; continuing in real time")
            wake = min(1.0, upcoming.ts - now_sim) if live else _TICK
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wake, 0.01))
    finally:
        await producer.stop()
    log.info("demo stopped", extra={"sent": sent, "failed": failures.count})
    return sent


class _FailureLog:
    """Counts failed deliveries and logs the first one of each kind (the demo is best effort)."""

    def __init__(self) -> None:
        self.count = 0
        self._seen: set[str] = set()

    def check(self, delivery: asyncio.Future[object]) -> None:
        if delivery.cancelled():
            return
        error = delivery.exception()
        if error is None:
            return
        self.count += 1
        kind = type(error).__name__
        if kind not in self._seen:
            self._seen.add(kind)
            log.warning("demo: a reading could not be sent", extra={"error": f"{kind}: {error}"})
