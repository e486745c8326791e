"""The anomaly detector's configuration: the size of its Half-Space Trees, how fast device
baselines learn, when a window is flagged, and how that is read from the service's Settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ModelParams:
    """Half-Space Trees size: cost per window grows with ``n_trees * height``, memory with
    ``n_trees * 2**height``; ``window_size`` windows form the reference mass."""

    n_trees: int = 25
    height: int = 8
    window_size: int = 250


@dataclass(frozen=True)
class BaselineParams:
    """How fast baselines learn and how sure a new device's spread is; see
    streams/anomaly_baseline.py."""

    week_rate: float = 0.3  # hour-of-week slot: floor of the update weight
    daytype_rate: float = 0.1  # day-type hour slot
    day_rate: float = 0.2  # weekday slot of daily energy
    week_prior: float = 2.0  # a week slot counts like this many samples of its day-type slot
    prior_sd: float = 0.5  # assumed spread of log energy before any residual is seen
    prior_weight: float = 3.0  # ... worth this many residuals
    floor_sd: float = 0.05  # spreads never below 5 %: meters round, loads flicker
    clip: float = 3.0  # updates use residuals clipped at this many spreads
    offset: float = 0.05  # log(x + offset * level): zero use stays finite
    drift_hour: float = 1 / 12  # weight of a new hour in the running mean of hour z
    recent_hour: float = 1 / 3  # ... in the short running mean
    drift_day: float = 1 / 4

    def __post_init__(self) -> None:
        # they divide: a zero would make one window's arithmetic fail
        for name in ("week_prior", "prior_weight", "floor_sd"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True)
class AnomalyConfig:
    timezone: str = "UTC"  # hour-of-week and weekday are local (SEMANTICS.md TIMEZONE)
    seed: int = 42
    hour_model: ModelParams = field(default_factory=ModelParams)
    day_model: ModelParams = field(default_factory=lambda: ModelParams(25, 6, 100))
    warmup_days: float = 7.0  # no flag before a device's windows span this many days
    flag_quantile: float = 0.99  # flag scores above this running quantile ...
    min_scores: int = 200  # ... once this many scores are in it
    threshold: float | None = None  # or flag above this fixed score instead
    time_features: bool = False  # also give the model hour-of-day and weekday (cyclic)
    baseline: BaselineParams = field(default_factory=BaselineParams)

    def __post_init__(self) -> None:
        if not 0.0 < self.flag_quantile < 1.0:
            raise ValueError("flag_quantile must be between 0 and 1")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if self.warmup_days < 0:
            raise ValueError("warmup_days must not be negative")
        ZoneInfo(self.timezone)


def anomaly_config_from_settings(settings: object, **overrides: Any) -> AnomalyConfig:
    """The detector's configuration from the service's Settings (``ANOMALY_*``, ``TIMEZONE``)
    without importing them here; ``overrides`` that are not None win (command-line flags)."""
    values: dict[str, Any] = {
        "timezone": str(getattr(settings, "timezone", "UTC")),
        "flag_quantile": float(getattr(settings, "anomaly_flag_quantile", 0.99)),
        "threshold": getattr(settings, "anomaly_threshold", None),
        "warmup_days": float(getattr(settings, "anomaly_warmup_days", 7.0)),
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return AnomalyConfig(**values)
