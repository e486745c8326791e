"""Where each value of a device's anomaly baseline sits in its float32 and uint16 arrays
(``DeviceBaseline.floats`` and ``counts``, streams/anomaly_baseline.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# float32 layout
HOW_M: Final = 0  # 168: log energy rate per hour-of-week
DT_EM: Final = 168  # 48: log energy rate per day-type hour
DT_EV: Final = 216  # 48: residual variance of log energy per day-type hour
DT_PM: Final = 264  # 48: log peak power per day-type hour
DT_FM: Final = 312  # 48: log relative power range per day-type hour
WD_M: Final = 360  # 7: log daily energy per weekday
DD_M: Final = 367  # 2: log daily energy per day type
DD_V: Final = 369  # 2: residual variance of log daily energy per day type
P_V: Final = 371  # residual variance of log peak power
F_V: Final = 372  # residual variance of log relative range
LEVEL: Final = 373  # mean hourly energy (kWh), for the log offset
DRIFT_H: Final = 374  # running mean of recent hour z (clipped)
DRIFT_D: Final = 375  # running mean of recent day z (clipped)
DACC_SUM: Final = 376  # sum of squared hour surprise of the current local day
DACC_MAX: Final = 377  # largest hour surprise of the current local day
RECENT_H: Final = 378  # short running mean of hour z (clipped): a few hours in a row
DACC_RUN: Final = 379  # largest |short running mean| of the current local day
TOP_M: Final = 380  # log of the day's peak power, running mean over days
TOP_V: Final = 381  # ... its residual variance
FLOATS: Final = 382

# uint16 layout (counts, capped)
HOW_N: Final = 0  # 168
DT_N: Final = 168  # 48 (energy)
DT_PN: Final = 216  # 48 (peak)
DT_FN: Final = 264  # 48 (range)
WD_N: Final = 312  # 7
DD_N: Final = 319  # 2
LEVEL_N: Final = 321
DACC_N: Final = 322
TOP_N: Final = 323
COUNTS: Final = 324


@dataclass(frozen=True, slots=True)
class BaselineLayout:
    """Where each value sits in ``DeviceBaseline.floats`` and ``counts`` (for code that
    works on many baselines at once, streams/anomaly_hours.py)."""

    floats: int = FLOATS
    counts: int = COUNTS
    DT_EM: int = DT_EM
    DT_EV: int = DT_EV
    DT_PM: int = DT_PM
    DT_FM: int = DT_FM
    P_V: int = P_V
    F_V: int = F_V
    LEVEL: int = LEVEL
    DRIFT_H: int = DRIFT_H
    DACC_SUM: int = DACC_SUM
    DACC_MAX: int = DACC_MAX
    RECENT_H: int = RECENT_H
    DACC_RUN: int = DACC_RUN
    TOP_M: int = TOP_M
    TOP_V: int = TOP_V
    DT_N: int = DT_N
    DT_PN: int = DT_PN
    DT_FN: int = DT_FN
    LEVEL_N: int = LEVEL_N
    DACC_N: int = DACC_N
    TOP_N: int = TOP_N


def layout() -> BaselineLayout:
    """The layout of the arrays (``HOW_M`` and ``HOW_N`` are 0: a week slot is its index)."""
    return BaselineLayout()
