"""Progress of a peer running in its own process, through a small text file.

The peer appends ``first <t>`` when it consumes its first message, ``n <readings> <t>`` now
and then, and ``done <readings> <t>`` at the end (``t``: wall clock, seconds). The harness
reads the file to rate the peer, also when it stops it at the time limit.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


@dataclass
class RunResult:
    readings: int  # readings processed between first and last
    seconds: float
    capped: bool = False  # stopped at the time limit before the end of the data

    @property
    def rate(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0


class ProgressWriter:
    """Used inside a peer process."""

    def __init__(self, path: str, expected: int, every: int = 5000) -> None:
        # Open for the life of the peer process; lines are flushed as they are written.
        self.stream: TextIO = Path(path).open("a", buffering=1)  # noqa: SIM115
        self.expected = expected
        self.every = every
        self.count = 0
        self.started = False
        self._next = every

    def add(self, readings: int) -> bool:
        """Count processed readings; True once all expected readings are in."""
        if not self.started:
            self.started = True
            self.stream.write(f"first 0 {time.time()!r}\n")
        self.count += readings
        if self.count >= self.expected:
            self.stream.write(f"done {self.count} {time.time()!r}\n")
            self.stream.flush()
            return True
        if self.count >= self._next:
            self._next = self.count + self.every
            self.stream.write(f"n {self.count} {time.time()!r}\n")
        return False


def read_progress(path: Path) -> tuple[float | None, int, float | None, bool]:
    """(first time, readings, time of that count, done)."""
    first: float | None = None
    count, at, done = 0, None, False
    if not path.exists():
        return first, count, at, done
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        kind, n, t = parts[0], int(parts[1]), float(parts[2])
        if kind == "first":
            first = t
        else:
            count, at, done = n, t, kind == "done"
    return first, count, at, done


def note(text: str) -> None:
    """A progress line for whoever watches the benchmark (stderr)."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()
