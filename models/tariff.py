"""The tariff as configured (SEMANTICS.md section 5): a default price plus time-of-use periods."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")


def parse_hhmm(text: str, *, allow_24: bool) -> int:
    """Minutes after local midnight for ``HH:MM``; ``24:00`` only where ``allow_24``."""
    match = _HHMM.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a local time HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == 24 and (minutes != 0 or not allow_24):
        raise ValueError(f"{text!r} is not a valid time here (24:00 is allowed only as an end)")
    return hours * 60 + minutes


class TariffPeriod(BaseModel):
    """A time-of-use period: on the listed local weekdays, from ``start`` to ``end`` (exclusive)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: Literal["all"] | tuple[Weekday, ...]
    start: str
    end: str
    price_per_kwh: Decimal = Field(ge=0, allow_inf_nan=False)

    @field_validator("days")
    @classmethod
    def _days_not_empty(cls, value: Literal["all"] | tuple[Weekday, ...]) -> object:
        if value != "all" and len(value) == 0:
            raise ValueError("days must be 'all' or a non-empty list of mon..sun")
        return value

    @field_validator("start")
    @classmethod
    def _start_is_time(cls, value: str) -> str:
        parse_hhmm(value, allow_24=False)
        return value

    @field_validator("end")
    @classmethod
    def _end_is_time(cls, value: str) -> str:
        parse_hhmm(value, allow_24=True)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TariffPeriod:
        if parse_hhmm(self.start, allow_24=False) == parse_hhmm(self.end, allow_24=True):
            raise ValueError(f"period {self.start}-{self.end} is empty: start equals end")
        return self

    @property
    def start_minute(self) -> int:
        return parse_hhmm(self.start, allow_24=False)

    @property
    def end_minute(self) -> int:
        return parse_hhmm(self.end, allow_24=True)

    @property
    def weekdays(self) -> frozenset[int]:
        """ISO weekday indexes 0=Monday..6=Sunday on which the period starts."""
        if self.days == "all":
            return frozenset(range(7))
        return frozenset(WEEKDAYS.index(day) for day in self.days)


class Tariff(BaseModel):
    """``{"currency": ..., "price_per_kwh": ..., "periods": [...]}``; the first matching period wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(default="EUR", min_length=1, max_length=16)
    price_per_kwh: Decimal = Field(default=Decimal("0.30"), ge=0, allow_inf_nan=False)
    periods: tuple[TariffPeriod, ...] = ()
