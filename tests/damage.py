"""Shared check of the changelog codecs: every damaged form of a record is refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def assert_refuses_damage(load: Callable[[bytes], Any], data: bytes) -> None:
    """``load`` raises ValueError for every truncation of ``data``, for ``data`` with any
    one byte changed, and for ``data`` with a byte appended."""
    for end in range(len(data)):
        with pytest.raises(ValueError):
            load(data[:end])
    for at in range(len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0x5A
        with pytest.raises(ValueError):
            load(bytes(damaged))
    with pytest.raises(ValueError):
        load(data + b"\x00")
