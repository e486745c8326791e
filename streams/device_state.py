"""A device's stream state (what the fold in streams/device.py keeps between batches) and
how it is dumped: a JSON-ready list, or the changelog bytes of streams/device_state_codec.py.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from streams.accumulator import Acc
from streams.device_state_codec import decode, encode

STATE_VERSION = 1

Key = tuple[int, int]  # (period code, window start us)
Fingerprint = int | tuple[tuple[Any, ...], Decimal]  # see DeviceState.emitted


@dataclass(slots=True)
class DeviceState:
    """Everything one device needs: ``dump``/``load`` give its fields as a JSON-ready list,
    ``to_bytes``/``from_bytes`` its changelog form (streams/device_state_codec.py)."""

    max_ts: int | None = None
    # [ts, power_w, energy_kwh] ascending by ts; [0] is the anchor.
    readings: list[list[Any]] = field(default_factory=list)
    frozen: dict[Key, Acc] = field(default_factory=dict)
    # revision, fingerprint: an int, or the values it is computed from when first needed
    # (most emitted windows are closed before they are compared or written)
    emitted: dict[Key, tuple[int, Fingerprint]] = field(default_factory=dict)
    closed_until: int | None = None  # day windows ending at or before this are folded
    pending: bool = False  # accepted data not yet emitted by an idle flush
    last_wall: float = 0.0  # wall clock (s) of the last message for this device
    # source partition -> highest offset folded in (a replay after a crash skips those)
    offsets: dict[int, int] = field(default_factory=dict)
    partition: int | None = None  # the changelog partition this state lives in

    def dump(self) -> list[Any]:
        emitted = self.emitted
        for key, (rev, fp) in emitted.items():
            if type(fp) is not int:
                # digested once: a state is written at every checkpoint that finds it
                # changed, and its open windows' entries outlive many of them
                emitted[key] = (rev, digest_fingerprint(fp))
        return [
            STATE_VERSION,
            self.max_ts,
            self.readings,
            [[p, s, acc.dump()] for (p, s), acc in self.frozen.items()],
            [[p, s, rev, fp] for (p, s), (rev, fp) in emitted.items()],
            self.closed_until,
            self.pending,
            self.last_wall,
            [[p, o] for p, o in self.offsets.items()],
            self.partition,
        ]

    @classmethod
    def load(cls, data: list[Any]) -> DeviceState:
        version = data[0]
        if version != STATE_VERSION:
            raise ValueError(f"unknown device state version {version}")
        return cls(
            max_ts=data[1],
            readings=[list(r) for r in data[2]],
            frozen={(p, s): Acc.load(acc) for p, s, acc in data[3]},
            emitted={(p, s): (rev, fp) for p, s, rev, fp in data[4]},
            closed_until=data[5],
            pending=data[6],
            last_wall=data[7],
            offsets={p: o for p, o in data[8]},
            partition=data[9],
        )

    def to_bytes(self) -> bytes:
        """Compact binary (format version 2); ``from_bytes`` restores the state bit for bit."""
        return encode(self.dump())

    @classmethod
    def from_bytes(cls, data: bytes | str) -> DeviceState:
        """A state from ``to_bytes`` output, or from the JSON of format version 1; a
        ValueError says what is wrong with anything else."""
        fields = decode(data)
        try:
            return cls.load(fields)
        except (LookupError, TypeError, ArithmeticError) as exc:  # Decimal("x") is one
            raise ValueError(f"device state malformed: {exc!r}") from exc


def digest_fingerprint(fingerprint: Fingerprint) -> int:
    """A window value's fingerprint as stored: blake2b of the repr of its sums and cost."""
    if isinstance(fingerprint, int):
        return fingerprint
    digest = hashlib.blake2b(repr(fingerprint).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
