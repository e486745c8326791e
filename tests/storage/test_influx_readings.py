"""Raw readings (INFLUXDB_RAW_READINGS) against the real InfluxDB write API (VictoriaMetrics)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from storage.influx import InfluxReadingsSink, InfluxSink, reading_line


def test_reading_line_has_identity_and_present_fields_only() -> None:
    assert reading_line("m 1", 1_700_000_000_123_456, 250.0, None) == (
        "energy_reading,device_id=m\\ 1 power_w=250.0 1700000000123456000"
    )
    assert reading_line("m", 1, None, None) is None


async def test_raw_readings_are_stored_once_per_identity(
    influx_client: Any, victoria_url: str, unique_prefix: str
) -> None:
    sink = InfluxReadingsSink(InfluxSink(influx_client, "energy", "energy"))
    device = f"{unique_prefix}raw"
    rows = [(device, 1_700_000_000_000_000 + i * 60_000_000, 100.0 + i, 5.0 + i) for i in range(3)]
    await sink.write(rows)
    await sink.write(rows)  # a replay: same identity, same values
    async with httpx.AsyncClient(base_url=victoria_url, trust_env=False, timeout=10) as client:
        (await client.get("/internal/force_flush")).raise_for_status()
        response = await client.post(
            "/api/v1/export",
            data={"match[]": f'{{__name__=~"energy_reading_.*",device_id="{device}"}}'},
        )
        response.raise_for_status()
    series = {
        json.loads(line)["metric"]["__name__"]: json.loads(line)
        for line in response.text.splitlines()
    }
    assert set(series) == {"energy_reading_power_w", "energy_reading_energy_kwh"}
    power = series["energy_reading_power_w"]
    assert sorted(set(zip(power["timestamps"], power["values"], strict=True))) == [
        (1_700_000_000_000 + i * 60_000, 100.0 + i) for i in range(3)
    ]
