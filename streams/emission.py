"""A window's value as the fold emits it, with its revision: as the WindowAggregate model
the sinks write, or as the plain field mapping the anomaly scorer and the tests read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from models.metrics import WindowAggregate
from streams.accumulator import Acc
from streams.timeparse import US_PER_S, us_to_datetime


@dataclass(slots=True)
class Emission:
    """A window's value as emitted, with its revision."""

    device_id: str
    period: str
    window_start: int
    window_end: int
    acc: Acc
    cost: Decimal
    revision: int

    def to_model(
        self,
        currency: str,
        anomaly_score: float | None = None,
        is_anomaly: bool | None = None,
    ) -> WindowAggregate:
        """The emitted window as a model (the values of ``fields()``, with datetimes)."""
        acc = self.acc
        pcount = acc.pcount
        pmin = acc.pmin
        pmax = acc.pmax
        first = acc.first
        last = acc.last
        first_ts = _datetime_or_none(first)
        # Built in the model's field order, with the types its validation would give.
        return WindowAggregate.trusted(
            {
                "device_id": self.device_id,
                "period": self.period,
                "window_start": _bound(self.window_start),
                "window_end": _bound(self.window_end),
                "reading_count": acc.count,
                "power_reading_count": pcount,
                "power_mean_w": float(acc.psum / pcount) if pcount else None,
                "power_min_w": None if pmin is None else float(pmin),
                "power_max_w": None if pmax is None else float(pmax),
                "energy_kwh": float(acc.energy),
                "cost": self.cost,
                "currency": currency,
                "coverage": acc.covered / (self.window_end - self.window_start),
                "covered_seconds": acc.covered / US_PER_S,
                "first_ts": first_ts,
                "last_ts": first_ts if last == first else _datetime_or_none(last),
                "anomaly_score": None if anomaly_score is None else float(anomaly_score),
                "is_anomaly": None if is_anomaly is None else bool(is_anomaly),
                "revision": self.revision,
            }
        )

    def fields(self) -> dict[str, Any]:
        acc = self.acc
        length = self.window_end - self.window_start
        return {
            "device_id": self.device_id,
            "period": self.period,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "reading_count": acc.count,
            "power_reading_count": acc.pcount,
            "power_mean_w": acc.psum / acc.pcount if acc.pcount else None,
            "power_min_w": acc.pmin,
            "power_max_w": acc.pmax,
            "energy_kwh": acc.energy,
            "cost": self.cost,
            "coverage": acc.covered / length,
            "covered_seconds": acc.covered / US_PER_S,
            "first_ts": acc.first,
            "last_ts": acc.last,
            "revision": self.revision,
        }


# Window bounds repeat across devices and batches: their datetimes are cached.
_bound = lru_cache(maxsize=1 << 14)(us_to_datetime)


def _datetime_or_none(ts: int | None) -> datetime | None:
    return None if ts is None else us_to_datetime(ts)
