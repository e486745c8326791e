"""Where the pipeline's results go: the ``Outputs`` protocol (Faust topics and the sinks in a
worker, lists in tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from agents.messages import Message
from models.metrics import WindowAggregate
from streams.decode import Reading, Rejection


class Outputs(Protocol):
    """Where the pipeline's results go; every method returns once the data is durable."""

    async def dead_letter(self, items: Sequence[tuple[Rejection, Message]]) -> None: ...

    async def forward(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Send (device_id, reading JSON) to the repartition topic keyed by device_id."""
        ...

    async def publish(self, windows: Sequence[WindowAggregate]) -> None:
        """Metrics topic plus every sink (PostgreSQL, InfluxDB)."""
        ...

    async def publish_anomalies(self, items: Sequence[tuple[str, bytes]]) -> None:
        """(device_id, anomaly record JSON) to the anomalies topic."""
        ...

    async def publish_readings(self, readings: Sequence[Reading]) -> None:
        """Accepted raw readings, where configured (INFLUXDB_RAW_READINGS)."""
        ...

    async def record_devices(self, seen: Sequence[tuple[str, int, int, dict[str, Any]]]) -> None:
        """(device_id, earliest and latest accepted reading time in us, latest reading with
        its timestamp in us) for the devices table."""
        ...

    def save_states(self, states: Sequence[tuple[str, int, bytes]]) -> Awaitable[None] | None:
        """Write (device_id, partition, serialized state) to the changelog, stored before
        offsets are committed: either awaitable (awaited before the batch ends) or flushed
        before the commit. The states are serialized when the batch is folded: the
        write may happen while the next batch is being folded."""
        ...

    def save_baselines(self, baselines: Sequence[tuple[str, int, bytes]]) -> Awaitable[None] | None:
        """Write (device_id, partition, anomaly baseline) to its changelog, like states."""
        ...
