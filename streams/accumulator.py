"""Partial window aggregates: the fields of SEMANTICS.md section 4 as mergeable sums.

An ``Acc`` is filled in timestamp order (readings and intervals are added by ascending
time), so the floating-point sums are the same however the readings arrived.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

_ZERO = Decimal(0)


class Acc:
    """Running sums of one window. ``by_price`` holds energy per tariff price index (direct
    windows); ``cost`` holds already-priced money (week/month windows combine day costs)."""

    __slots__ = (
        "by_price",
        "cost",
        "count",
        "covered",
        "energy",
        "first",
        "last",
        "pcount",
        "pmax",
        "pmin",
        "psum",
    )

    def __init__(self, n_prices: int) -> None:
        self.count = 0
        self.pcount = 0
        self.psum = 0.0
        self.pmin: float | None = None
        self.pmax: float | None = None
        self.energy = 0.0
        self.covered = 0  # microseconds covered by counter or power intervals
        self.first: int | None = None
        self.last: int | None = None
        self.by_price = [0.0] * n_prices
        self.cost = _ZERO  # decimals are immutable: one zero serves every window

    def copy(self) -> Acc:
        other = Acc.__new__(Acc)
        other.count = self.count
        other.pcount = self.pcount
        other.psum = self.psum
        other.pmin = self.pmin
        other.pmax = self.pmax
        other.energy = self.energy
        other.covered = self.covered
        other.first = self.first
        other.last = self.last
        other.by_price = list(self.by_price)
        other.cost = self.cost
        return other

    def add_reading(self, ts: int, power: float | None) -> None:
        self.count += 1
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts
        if power is not None:
            self.pcount += 1
            self.psum += power
            if self.pmin is None or power < self.pmin:
                self.pmin = power
            if self.pmax is None or power > self.pmax:
                self.pmax = power

    def add_energy(self, energy: float, covered_us: int, price_index: int) -> None:
        self.energy += energy
        self.covered += covered_us
        self.by_price[price_index] += energy

    def priced(self, prices: tuple[Decimal, ...]) -> Decimal:
        """Money of this window: priced energy plus already-priced cost, in decimal."""
        total = self.cost
        for index, energy in enumerate(self.by_price):
            if energy:
                total += Decimal(repr(energy)) * prices[index]
        return total

    def merge_window(self, other: Acc, prices: tuple[Decimal, ...]) -> None:
        """Fold a whole (day) window into this (week/month) one: sums, min/max, priced cost."""
        self.count += other.count
        self.pcount += other.pcount
        self.psum += other.psum
        if other.pmin is not None and (self.pmin is None or other.pmin < self.pmin):
            self.pmin = other.pmin
        if other.pmax is not None and (self.pmax is None or other.pmax > self.pmax):
            self.pmax = other.pmax
        self.energy += other.energy
        self.covered += other.covered
        if other.first is not None and (self.first is None or other.first < self.first):
            self.first = other.first
        if other.last is not None and (self.last is None or other.last > self.last):
            self.last = other.last
        self.cost += other.priced(prices)

    def is_empty(self) -> bool:
        """Not worth emitting: no reading and no energy (SEMANTICS.md section 4)."""
        return self.count == 0 and not self.energy > 0

    def fingerprint(self) -> tuple[Any, ...]:
        return (
            self.count,
            self.pcount,
            self.psum,
            self.pmin,
            self.pmax,
            self.energy,
            self.covered,
            self.first,
            self.last,
            tuple(self.by_price),
            self.cost,
        )

    def dump(self) -> list[Any]:
        return [
            self.count,
            self.pcount,
            self.psum,
            self.pmin,
            self.pmax,
            self.energy,
            self.covered,
            self.first,
            self.last,
            self.by_price,
            str(self.cost),
        ]

    @classmethod
    def load(cls, data: list[Any]) -> Acc:
        acc = cls.__new__(cls)
        (
            acc.count,
            acc.pcount,
            acc.psum,
            acc.pmin,
            acc.pmax,
            acc.energy,
            acc.covered,
            acc.first,
            acc.last,
            acc.by_price,
            cost,
        ) = data
        acc.cost = Decimal(cost)
        return acc
