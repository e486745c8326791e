"""A deterministic messy data set: disorder within grace, duplicates, resets, gaps, spikes,
DST days, arrays, invalid, future and late messages; plus its expected outcome."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import orjson

from tests.oracle import OracleReading

# 2026-10-24 12:00Z .. 2026-10-26 06:00Z: spans Europe/Berlin's 25-hour day (Oct 25).
START_S = 1792843200
SPAN_S = 42 * 3600


@dataclass
class Dataset:
    messages: list[tuple[bytes | None, bytes]]  # (key, value) in production order
    arrivals: list[OracleReading]  # valid readings in arrival order (for the oracle)
    invalid: dict[str, int] = field(default_factory=dict)  # reason -> count (not late)


def build(
    seed: int = 7,
    devices: int = 8,
    now_s: float | None = None,
    *,
    partitions: int = 1,
) -> Dataset:
    """With ``partitions`` > 1 every message is keyed (gateway arrays carry one device), so
    each device's arrival order is its production order; one device ("meter-00") is keyed
    by a gateway id that lands on another partition, so its readings take the repartition
    hop, in order."""
    rng = random.Random(seed)
    messages: list[tuple[bytes | None, bytes]] = []
    arrivals: list[OracleReading] = []
    invalid: dict[str, int] = {}
    series: list[tuple[float, OracleReading, bytes]] = []
    for d in range(devices):
        device = f"meter-{d:02d}"
        kind = ["power", "counter", "both", "power"][d % 4]
        t = START_S + rng.randint(0, 1800)
        counter = rng.uniform(0, 500)
        while t < START_S + SPAN_S:
            step = rng.choice([30, 60, 60, 90, 300])
            if rng.random() < 0.01:
                step = rng.choice([2 * 3600, 5 * 3600])  # gaps longer than MAX_GAP
            t += step + rng.random()
            ts_us = round(t * 1e6)
            power = round(rng.uniform(0, 4000), 3)
            counter += power * step / 3.6e6
            if rng.random() < 0.003:
                counter = rng.uniform(0, 1)  # meter reset
            energy = counter + (5000.0 if rng.random() < 0.002 else 0.0)  # rare spike
            doc: dict[str, object] = {"device_id": device}
            if rng.random() < 0.5:
                doc["timestamp"] = ts_us / 1e6
            else:
                from tests.oracle import to_dt

                doc["timestamp"] = to_dt(ts_us).isoformat().replace("+00:00", "Z")
            if kind in ("power", "both"):
                doc["power_w"] = power
            if kind in ("counter", "both"):
                doc["energy_kwh"] = round(energy, 6)
            reading = OracleReading(
                device,
                ts_us,
                doc.get("power_w"),  # type: ignore[arg-type]
                doc.get("energy_kwh"),  # type: ignore[arg-type]
            )
            raw = orjson.dumps(doc)
            series.append((t + rng.uniform(0, 240), reading, raw))  # disorder < GRACE 300 s
            if rng.random() < 0.02:
                series.append((t + rng.uniform(0, 240), reading, raw))  # duplicate copy
    series.sort(key=lambda item: item[0])

    # Gateways batch some readings into arrays (one message, several readings).
    def key_for(device: str) -> bytes:
        if partitions > 1 and device == "meter-00":
            from agents.pipeline import partition_for

            gateway = next(
                f"gateway-{n}"
                for n in range(100)
                if partition_for(f"gateway-{n}", partitions) != partition_for(device, partitions)
            )
            return gateway.encode()
        return device.encode()

    i = 0
    while i < len(series):
        if rng.random() < 0.05 and i + 3 < len(series):
            chunk = series[i : i + 3]
            key: bytes | None = None
            if partitions > 1:
                chunk = [item for item in chunk if item[1].device_id == chunk[0][1].device_id]
                key = key_for(chunk[0][1].device_id)
            messages.append((key, b"[" + b",".join(raw for _, _, raw in chunk) + b"]"))
            arrivals.extend(r for _, r, _ in chunk)
            i += len(chunk)
            continue
        _, reading, raw = series[i]
        messages.append((key_for(reading.device_id), raw))
        arrivals.append(reading)
        i += 1
        if rng.random() < 0.01:
            messages.append((b"junk", b"{not json"))
            invalid["invalid_json"] = invalid.get("invalid_json", 0) + 1
        if rng.random() < 0.01:
            messages.append(
                (
                    key_for(reading.device_id),
                    orjson.dumps(
                        {
                            "device_id": reading.device_id,
                            "timestamp": "2026-10-25T10:00:00",
                            "power_w": 1,
                        }
                    ),
                )
            )
            invalid["invalid_schema"] = invalid.get("invalid_schema", 0) + 1
        if rng.random() < 0.01:
            messages.append(
                (
                    key_for(reading.device_id),
                    orjson.dumps(
                        {
                            "device_id": reading.device_id,
                            "timestamp": reading.ts / 1e6,
                            "power_w": -5,
                        }
                    ),
                )
            )
            invalid["out_of_range"] = invalid.get("out_of_range", 0) + 1
        if rng.random() < 0.005 and now_s is not None:
            messages.append(
                (
                    key_for(reading.device_id),
                    orjson.dumps(
                        {"device_id": reading.device_id, "timestamp": now_s + 86400, "power_w": 5}
                    ),
                )
            )
            invalid["future_timestamp"] = invalid.get("future_timestamp", 0) + 1
        if rng.random() < 0.01:
            # far behind this device's watermark: late
            late = OracleReading(reading.device_id, reading.ts - 3600 * 10**6 - 7, 100.0, None)
            messages.append(
                (
                    key_for(late.device_id),
                    orjson.dumps(
                        {"device_id": late.device_id, "timestamp": late.ts / 1e6, "power_w": 100.0}
                    ),
                )
            )
            arrivals.append(late)
    return Dataset(messages, arrivals, invalid)
