"""Shared text forms of report values (times, money, energy)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo


def rfc3339(moment: datetime) -> str:
    """UTC, with ``Z``, as the metrics API writes instants."""
    return moment.astimezone(ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")


def local_iso(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat()


def local_minutes(moment: datetime, zone: ZoneInfo) -> str:
    """``2026-03-01 14:00`` in the report's zone, for people."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def money(amount: Decimal) -> str:
    """Cents, rounded half up: what an invoice would show."""
    return f"{amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def kwh(value: float) -> str:
    """Watt-hour precision."""
    return f"{value:,.3f}"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.1f} %"
