"""The semantics settings of SEMANTICS.md section 7 in the units the arithmetic uses."""

from __future__ import annotations

from dataclasses import dataclass, field

from models.tariff import Tariff
from streams.timeparse import US_PER_S


@dataclass(frozen=True)
class ProcessingConfig:
    grace_s: float = 300.0
    max_gap_s: float = 3600.0
    max_power_w: float = 1_000_000.0
    future_tolerance_s: float = 300.0
    idle_flush_s: float = 60.0
    timezone: str = "UTC"
    tariff: Tariff = field(default_factory=Tariff)

    @property
    def grace_us(self) -> int:
        return round(self.grace_s * US_PER_S)

    @property
    def max_gap_us(self) -> int:
        return round(self.max_gap_s * US_PER_S)

    @property
    def future_tolerance_us(self) -> int:
        return round(self.future_tolerance_s * US_PER_S)


def config_from_settings(settings: object) -> ProcessingConfig:
    """Build from any object with the SEMANTICS.md setting attributes (the service's
    Settings), without importing it here."""
    tariff = getattr(settings, "effective_tariff", None)
    return ProcessingConfig(
        grace_s=float(getattr(settings, "grace")),  # noqa: B009
        max_gap_s=float(getattr(settings, "max_gap")),  # noqa: B009
        max_power_w=float(getattr(settings, "max_power_w")),  # noqa: B009
        future_tolerance_s=float(getattr(settings, "future_tolerance")),  # noqa: B009
        idle_flush_s=float(getattr(settings, "idle_flush")),  # noqa: B009
        timezone=str(getattr(settings, "timezone")),  # noqa: B009
        tariff=tariff if isinstance(tariff, Tariff) else Tariff(),
    )
