"""The input of every renderer: what was asked for and the windows the database returned."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from models.metrics import WindowAggregate
from reports.parameters import ReportParameters


@dataclass(frozen=True)
class ReportData:
    """Hour and day windows of the report's devices and period, with what is needed to
    present them. Renderers are pure functions of this (and of its ``summarise``)."""

    parameters: ReportParameters
    timezone: str
    """IANA zone of local days and hours of day (``TIMEZONE``)."""
    currency: str
    """Currency of the totals (the tariff's); windows priced otherwise are reported apart."""
    generated_at: datetime
    windows: tuple[WindowAggregate, ...]
    """``hour`` and ``day`` windows whose start lies in ``[parameters.start, parameters.end)``."""
    job_id: uuid.UUID | None = None
