"""``make soak``: a sustained stream through the real worker with embedded servers.

Starts the embedded broker, PostgreSQL and (when installed) VictoriaMetrics, runs the worker
(``python -m agents.app worker``) and feeds it gateway arrays at ``SOAK_RATE`` readings/s for
``SOAK_MINUTES``, sampling the worker's RSS, the consumer lag of the readings topic (group
offsets on the broker, as ``/api/v1/stats`` reads them) and error lines in its log every
``SOAK_SAMPLE_S`` seconds. Prints a summary and exits 1 when memory grew beyond
``SOAK_MAX_GROWTH_MB`` after warm-up, the lag kept growing, or the worker logged errors or
died. ``python -m tests.load.soak --measure`` measures the worker's throughput instead (a
backlog of readings, timed until consumed).

Settings (environment): SOAK_MINUTES (10), SOAK_RATE (readings/s; default RATE below),
SOAK_FORM (``bench``: the benchmark's batched form, device arrays with a window per reading;
``gateway``: arrays of 100 devices' readings a minute apart, re-keyed by the worker),
SOAK_INFLUX (``0``: no InfluxDB sink, as in the benchmark; ``1``: VictoriaMetrics as
InfluxDB, when installed), SOAK_DEVICES (2000), SOAK_BATCH (readings per message, 100),
SOAK_SAMPLE_S (5),
SOAK_MAX_GROWTH_MB (100), SOAK_WARMUP_FRACTION (0.2).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from api.kafka import AiokafkaInspector
from api.stats import partition_lag
from bench.workload import STEP_S
from service.embedded.kafka import EmbeddedKafka
from service.embedded.postgres import EmbeddedPostgres
from service.embedded.victoria import EmbeddedVictoriaMetrics
from service.ports import free_port
from storage.migrations import migrate
from streams.timeparse import US_PER_S, format_us
from tests.integration.worker import WorkerProcess

# The benchmark's figure for our worker, batched form, at its default size (1,000,000
# readings, `python -m bench --only ours --runs 1`, 2 shared cores, 2026-11-27): the soak
# feeds the same shape at that rate. See docs/reliability.md.
RATE = 6_700
ERROR_LINE = re.compile(rb"\b(ERROR|CRITICAL)\b|Traceback")
APP_ID = "soak"
TOPIC = "energy.readings"


@dataclass
class Sample:
    elapsed_s: float
    rss_mb: float
    lag: int | None
    produced: int
    errors: int


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    if len(points) < 3:
        return 0.0
    slope, _ = statistics.linear_regression([p[0] for p in points], [p[1] for p in points])
    return slope * 60


class Feed:
    """Gateway arrays (``SOAK_FORM=gateway``): ``devices`` devices, one reading each per
    60 s of event time, 100 different devices per array keyed by gateway (so most readings
    are re-keyed through the repartition topic); event time starts far enough in the past
    that it never passes the wall clock."""

    def __init__(self, devices: int, batch: int, rate: float, seconds: float) -> None:
        self.devices = devices
        self.batch = batch
        event_span = seconds * rate / devices * 60 + 86400
        self.start_s = int(time.time() - event_span - 86400) // 3600 * 3600
        self.sent = 0

    def next_message(self) -> tuple[bytes, bytes]:
        items = []
        for _ in range(self.batch):
            tick, device = divmod(self.sent, self.devices)
            ts = self.start_s + tick * 60 + device % 60 * 0.25
            power = 200 + (device * 37 + tick * 11) % 1800
            items.append(
                {"device_id": f"soak-{device:05d}", "timestamp": ts, "power_w": float(power)}
            )
            self.sent += 1
        gateway = f"gw-{self.sent // self.batch % 64}".encode()
        return gateway, orjson.dumps(items)


class BenchFeed(Feed):
    """The benchmark's batched form (``SOAK_FORM=bench``, the default; bench/workload.py):
    arrays of ``batch`` consecutive readings of one device keyed by its id, a reading every
    50 minutes of event time with power and a cumulative register, so nearly every reading
    closes an hour window (scored, published and stored). Devices take turns, one array
    each."""

    def __init__(self, devices: int, batch: int, rate: float, seconds: float) -> None:
        super().__init__(devices, batch, rate, seconds)
        event_span = (seconds * rate / devices + batch) * STEP_S + 86400
        self.start_s = int(time.time() - event_span - 86400) // 3600 * 3600
        self.registers = [0.0] * devices

    def next_message(self) -> tuple[bytes, bytes]:
        round_, device = divmod(self.sent // self.batch, self.devices)
        device_id = f"soak-{device:05d}"
        items = []
        register = self.registers[device]
        for k in range(round_ * self.batch, (round_ + 1) * self.batch):
            # RFC 3339 text with milliseconds, as the benchmark's readings
            ts = (self.start_s + k * STEP_S) * US_PER_S + device % 60 * 250_000 + device
            power = float(60 + (device * 37 + k * 11) % 900) + 0.5
            items.append(
                {
                    "device_id": device_id,
                    "timestamp": format_us(ts - ts % 1000),
                    "power_w": power,
                    "energy_kwh": round(register, 3),
                }
            )
            register += power * STEP_S / 3.6e6
        self.registers[device] = register
        self.sent += self.batch
        return device_id.encode(), orjson.dumps(items)


def make_feed(devices: int, batch: int, rate: float, seconds: float) -> Feed:
    form = os.environ.get("SOAK_FORM", "bench")
    if form == "bench":
        return BenchFeed(devices, batch, rate, seconds)
    if form == "gateway":
        return Feed(devices, batch, rate, seconds)
    raise SystemExit(f"SOAK_FORM must be bench or gateway, not {form!r}")


async def produce(
    bootstrap: str, feed: Feed, rate: float, seconds: float, stop: asyncio.Event
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        started = time.monotonic()
        while not stop.is_set() and time.monotonic() - started < seconds:
            due = started + feed.sent / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            key, value = feed.next_message()
            await producer.send(TOPIC, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def lag_of(inspector: AiokafkaInspector) -> int | None:
    try:
        offsets = await inspector.group_offsets(APP_ID, TOPIC)
    except Exception:  # not yet committed, or the broker is slow to answer
        return None
    return sum(partition_lag(p).lag for p in offsets)  # as /api/v1/stats computes it


class Servers:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.kafka = EmbeddedKafka(free_port(), log_file=folder / "tansu.log")
        self.postgres = EmbeddedPostgres(folder / "pg", port=free_port())
        self.victoria: EmbeddedVictoriaMetrics | None = None
        if os.environ.get("SOAK_INFLUX", "0") == "1" and EmbeddedVictoriaMetrics.available():
            self.victoria = EmbeddedVictoriaMetrics(folder / "victoria", free_port())

    async def start(self) -> dict[str, str]:
        bootstrap = self.kafka.start()
        dsn = await asyncio.to_thread(self.postgres.start)
        await migrate(dsn)
        influx = await asyncio.to_thread(self.victoria.start) if self.victoria else ""
        return {
            "KAFKA_BROKER_URL": bootstrap,
            "DATABASE_URL": dsn,
            "INFLUXDB_URL": influx,
            "INFLUXDB_TOKEN": "soak",
            "APP_ID": APP_ID,
            "READINGS_TOPIC": TOPIC,
            "DATA_DIR": str(self.folder / "worker"),
            "LOG_LEVEL": "INFO",
        }

    def stop(self) -> None:
        if self.victoria:
            self.victoria.stop()
        self.postgres.stop()
        self.kafka.stop()


def error_count(log: Path) -> int:
    return sum(1 for line in log.read_bytes().splitlines() if ERROR_LINE.search(line))


async def soak(folder: Path) -> int:
    minutes = env_float("SOAK_MINUTES", 10)
    rate = env_float("SOAK_RATE", RATE)
    devices = int(env_float("SOAK_DEVICES", 2000))
    batch = int(env_float("SOAK_BATCH", 100))
    every = env_float("SOAK_SAMPLE_S", 5)
    max_growth = env_float("SOAK_MAX_GROWTH_MB", 100)
    warmup = env_float("SOAK_WARMUP_FRACTION", 0.2)
    seconds = minutes * 60
    servers = Servers(folder)
    env = await servers.start()
    log = folder / "worker.log"
    worker = WorkerProcess(env, log)
    inspector = AiokafkaInspector(env["KAFKA_BROKER_URL"], timeout=5.0)
    samples: list[Sample] = []
    stop = asyncio.Event()
    feed = make_feed(devices, batch, rate, seconds)
    print(
        f"soak: {rate:.0f} readings/s in arrays of {batch} ({type(feed).__name__}),"
        f" {devices} devices, {minutes:g} min;"
        f" InfluxDB sink {'on' if env['INFLUXDB_URL'] else 'off'}; data in {folder}",
        flush=True,
    )
    try:
        worker.start()
        await asyncio.to_thread(worker.wait_ready, 120.0)
        assert worker.process is not None
        pid = worker.process.pid
        began = time.monotonic()
        producing = asyncio.create_task(produce(env["KAFKA_BROKER_URL"], feed, rate, seconds, stop))
        while not producing.done():
            await asyncio.sleep(every)
            if worker.process.poll() is not None:
                stop.set()
                break
            sample = Sample(
                time.monotonic() - began,
                rss_mb(pid),
                await lag_of(inspector),
                feed.sent,
                error_count(log),
            )
            samples.append(sample)
            print(
                f"{sample.elapsed_s:7.0f} s  rss {sample.rss_mb:7.1f} MB  lag {sample.lag}"
                f" messages  produced {sample.produced}  errors {sample.errors}",
                flush=True,
            )
        await producing
        fed_s = time.monotonic() - began
        drained_s: float | None = None
        while worker.process.poll() is None and time.monotonic() - began < fed_s + 120:
            if (await lag_of(inspector)) == 0:
                drained_s = time.monotonic() - began - fed_s
                break
            await asyncio.sleep(1.0)
        alive = worker.process.poll() is None
        final_rss = rss_mb(pid) if alive else 0.0
    finally:
        await inspector.close()
        worker.stop()
        servers.stop()
    return report(
        samples, feed.sent, fed_s, drained_s, alive, final_rss, max_growth, warmup, error_count(log)
    )


def report(
    samples: list[Sample],
    produced: int,
    fed_s: float,
    drained_s: float | None,
    alive: bool,
    final_rss: float,
    max_growth: float,
    warmup: float,
    errors: int,
) -> int:
    if not samples:
        print("soak: FAILED, no samples (the worker died at once?)")
        return 1
    after = [s for s in samples if s.elapsed_s >= warmup * fed_s] or samples
    half = [s for s in samples if s.elapsed_s >= fed_s / 2] or samples
    memory_slope = slope_per_minute([(s.elapsed_s, s.rss_mb) for s in after])
    lags = [s.lag for s in samples if s.lag is not None]
    lag_slope = slope_per_minute([(s.elapsed_s, float(s.lag)) for s in half if s.lag is not None])
    growth = max(s.rss_mb for s in after) - after[0].rss_mb
    # Lag bound: what is produced in 30 s (in messages); a lag beyond it that still rises
    # over the second half means the worker cannot keep up.
    rate = produced / fed_s
    lag_bound = 30 * rate / int(env_float("SOAK_BATCH", 100))
    growing = bool(lags) and lags[-1] > lag_bound and lag_slope > 0
    failures = []
    if growth > max_growth:
        failures.append(f"memory grew {growth:.0f} MB after warm-up (bound {max_growth:.0f} MB)")
    if growing:
        failures.append(f"lag keeps growing ({lags[-1]} messages, {lag_slope:+.0f}/min)")
    if errors:
        failures.append(f"{errors} error lines in the worker log")
    if not alive:
        failures.append("the worker died")
    if drained_s is None:
        failures.append("the backlog did not drain within 120 s of the end of the feed")
    drained = f"in {drained_s:.1f} s after the feed stopped" if drained_s is not None else "NO"
    print(
        "\nsoak summary\n"
        f"  readings produced     {produced} in {fed_s:.0f} s ({rate:.0f}/s)\n"
        f"  worker RSS            start {samples[0].rss_mb:.1f} MB, after warm-up"
        f" {after[0].rss_mb:.1f} MB, end {final_rss:.1f} MB, max"
        f" {max(s.rss_mb for s in samples):.1f} MB\n"
        f"  RSS slope after warm-up {memory_slope:+.2f} MB/min; growth {growth:.1f} MB"
        f" (bound {max_growth:.0f} MB)\n"
        f"  consumer lag          max {max(lags) if lags else 'n/a'}, final"
        f" {lags[-1] if lags else 'n/a'} messages (bound {lag_bound:.0f}); slope over the"
        f" second half {lag_slope:+.1f}/min\n"
        f"  backlog drained       {drained}\n"
        f"  errors                {errors}\n"
        f"  result                {'FAILED: ' + '; '.join(failures) if failures else 'OK'}",
        flush=True,
    )
    return 1 if failures else 0


async def measure(folder: Path) -> int:
    """Throughput: a backlog of ``SOAK_MEASURE_READINGS`` readings consumed from a standing
    start (the worker is ready before the backlog is written)."""
    readings = int(env_float("SOAK_MEASURE_READINGS", 600_000))
    devices = int(env_float("SOAK_DEVICES", 2000))
    batch = int(env_float("SOAK_BATCH", 100))
    servers = Servers(folder)
    env = await servers.start()
    worker = WorkerProcess(env, folder / "worker.log")
    inspector = AiokafkaInspector(env["KAFKA_BROKER_URL"], timeout=5.0)
    try:
        worker.start()
        await asyncio.to_thread(worker.wait_ready, 120.0)
        feed = make_feed(devices, batch, readings, 1)
        producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BROKER_URL"], linger_ms=20)
        await producer.start()
        began = time.monotonic()
        try:
            for _ in range(readings // batch):
                key, value = feed.next_message()
                await producer.send(TOPIC, value, key=key)
            await producer.flush()
        finally:
            await producer.stop()
        written = time.monotonic() - began
        while True:
            if (await lag_of(inspector)) == 0:
                break
            await asyncio.sleep(0.5)
        took = time.monotonic() - began
    finally:
        await inspector.close()
        worker.stop()
        servers.stop()
    print(
        f"measure: {feed.sent} readings in {feed.sent // batch} messages written in"
        f" {written:.1f} s, consumed and committed after {took:.1f} s:"
        f" {feed.sent / took:.0f} readings/s",
        flush=True,
    )
    return 0


def main() -> int:
    # SIGTERM and SIGHUP unwind like Ctrl-C, so the servers and the worker are stopped.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda received, frame: sys.exit(128 + received))
    folder = Path(tempfile.mkdtemp(prefix="energy-soak-"))
    try:
        run = measure if "--measure" in sys.argv[1:] else soak
        return asyncio.run(run(folder))
    finally:
        if os.environ.get("SOAK_KEEP") != "1":
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
