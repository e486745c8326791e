"""A large messy data set in gateway arrays (100k+ readings in about a thousand messages):
disorder within grace, duplicates, meter resets, gaps, spikes, and rejected elements, messages
and late readings, with the counts the DLQ must hold."""

from __future__ import annotations

import random

import orjson

from tests.integration.dataset import START_S, Dataset
from tests.oracle import OracleReading, to_dt


def build_volume(
    seed: int = 101, devices: int = 50, readings_per_device: int = 2000, batch: int = 100
) -> Dataset:
    """``devices`` x ``readings_per_device`` valid readings (plus duplicate copies, late
    readings and invalid elements), sent as arrays of about ``batch`` readings keyed by
    gateway; all on one partition, so arrival order is production order."""
    rng = random.Random(seed)
    series: list[tuple[float, OracleReading, bytes]] = []
    for d in range(devices):
        device = f"vol-{d:03d}"
        kind = ("power", "counter", "both")[d % 3]
        t = START_S + rng.uniform(0, 600)
        counter = rng.uniform(0, 100)
        for _ in range(readings_per_device):
            step = rng.choice((30, 60, 60, 90))
            if rng.random() < 0.002:
                step = 2 * 3600  # a gap longer than MAX_GAP
            t += step + rng.random()
            ts_us = round(t * 1e6)
            power = round(rng.uniform(0, 3000), 3)
            counter += power * step / 3.6e6
            if rng.random() < 0.002:
                counter = rng.uniform(0, 1)  # meter reset
            energy = counter + (5000.0 if rng.random() < 0.001 else 0.0)  # rare spike
            doc: dict[str, object] = {"device_id": device}
            if rng.random() < 0.5:
                doc["timestamp"] = ts_us / 1e6
            else:
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
            series.append((t + rng.uniform(0, 240), reading, raw))  # disorder < GRACE
            if rng.random() < 0.01:
                series.append((t + rng.uniform(0, 240), reading, raw))  # duplicate copy
    series.sort(key=lambda item: item[0])

    messages: list[tuple[bytes | None, bytes]] = []
    arrivals: list[OracleReading] = []
    invalid: dict[str, int] = {}

    def reject(reason: str) -> None:
        invalid[reason] = invalid.get(reason, 0) + 1

    for start in range(0, len(series), batch):
        elements: list[bytes] = []
        for _, reading, raw in series[start : start + batch]:
            elements.append(raw)
            arrivals.append(reading)
            roll = rng.random()
            if roll < 0.002:
                elements.append(
                    orjson.dumps(
                        {"device_id": reading.device_id, "timestamp": "2026-10-25T10:00:00"}
                    )
                )
                reject("invalid_schema")
            elif roll < 0.004:
                elements.append(
                    orjson.dumps(
                        {
                            "device_id": reading.device_id,
                            "timestamp": reading.ts / 1e6,
                            "power_w": -1.5,
                        }
                    )
                )
                reject("out_of_range")
            elif roll < 0.006:
                late = OracleReading(reading.device_id, reading.ts - 3600 * 10**6 - 11, 50.0, None)
                elements.append(
                    orjson.dumps(
                        {"device_id": late.device_id, "timestamp": late.ts / 1e6, "power_w": 50.0}
                    )
                )
                arrivals.append(late)  # the oracle counts it late
        gateway = f"gw-{start // batch % 7}".encode()
        messages.append((gateway, b"[" + b",".join(elements) + b"]"))
        if rng.random() < 0.01:
            messages.append((gateway, b'[{"device_id": "vol-000", "timestamp": '))
            reject("invalid_json")
    return Dataset(messages, arrivals, invalid)
